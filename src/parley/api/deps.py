"""Request-scoped helpers shared by routers: who is calling, and this request's id.

Plain async functions rather than FastAPI ``Depends``: the ``/v1`` hot path calls them
directly (a dependency graph costs time per request the overhead benchmark can see).
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from fastapi import Request
from starlette.responses import Response

from parley.api.jsonbody import decode_json
from parley.config.secrets import Secret
from parley.errors import AuthenticationFailed, InvalidRequest
from parley.gateway.accounting.caller import Caller
from parley.gateway.cache.keys import parse_cache_control
from parley.gateway.client_base import UPSTREAM_KEY_HEADER
from parley.gateway.pipeline import CallOptions
from parley.gateway.routing.admission import DEFAULT_PRIORITY, PRIORITIES
from parley.gateway.routing.router import STRATEGIES
from parley.identity.keys import KEY_PREFIX
from parley.services import Services

_JSON = "application/json"
_PRIORITY_VALUES = frozenset(str(p) for p in PRIORITIES)
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_SDK_NO_TIMEOUT = frozenset({"None", "NOT_GIVEN"})
"""What the Stainless-made SDKs send as ``x-stainless-timeout`` when the call has no timeout
of its own (the Anthropic SDK's streams send ``NOT_GIVEN``): no deadline."""
MAX_TIMEOUT_SECONDS = 86_400
"""The longest deadline a request may ask for (a day)."""


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def request_id(request: Request) -> str:
    """The id a usage record is filed under: ours when we made it, else the client's plus a
    suffix (a client may reuse its ids; usage records must stay one per request)."""
    state = request.scope.get("state", {})
    rid = state.get("request_id") or uuid.uuid4().hex
    if state.get("request_id_from_client"):
        return f"{rid}.{uuid.uuid4().hex[:8]}"
    return str(rid)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.headers.get("x-api-key") or None


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def is_admin_key(svc: Services, token: str) -> bool:
    admin = svc.settings.admin_key
    return admin is not None and hmac.compare_digest(
        token.encode(), admin.get_secret_value().encode()
    )


async def api_caller(request: Request) -> Caller:
    """The caller of a ``/v1`` request. A ``pk-`` key must be valid; without one the
    request is anonymous, which only the embedded loopback tier allows."""
    svc = services(request)
    token = bearer_token(request)
    ip = client_ip(request)
    if token is not None:
        if token.startswith(KEY_PREFIX):
            return await svc.keys.authenticate(token, ip=ip)
        if is_admin_key(svc, token):
            return Caller(ip=ip, is_admin=True)
    if svc.settings.auth_required:
        if token is None:
            raise AuthenticationFailed(
                "missing API key: send 'Authorization: Bearer pk-...' or 'x-api-key'"
            )
        raise AuthenticationFailed("invalid API key")
    return Caller(ip=ip)


def call_options(request: Request, caller: Caller) -> CallOptions:
    """Per-request routing knobs from headers.

    ``x-parley-priority`` (1 first .. 5 last): the key's own priority (set by an admin) is
    the default and the highest a caller may ask for; callers may lower it, and only admin
    callers may raise it. ``x-parley-timeout`` (seconds, or the OpenAI
    SDK's own ``x-stainless-timeout``; see ``_timeout_seconds``) bounds the whole request,
    retries and fallbacks included. ``x-parley-strategy`` applies only where the group
    allows an override.
    ``Cache-Control`` (``no-cache``, ``no-store``, ``max-age``) steers the response cache.
    ``x-parley-upstream-key`` is the client's own key for the upstream a body's
    ``api_base`` names (never the deployment's; ``gateway/client_base.py``).
    """
    headers = request.headers
    granted = caller.priority or DEFAULT_PRIORITY
    priority = granted
    raw = headers.get("x-parley-priority")
    if raw is not None:
        if raw not in _PRIORITY_VALUES:
            raise InvalidRequest("x-parley-priority must be 1 (first) to 5 (last)")
        priority = int(raw)
        if priority < granted and not caller.is_admin:
            priority = granted
    deadline = None
    seconds = _timeout_seconds(headers)
    if seconds is not None:
        deadline = asyncio.get_running_loop().time() + seconds
    strategy = headers.get("x-parley-strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise InvalidRequest(f"x-parley-strategy must be one of {', '.join(STRATEGIES)}")
    cache = None
    cache_control = headers.get("cache-control")
    if cache_control is not None:
        try:
            cache = parse_cache_control(cache_control)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    max_cost_nusd = _max_cost(headers.get("x-parley-max-cost-usd"))
    raw_key = headers.get(UPSTREAM_KEY_HEADER)
    upstream_key = Secret(raw_key.strip()) if raw_key and raw_key.strip() else None
    return CallOptions(
        priority=priority,
        deadline=deadline,
        strategy=strategy,
        cache=cache,
        upstream_key=upstream_key,
        max_cost_nusd=max_cost_nusd,
    )


def _max_cost(raw: str | None) -> int | None:
    """``x-parley-max-cost-usd``: a positive USD amount. It is one more ceiling beside the
    key's, the tier's and the group's, and the lowest applies, so it can only lower them."""
    if raw is None:
        return None
    try:
        usd = float(raw)
    except ValueError:
        usd = -1.0
    if not math.isfinite(usd) or usd <= 0 or usd > 1e9:
        raise InvalidRequest("x-parley-max-cost-usd must be a positive amount of USD")
    return round(usd * 1e9)


def _timeout_seconds(headers: Mapping[str, str]) -> float | None:
    """The request's deadline in seconds, from ``x-parley-timeout`` or else the OpenAI SDK's
    ``x-stainless-timeout``; ``None`` for no deadline.

    Strict on purpose: Python's ``float`` takes ``nan`` (a deadline every comparison
    misses: a 500 later), ``inf`` and ``1e308`` (no deadline, silently) and ``1_0``. A
    plain decimal number of seconds, above 0 and at most a day, is the only answer. The
    SDK sends its own client timeout, not a request to Parley: a client willing to wait
    longer than a day there simply sets no deadline.
    """
    name = "x-parley-timeout"
    raw = headers.get(name)
    if not raw:
        name = "x-stainless-timeout"
        raw = headers.get(name)
        if not raw or raw in _SDK_NO_TIMEOUT:
            return None
    if not _SECONDS.fullmatch(raw):
        raise InvalidRequest(f"{name} must be a number of seconds, such as 30 or 2.5")
    seconds = float(raw)
    if seconds <= 0:
        raise InvalidRequest(f"{name} must be positive")
    if seconds > MAX_TIMEOUT_SECONDS:
        if name == "x-stainless-timeout":
            return None
        raise InvalidRequest(f"{name} must be at most {MAX_TIMEOUT_SECONDS} seconds (a day)")
    return seconds


def int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    """A query parameter as a bounded integer; anything else is a 400 naming it."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}", param=name)
    return value


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """The JSON answer every non-``/v1`` router sends (msgspec, no pydantic round trip)."""
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=_JSON, headers=headers
    )


async def json_body(request: Request) -> Any:
    """The request's JSON (``{}`` when empty); invalid JSON, or JSON nested deeper than
    ``MAX_JSON_DEPTH``, is a 400 ``invalid_json``."""
    raw = await request.body()
    try:
        return decode_json(raw) if raw else {}
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from None


def base_url(request: Request) -> str:
    """Where links in mail point: ``PARLEY_PUBLIC_URL``, else this request's own origin
    (which a spoofed ``Host`` could change: production sets the URL)."""
    configured = services(request).settings.public_url
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
