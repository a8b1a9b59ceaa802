"""``/auth/oidc/{provider}``: single sign-on with an OpenID provider (``identity/sso.py``).

``GET .../login`` is a navigation: it sets the flow cookie and redirects to the provider.
The provider sends the browser back to ``GET .../callback``, which ends like a password
login in the browser (the refresh token in its HttpOnly cookie, ``api/refresh_cookie.py``)
and redirects into the app, where the app's usual refresh picks the session up. A refused
callback redirects to ``/login?sso_error=<code>`` (the page says why) and is audited.

The flow cookie is ``SameSite=Lax``: the callback is a cross-site top-level navigation
from the provider, on which a ``Strict`` cookie would not be sent. It is scoped to the
provider's path, ``HttpOnly``, and lives as long as the flow may (ten minutes by default).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from parley.api import refresh_cookie
from parley.api.deps import base_url, client_ip, services
from parley.errors import AuthenticationFailed, NotFound, PermissionDenied, ServiceUnavailable
from parley.identity.audit import audit
from parley.identity.sso import SingleSignOn

router = APIRouter(tags=["auth"])

FLOW_COOKIE = "parley_sso"


def sso_of(request: Request) -> SingleSignOn:
    found = services(request).sso
    if found is None:
        raise NotFound("single sign-on is not configured", code="sso_not_configured")
    return found


def refuse_if_sso_only(request: Request) -> None:
    """Password sign-in, registration, reset and change are off under ``sso.only``
    (passkey sign-in and TOTP stay: docs/security.md)."""
    sso = services(request).sso
    if sso is not None and sso.only:
        raise PermissionDenied(
            "this deployment signs in through single sign-on only", code="sso_only"
        )


def _callback_url(request: Request, name: str) -> str:
    return f"{base_url(request)}/auth/oidc/{name}/callback"


def _set_flow(response: Response, request: Request, name: str, flow: str, seconds: int) -> None:
    response.set_cookie(
        FLOW_COOKIE,
        flow,
        max_age=seconds,
        path=f"/auth/oidc/{name}",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def _clear_flow(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        FLOW_COOKIE,
        path=f"/auth/oidc/{name}",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


@router.get("/auth/oidc/{name}/login")
async def login(name: str, request: Request) -> Response:
    sso = sso_of(request)
    begun = await sso.begin(
        name, redirect_uri=_callback_url(request, name), next_path=request.query_params.get("next")
    )
    response = _redirect(begun.url)
    _set_flow(response, request, name, begun.flow, sso.settings.flow_seconds)
    return response


@router.get("/auth/oidc/{name}/callback")
async def callback(name: str, request: Request) -> Response:
    sso = sso_of(request)
    sso.provider(name)  # 404 for a provider that does not exist, before anything else
    svc = services(request)
    ip = client_ip(request)
    try:
        done = await sso.finish(
            name,
            flow=request.cookies.get(FLOW_COOKIE),
            params=dict(request.query_params),
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            kind="web",
        )
    except (AuthenticationFailed, ServiceUnavailable) as exc:
        await audit(
            svc.db,
            actor="anonymous",
            action="auth.login_failed",
            ip=ip,
            detail={"method": "oidc", "provider": name, "reason": exc.code},
        )
        failed = _redirect(f"/login?sso_error={quote(exc.code or 'sso_failed')}")
        _clear_flow(failed, request, name)
        return failed
    detail = {"method": "oidc", "provider": name}
    if done.created:
        await audit(
            svc.db, actor=done.user.id, action="user.register", target=done.user.id, ip=ip,
            detail=detail,
        )  # fmt: skip
    if done.linked:
        await audit(
            svc.db, actor=done.user.id, action="auth.sso_linked", target=done.user.id, ip=ip,
            detail=detail,
        )  # fmt: skip
    await audit(
        svc.db, actor=done.user.id, action="auth.login", target=done.user.id, ip=ip, detail=detail
    )
    response = _redirect(done.next)
    _clear_flow(response, request, name)
    token = refresh_cookie.take_token(done.tokens)
    if token is not None:
        refresh_cookie.set_cookie(request, response, token)
    return response


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


async def logout_url(request: Request, session_id: str) -> str | None:
    """Where the browser goes next to end the provider's session too (RP-initiated
    logout), for a session one of the providers signed in; None otherwise."""
    svc = services(request)
    if svc.sso is None:
        return None
    provider = await svc.accounts.sessions.sso_provider(session_id)
    if provider is None:
        return None
    try:
        return await svc.sso.logout_url(provider, f"{base_url(request)}/login")
    except ServiceUnavailable:
        return None  # Parley's session is over either way; the provider's stays
