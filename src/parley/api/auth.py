"""``/auth`` (register, login, tokens, sessions, password, MFA), ``/api/me`` and the JWKS.

Request bodies are small JSON objects validated by pydantic models with ``extra="forbid"``;
every error is the same JSON envelope as ``/v1``'s.
"""

from __future__ import annotations

from typing import Any

import msgspec
import segno
from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from parley.api import refresh_cookie, sso
from parley.api.bodies import Body
from parley.api.deps import base_url, bearer_token, client_ip, json_response, services
from parley.api.errors import render_parley_error
from parley.api.jsonbody import decode_json
from parley.api.sso import refuse_if_sso_only
from parley.config import Settings
from parley.errors import AuthenticationFailed, PermissionDenied
from parley.identity.accounts import Authenticated
from parley.identity.audit import audit
from parley.identity.login_risk import DEVICE_COOKIE, new_device_id, valid_device
from parley.identity.schemas import validated
from parley.store.replicas import acting_for

router = APIRouter(tags=["auth"])


class Register(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(max_length=200)


class Login(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class LoginMfa(Body):
    mfa_token: str
    code: str | None = None
    recovery_code: str | None = None


class LoginStepUp(Body):
    step_up_token: str = Field(max_length=2000)
    code: str = Field(max_length=12)


class Refresh(Body):
    refresh_token: str | None = Field(default=None, max_length=200)
    """Absent in cookie mode (``api/refresh_cookie.py``): the cookie carries it."""


class Code(Body):
    code: str = Field(max_length=12)


class PasswordChange(Body):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class ResetRequest(Body):
    email: str = Field(max_length=320)


class ResetConfirm(Body):
    token: str = Field(max_length=200)
    new_password: str = Field(max_length=1024)


class TokenBody(Body):
    token: str = Field(max_length=200)


class EmailChange(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


def _json(body: Any, status: int = 200) -> Response:
    return json_response(body, status, {"Cache-Control": "no-store"})  # never cache tokens


def _tokens(request: Request, result: dict[str, Any]) -> Response:
    """A token answer; in the browser's cookie mode the refresh token rides in the cookie."""
    if not refresh_cookie.cookie_mode(request):
        return _json(result)
    token = refresh_cookie.take_token(result)
    response = _json(result)
    if token is not None:
        refresh_cookie.set_cookie(request, response, token)
    return response


_DEVICE_SECONDS = 400 * 86400  # the longest a browser keeps a cookie


def _device(request: Request) -> tuple[str | None, str | None]:
    """(this request's device id, a new one to set as the cookie). Only with risk scoring
    on: a browser without a valid device cookie is given one with its login's answer."""
    if services(request).accounts.risk is None:
        return None, None
    known = valid_device(request.cookies.get(DEVICE_COOKIE))
    if known is not None:
        return known, None
    fresh = new_device_id()
    return fresh, fresh


def _set_device(request: Request, response: Response, device: str | None) -> Response:
    if device is not None:
        response.set_cookie(
            DEVICE_COOKIE,
            device,
            max_age=_DEVICE_SECONDS,
            path="/auth",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return response


async def _body(request: Request, model: type[Body]) -> Any:
    raw = await request.body()
    try:
        data = decode_json(raw) if raw else {}
    except msgspec.DecodeError:
        data = None
    return validated(model, data)


async def current_user(request: Request) -> Authenticated:
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("missing access token", code="unauthenticated")
    authenticated = await services(request).accounts.authenticate(token)
    acting_for(authenticated.user.id)  # their writes pin their lag-tolerant reads
    return authenticated


async def chat_user(request: Request) -> Authenticated:
    """``current_user`` for the chat routes: with ``email_verification=required`` an
    account whose address is not confirmed yet is refused (403 ``email_unverified``)."""
    auth = await current_user(request)
    services(request).recovery.require_verified(auth.user)
    return auth


def _embedded(settings: Settings) -> bool:
    """One process on SQLite with no shared state and no admin key: the install where the
    first account to register becomes the admin. Elsewhere the operator bootstraps admins
    with ``PARLEY_ADMIN_KEY``, and nobody becomes one by registering first."""
    return settings.is_sqlite and settings.redis_url is None and settings.admin_key is None


@router.get("/auth/setup")
async def setup(request: Request) -> Response:
    """What the register page tells a visitor: whether they may register, and whether the
    account they make will administer this install (nobody has registered yet)."""
    svc = services(request)
    first = _embedded(svc.settings) and not await svc.accounts.users.any_exist()
    sso_only = svc.sso is not None and svc.sso.only
    return _json(
        {
            "registration_open": svc.settings.registration_open and not sso_only,
            "first_account_is_admin": first and not sso_only,
            "sso_only": sso_only,
            "sso_providers": svc.sso.public() if svc.sso is not None else [],
        }
    )


@router.post("/auth/register")
async def register(request: Request) -> Response:
    svc = services(request)
    refuse_if_sso_only(request)
    if not svc.settings.registration_open:
        raise PermissionDenied("registration is closed; ask an admin", code="registration_closed")
    body: Register = await _body(request, Register)
    user = await svc.accounts.register(
        email=body.email,
        password=body.password,
        name=body.name,
        admin_if_first=_embedded(svc.settings),
    )
    await audit(
        svc.db, actor=user.id, action="user.register", target=user.id, ip=client_ip(request)
    )
    await svc.recovery.send_verification(user, base_url=base_url(request))
    return _json(user.public(), 201)


_RESET_ANSWER = {
    "status": "accepted",
    "message": "if an account has this address, a reset link is on its way",
}


@router.post("/auth/password-reset")
async def password_reset(request: Request) -> Response:
    """The same answer, after the same work, whether or not the address has an account."""
    refuse_if_sso_only(request)
    svc = services(request)
    body: ResetRequest = await _body(request, ResetRequest)
    await svc.recovery.request_reset(body.email, base_url=base_url(request))
    return _json(_RESET_ANSWER, 202)


@router.post("/auth/password-reset/confirm")
async def password_reset_confirm(request: Request) -> Response:
    refuse_if_sso_only(request)
    svc = services(request)
    body: ResetConfirm = await _body(request, ResetConfirm)
    user_id = await svc.recovery.confirm_reset(body.token, body.new_password)
    await audit(
        svc.db, actor=user_id, action="auth.password_reset", target=user_id, ip=client_ip(request)
    )
    response = _json({"reset": True})
    refresh_cookie.clear(response, request)
    return response


@router.post("/auth/verify-email")
async def verify_email(request: Request) -> Response:
    svc = services(request)
    body: TokenBody = await _body(request, TokenBody)
    user_id = await svc.recovery.verify_email(body.token)
    await audit(
        svc.db, actor=user_id, action="user.email_verified", target=user_id, ip=client_ip(request)
    )
    return _json({"verified": True})


@router.post("/auth/verify-email/resend")
async def verify_email_resend(request: Request) -> Response:
    auth = await current_user(request)
    if auth.user.email_verified:
        return _json({"sent": False, "email_verified": True})
    sent = await services(request).recovery.send_verification(auth.user, base_url=base_url(request))
    return _json({"sent": sent, "email_verified": False}, 202)


@router.post("/auth/email")
async def change_email(request: Request) -> Response:
    """A new address takes effect when the link mailed to it is followed (verification
    off: at once)."""
    auth = await current_user(request)
    body: EmailChange = await _body(request, EmailChange)
    svc = services(request)
    pending = await svc.recovery.change_email(
        auth, body.email, body.password, base_url=base_url(request)
    )
    await audit(
        svc.db,
        actor=auth.user.id,
        action="user.email_change_requested" if pending else "user.email_changed",
        target=auth.user.id,
        ip=client_ip(request),
    )
    return _json({"verification_sent": pending}, 202 if pending else 200)


@router.post("/auth/login")
async def login(request: Request) -> Response:
    svc = services(request)
    body: Login = await _body(request, Login)
    ip = client_ip(request)
    try:
        refuse_if_sso_only(request)
    except PermissionDenied:
        await audit(
            svc.db, actor="anonymous", action="auth.login_failed", ip=ip,
            detail={"method": "password", "reason": "sso_only"},
        )  # fmt: skip
        raise
    device, fresh = _device(request)
    try:
        result = await svc.accounts.login(
            body.email,
            body.password,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            kind="web" if refresh_cookie.cookie_mode(request) else "api",
            device=device,
        )
    except AuthenticationFailed:
        await audit(svc.db, actor="anonymous", action="auth.login_failed", ip=ip)
        raise
    await audit(svc.db, actor="anonymous", action="auth.login", ip=ip)
    return _set_device(request, _tokens(request, result), fresh)


@router.post("/auth/login/step-up")
async def login_step_up(request: Request) -> Response:
    """Finish a login that risk scoring stepped up, with the code mailed to the account."""
    svc = services(request)
    body: LoginStepUp = await _body(request, LoginStepUp)
    ip = client_ip(request)
    device, fresh = _device(request)
    try:
        result = await svc.accounts.login_step_up(
            body.step_up_token,
            body.code,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            device=device,
        )
    except AuthenticationFailed:
        await audit(svc.db, actor="anonymous", action="auth.step_up_failed", ip=ip)
        raise
    await audit(svc.db, actor="anonymous", action="auth.step_up", ip=ip)
    return _set_device(request, _tokens(request, result), fresh)


@router.post("/auth/login/mfa")
async def login_mfa(request: Request) -> Response:
    svc = services(request)
    body: LoginMfa = await _body(request, LoginMfa)
    ip = client_ip(request)
    device, fresh = _device(request)
    try:
        result = await svc.accounts.login_mfa(
            body.mfa_token,
            code=body.code,
            recovery_code=body.recovery_code,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            device=device,
        )
    except AuthenticationFailed:  # a wrong or replayed code, or a spent challenge
        await audit(svc.db, actor="anonymous", action="auth.login_mfa_failed", ip=ip)
        raise
    await audit(svc.db, actor="anonymous", action="auth.login_mfa", ip=ip)
    return _set_device(request, _tokens(request, result), fresh)


@router.post("/auth/refresh")
async def refresh(request: Request) -> Response:
    body: Refresh = await _body(request, Refresh)
    cookie = refresh_cookie.cookie_mode(request)
    token = body.refresh_token or (refresh_cookie.cookie_token(request) if cookie else None)
    if token is None:
        raise AuthenticationFailed("missing refresh token", code="unauthenticated")
    try:
        result = await services(request).accounts.refresh(token)
    except AuthenticationFailed as exc:
        if not cookie:
            raise
        # A spent or revoked cookie is of no further use: drop it with the refusal.
        response = render_parley_error(exc)
        refresh_cookie.clear(response, request)
        return response
    return _tokens(request, result)


@router.post("/auth/logout")
async def logout(request: Request) -> Response:
    """Ends this session; after a single sign-on, the answer's ``end_session_url`` is
    where the browser goes to end the provider's session too."""
    auth = await current_user(request)
    end_session = await sso.logout_url(request, auth.claims.sid)
    await services(request).accounts.logout(auth)
    body: dict[str, Any] = {"revoked_sessions": 1}
    if end_session is not None:
        body["end_session_url"] = end_session
    response = _json(body)
    refresh_cookie.clear(response, request)
    return response


@router.post("/auth/logout-all")
async def logout_all(request: Request) -> Response:
    """Ends every session of the account; when this one came from a single sign-on, the
    answer's ``end_session_url`` ends the provider's session too, as ``/auth/logout``."""
    auth = await current_user(request)
    svc = services(request)
    end_session = await sso.logout_url(request, auth.claims.sid)
    count = await svc.accounts.logout_all(auth.user.id)
    await audit(svc.db, actor=auth.user.id, action="auth.logout_all", ip=client_ip(request))
    body: dict[str, Any] = {"revoked_sessions": count}
    if end_session is not None:
        body["end_session_url"] = end_session
    response = _json(body)
    refresh_cookie.clear(response, request)
    return response


@router.get("/auth/sessions")
async def sessions(request: Request) -> Response:
    auth = await current_user(request)
    rows = await services(request).accounts.sessions.list_active(auth.user.id)
    for row in rows:
        row["current"] = row["id"] == auth.claims.sid
    return _json({"data": rows})


@router.delete("/auth/sessions/{session_id}")
async def revoke_session(session_id: str, request: Request) -> Response:
    auth = await current_user(request)
    await services(request).accounts.revoke_session(auth, session_id)
    return _json({"id": session_id, "revoked": True})


@router.post("/auth/password")
async def change_password(request: Request) -> Response:
    refuse_if_sso_only(request)
    auth = await current_user(request)
    body: PasswordChange = await _body(request, PasswordChange)
    svc = services(request)
    await svc.accounts.change_password(auth, body.current_password, body.new_password)
    await audit(svc.db, actor=auth.user.id, action="auth.password_change", ip=client_ip(request))
    return _json({"changed": True})


@router.post("/auth/mfa/enroll")
async def mfa_enroll(request: Request) -> Response:
    """The new secret, its ``otpauth://`` URI and that URI as a QR code (an SVG ``data:``
    URI, drawn here so the browser needs no QR library and fetches nothing)."""
    auth = await current_user(request)
    enrolled = await services(request).accounts.mfa_enroll(auth)
    qr = segno.make(enrolled["otpauth_uri"], error="m")
    enrolled["qr_svg"] = qr.svg_data_uri(scale=5, border=2, dark="#000", light="#fff")
    return _json(enrolled)


@router.post("/auth/mfa/verify")
async def mfa_verify(request: Request) -> Response:
    auth = await current_user(request)
    body: Code = await _body(request, Code)
    svc = services(request)
    codes = await svc.accounts.mfa_verify(auth, body.code)
    await audit(svc.db, actor=auth.user.id, action="auth.mfa_enabled", ip=client_ip(request))
    return _json({"enabled": True, "recovery_codes": codes})


@router.post("/auth/mfa/disable")
async def mfa_disable(request: Request) -> Response:
    auth = await current_user(request)
    body: Code = await _body(request, Code)
    svc = services(request)
    await svc.accounts.mfa_disable(auth, body.code)
    await audit(svc.db, actor=auth.user.id, action="auth.mfa_disabled", ip=client_ip(request))
    return _json({"enabled": False})


@router.get("/api/me")
async def me(request: Request) -> Response:
    auth = await current_user(request)
    svc = services(request)
    roles = await svc.accounts.users.roles(auth.user.id)
    return _json(
        {
            **auth.user.public(),
            "email_verification": svc.recovery.verification,
            "teams": [{"id": t, "role": r} for t, r in sorted(roles.items())],
            "session_id": auth.claims.sid,
            "amr": list(auth.claims.amr),
        }
    )


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    body = services(request).accounts.tokens.jwks()
    return json_response(body, headers={"Cache-Control": "public, max-age=300"})
