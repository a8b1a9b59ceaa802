"""The browser's refresh token: an HttpOnly cookie instead of a JSON field.

The web app keeps its access token in memory only; the refresh token must survive a reload
without being readable by script, so in cookie mode the token endpoints set it as an
``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/auth`` (``Secure`` over TLS) and leave
it out of the body. API clients keep the JSON mode: a request opts in with the header below.

CSRF: a cookie-mode request must carry that custom header (a cross-site form or a simple
cross-site ``fetch`` cannot set one without a CORS preflight Parley does not grant), and an
``Origin`` header, when present, must be this server's own. ``SameSite=Strict`` already keeps
the cookie off cross-site requests; the two checks hold even where a browser ignores it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import Response

from parley.errors import PermissionDenied

COOKIE = "parley_refresh"
COOKIE_PATH = "/auth"
MODE_HEADER = "x-parley-refresh-cookie"


def cookie_mode(request: Request) -> bool:
    """True when the browser app asks for the cookie; refuses a cross-origin attempt."""
    if request.headers.get(MODE_HEADER) != "1":
        return False
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise PermissionDenied("cross-origin request refused", code="cross_origin")
    return True


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def cookie_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def take_token(body: dict[str, Any]) -> str | None:
    """Remove ``refresh_token`` from a token answer, to send it as the cookie instead."""
    token = body.pop("refresh_token", None)
    return token if isinstance(token, str) else None


def set_cookie(request: Request, response: Response, token: str) -> None:
    settings = request.app.state.settings
    # a browser session never outlives its absolute lifetime, so neither does its cookie
    max_age = min(settings.refresh_token_days * 86400, settings.web_session_absolute_seconds)
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(1, int(max_age)),
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
