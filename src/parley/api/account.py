"""``/api/account``: download everything Parley holds about you, and delete the account.

Deletion asks for the account's password or one of its passkeys again (a stolen access
token alone cannot erase an account), and the email typed out as confirmation. It then
ends every session (refused on every instance, sockets closed), revokes the personal
keys in the shared state, erases the chat data (``chat/erase.py``) and the identity data
(``identity/erase.py``), and records the deletion in the audit log under a tombstone id
that nothing links back to the account.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from parley.api import refresh_cookie
from parley.api.auth import _body, _json, current_user
from parley.api.bodies import Body
from parley.api.deps import client_ip, services
from parley.api.passkeys import relying_party
from parley.chat.erase import erase_chat, export_chat
from parley.errors import InvalidRequest
from parley.identity.audit import audit
from parley.identity.erase import erase_identity, export_identity

router = APIRouter(tags=["account"])

EXPORT_FORMAT = "parley.account/1"


class AccountDelete(Body):
    confirm: str = Field(max_length=320)
    """The account's email, typed out."""
    password: str | None = Field(default=None, max_length=1024)
    credential: dict[str, Any] | None = None
    """A passkey assertion for ``POST /api/account/reauth/options``' challenge."""


@router.get("/api/account/export")
async def export(request: Request) -> Response:
    """One JSON document, served as a download."""
    auth = await current_user(request)
    svc = services(request)
    body = {
        "format": EXPORT_FORMAT,
        "exported_ms": int(time.time() * 1000),
        **await export_identity(svc.db, auth.user.id),
        **await export_chat(svc.db, svc.conversations, auth.user.id),
    }
    await audit(svc.db, actor=auth.user.id, action="user.export", ip=client_ip(request))
    data = json.dumps(body, ensure_ascii=False, default=str, indent=1).encode()
    return Response(
        data,
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="parley-account.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/api/account/reauth/options")
async def reauth_options(request: Request) -> Response:
    auth = await current_user(request)
    svc = services(request)
    options = await svc.accounts.passkeys.assertion_options(
        relying_party(request), "reauth", auth.user.id
    )
    return _json(options)


@router.post("/api/account/delete")
async def delete_account(request: Request) -> Response:
    auth = await current_user(request)
    body: AccountDelete = await _body(request, AccountDelete)
    svc = services(request)
    if body.confirm.strip().lower() != auth.user.email:
        raise InvalidRequest("type the account's email to confirm", param="confirm")
    ip = client_ip(request)
    method = await svc.accounts.reauthenticate(
        auth,
        password=body.password,
        credential=body.credential,
        rp=relying_party(request) if body.credential is not None else None,
        ip=ip,
    )
    user_id = auth.user.id
    sessions = await svc.accounts.logout_all(user_id)
    conversations = await erase_chat(svc.db, user_id)
    erased = await erase_identity(svc.db, user_id, auth.user.email)
    for key_id in erased["key_ids"]:
        await svc.admission.revoke("key", key_id)
        svc.keys.forget(key_id)
    svc.accounts.forget_user(user_id)
    await audit(
        svc.db,
        actor=erased["tombstone"],
        action="user.deleted",
        target=erased["tombstone"],
        detail={
            "reauth": method,
            "sessions": sessions,
            "conversations": conversations,
            "keys": len(erased["key_ids"]),
        },
    )
    response = _json({"deleted": True})
    refresh_cookie.clear(response, request)
    return response
