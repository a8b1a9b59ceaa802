"""``/auth/passkeys``: register, sign in with, list, rename and remove passkeys.

The ceremonies come in pairs: ``.../options`` hands the browser the JSON that
``navigator.credentials.create()``/``get()`` take (``PublicKeyCredential``'s
``parseCreationOptionsFromJSON`` reads it), and the POST beside it receives the
credential's ``toJSON()``.

The relying party is the configured one (``PARLEY_WEBAUTHN_RP_ID``, ``..._ORIGINS``). With
none configured it is the request's own host and origin, but only on a loopback host
(``localhost``, where a developer or the embedded tier runs): elsewhere the ``Host``
header is the client's to choose, and a credential bound to whatever it said would be
worthless, so passkeys stay off until the operator names the site.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from parley.api import refresh_cookie
from parley.api.auth import _body, _json, _tokens, current_user
from parley.api.bodies import Body
from parley.api.deps import client_ip, services
from parley.errors import AuthenticationFailed, PermissionDenied
from parley.identity.audit import audit
from parley.identity.passkeys import RelyingParty

router = APIRouter(tags=["auth"])

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class PasskeyRegister(Body):
    credential: dict[str, Any]
    """``PublicKeyCredential.toJSON()`` of the created credential."""
    name: str = Field(default="Passkey", min_length=1, max_length=100)


class PasskeyLogin(Body):
    credential: dict[str, Any]
    """``PublicKeyCredential.toJSON()`` of the assertion."""
    mfa_token: str | None = Field(default=None, max_length=4000)
    """After a password (``/auth/login`` answered ``mfa_required``): the passkey as the
    second factor. Absent: a passwordless sign-in."""


class PasskeyMfaOptions(Body):
    mfa_token: str = Field(max_length=4000)


class PasskeyRename(Body):
    name: str = Field(min_length=1, max_length=100)


def _loopback(host: str) -> bool:
    return host in _LOOPBACK_NAMES or host.endswith(".localhost")


def relying_party(request: Request) -> RelyingParty:
    settings = services(request).settings
    name = settings.webauthn_rp_name
    if settings.webauthn_rp_id:
        rp_id = settings.webauthn_rp_id
        return RelyingParty(rp_id, name, settings.webauthn_origins or [f"https://{rp_id}"])
    host = (request.url.hostname or "").strip("[]")
    if not _loopback(host):
        raise PermissionDenied(
            "passkeys are not configured here: set PARLEY_WEBAUTHN_RP_ID",
            code="passkeys_not_configured",
        )
    own = f"{request.url.scheme}://{request.headers.get('host', host)}"
    return RelyingParty(host, name, settings.webauthn_origins or [own])


@router.post("/auth/passkeys/register/options")
async def register_options(request: Request) -> Response:
    auth = await current_user(request)
    svc = services(request)
    options = await svc.accounts.passkeys.registration_options(relying_party(request), auth.user)
    return _json(options)


@router.post("/auth/passkeys/register")
async def register(request: Request) -> Response:
    auth = await current_user(request)
    body: PasskeyRegister = await _body(request, PasskeyRegister)
    svc = services(request)
    made = await svc.accounts.passkeys.register(
        relying_party(request), auth.user, body.credential, body.name
    )
    await audit(
        svc.db,
        actor=auth.user.id,
        action="auth.passkey_added",
        target=made["id"],
        ip=client_ip(request),
    )
    return _json(made, 201)


@router.post("/auth/passkeys/login/options")
async def login_options(request: Request) -> Response:
    svc = services(request)
    return _json(await svc.accounts.passkeys.assertion_options(relying_party(request), "login"))


@router.post("/auth/passkeys/mfa/options")
async def mfa_options(request: Request) -> Response:
    body: PasskeyMfaOptions = await _body(request, PasskeyMfaOptions)
    svc = services(request)
    return _json(await svc.accounts.passkey_mfa_options(body.mfa_token, relying_party(request)))


@router.post("/auth/passkeys/login")
async def login(request: Request) -> Response:
    svc = services(request)
    body: PasskeyLogin = await _body(request, PasskeyLogin)
    ip = client_ip(request)
    try:
        result = await svc.accounts.login_passkey(
            relying_party(request),
            body.credential,
            mfa_token=body.mfa_token,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            kind="web" if refresh_cookie.cookie_mode(request) else "api",
        )
    except AuthenticationFailed as exc:
        await audit(
            svc.db,
            actor="anonymous",
            action="auth.passkey_login_failed",
            ip=ip,
            detail={"code": exc.code},
        )
        raise
    await audit(svc.db, actor="anonymous", action="auth.passkey_login", ip=ip)
    return _tokens(request, result)


@router.get("/auth/passkeys")
async def list_passkeys(request: Request) -> Response:
    auth = await current_user(request)
    return _json({"data": await services(request).accounts.passkeys.listed(auth.user.id)})


@router.patch("/auth/passkeys/{passkey_id}")
async def rename(passkey_id: str, request: Request) -> Response:
    auth = await current_user(request)
    body: PasskeyRename = await _body(request, PasskeyRename)
    renamed = await services(request).accounts.passkeys.rename(auth.user.id, passkey_id, body.name)
    return _json(renamed)


@router.delete("/auth/passkeys/{passkey_id}")
async def remove(passkey_id: str, request: Request) -> Response:
    auth = await current_user(request)
    svc = services(request)
    await svc.accounts.passkeys.remove(auth.user.id, passkey_id)
    await audit(
        svc.db,
        actor=auth.user.id,
        action="auth.passkey_removed",
        target=passkey_id,
        ip=client_ip(request),
    )
    return _json({"id": passkey_id, "deleted": True})
