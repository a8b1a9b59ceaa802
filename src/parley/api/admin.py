"""``/admin``: keys and usage. Every route checks the actor's rights first.

Actors: the bootstrap ``PARLEY_ADMIN_KEY`` and global-admin users may do everything; a
team's owners and admins may manage that team's keys and read its usage; nobody else may
touch ``/admin`` (403), whatever ids they put in the request.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.deps import bearer_token, client_ip, is_admin_key, services
from parley.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from parley.identity.audit import audit
from parley.identity.schemas import KeyCreate, validated
from parley.store.usage import GroupBy, aggregate

router = APIRouter(prefix="/admin", tags=["admin"])
_JSON = "application/json"
_GROUP_BY: tuple[GroupBy, ...] = ("day", "key", "user", "team", "model_group")


class Actor(msgspec.Struct, frozen=True):
    id: str
    is_admin: bool
    admin_of: frozenset[str] = frozenset()
    """Teams this actor owns or administers."""

    def may_manage_team(self, team_id: str | None) -> bool:
        return self.is_admin or (team_id is not None and team_id in self.admin_of)


async def actor(request: Request) -> Actor:
    svc = services(request)
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("missing credentials for /admin", code="unauthenticated")
    if is_admin_key(svc, token):
        return Actor("admin-key", is_admin=True)
    raise AuthenticationFailed("invalid credentials for /admin", code="unauthenticated")


def _json(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type=_JSON)


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from None


def _key_view(row: dict[str, Any]) -> dict[str, Any]:
    view = dict(row)
    for field in ("budget_nusd", "soft_budget_nusd"):
        value = view.pop(field)
        view[field.replace("_nusd", "_usd")] = None if value is None else value / 1e9
    return view


@router.post("/keys")
async def create_key(request: Request) -> Response:
    who = await actor(request)
    body: KeyCreate = validated(KeyCreate, await _body(request))
    if not who.may_manage_team(body.team_id):
        raise PermissionDenied("only a global admin or the team's admins may create this key")
    svc = services(request)
    created = await svc.keys.create(body.spec(), created_by=who.id)
    await audit(svc.db, actor=who.id, action="key.create", target=created.id, ip=client_ip(request))
    view = _key_view(await svc.keys.get(created.id))
    return _json({**view, "key": created.key}, 201)


@router.get("/keys")
async def list_keys(request: Request) -> Response:
    who = await actor(request)
    team_id = request.query_params.get("team_id")
    if not who.is_admin and not who.may_manage_team(team_id):
        raise PermissionDenied("list keys of a team you administer: pass ?team_id=")
    svc = services(request)
    rows = await svc.keys.list(team_id=team_id, user_id=request.query_params.get("user_id"))
    return _json({"object": "list", "data": [_key_view(r) for r in rows]})


async def _owned_key(request: Request, key_id: str) -> tuple[Actor, dict[str, Any]]:
    who = await actor(request)
    row = await services(request).keys.get(key_id)
    if not who.may_manage_team(row["team_id"]):
        raise PermissionDenied("only a global admin or the key's team admins may do this")
    return who, row


@router.get("/keys/{key_id}")
async def get_key(key_id: str, request: Request) -> Response:
    _, row = await _owned_key(request, key_id)
    return _json(_key_view(row))


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> Response:
    who, _ = await _owned_key(request, key_id)
    svc = services(request)
    await svc.keys.revoke(key_id)
    await svc.admission.revoke("key", key_id)
    await audit(svc.db, actor=who.id, action="key.revoke", target=key_id, ip=client_ip(request))
    return _json({"id": key_id, "revoked": True})


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, request: Request) -> Response:
    who, _ = await _owned_key(request, key_id)
    body = await _body(request)
    grace = body.get("grace_seconds", 86400) if isinstance(body, dict) else 86400
    if not isinstance(grace, int | float) or isinstance(grace, bool) or grace < 0:
        raise InvalidRequest("grace_seconds must be a number >= 0", param="grace_seconds")
    svc = services(request)
    created = await svc.keys.rotate(key_id, grace_seconds=float(grace))
    await audit(svc.db, actor=who.id, action="key.rotate", target=key_id, ip=client_ip(request))
    return _json({"id": key_id, "key": created.key, "prefix": created.prefix})


@router.get("/usage")
async def usage(request: Request) -> Response:
    who = await actor(request)
    q = request.query_params
    group_by = q.get("group_by", "day")
    if group_by not in _GROUP_BY:
        raise InvalidRequest(f"group_by must be one of {', '.join(_GROUP_BY)}", param="group_by")
    team_id = q.get("team_id")
    if not who.is_admin and not who.may_manage_team(team_id):
        raise PermissionDenied("read usage of a team you administer: pass ?team_id=")
    limit = _int(q.get("limit"), "limit", 100, 1, 1000)
    offset = _int(q.get("offset"), "offset", 0, 0, 10**9)
    rows = await aggregate(
        services(request).db,
        group_by,
        start_ms=_time(q.get("start"), "start"),
        end_ms=_time(q.get("end"), "end"),
        key_id=q.get("key_id"),
        user_id=q.get("user_id"),
        team_id=team_id,
        limit=limit + 1,
        offset=offset,
    )
    more = len(rows) > limit
    data = []
    for row in rows[:limit]:
        row["cost_usd"] = row.pop("cost_nusd") / 1e9
        data.append(row)
    return _json(
        {
            "object": "list",
            "group_by": group_by,
            "data": data,
            "next_offset": offset + limit if more else None,
        }
    )


def _int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}", param=name)
    return value


def _time(raw: str | None, name: str) -> int | None:
    """Milliseconds since the epoch, or an ISO date/time (UTC when no offset is given)."""
    if raw is None:
        return None
    if raw.isdigit():
        return int(raw)
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(
            f"{name} must be epoch milliseconds or an ISO date such as 2026-11-01", param=name
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)
