"""``/admin``: keys, teams, users, deployments and cache (usage, overview and audit are
in ``admin_usage.py``). Every route checks the actor's rights first.

Actors: the bootstrap ``PARLEY_ADMIN_KEY`` and global-admin users may do everything; a
team's owners and admins may manage that team's keys and read its usage; nobody else may
touch ``/admin`` (403), whatever ids they put in the request.
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.deps import (
    base_url,
    bearer_token,
    client_ip,
    int_param,
    is_admin_key,
    json_body,
    json_response,
    services,
)
from parley.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from parley.gateway.accounting.budgets import current_period, has_budget
from parley.gateway.accounting.caller import Limits, Principal
from parley.gateway.accounting.forecast import forecast
from parley.gateway.accounting.limits import SpendLoader
from parley.gateway.accounting.policy import budget_limits
from parley.identity.audit import audit
from parley.identity.keys import KEY_PREFIX
from parley.identity.schemas import (
    InvitationCreate,
    KeyCreate,
    MemberSet,
    PasswordReset,
    TeamCreate,
    TeamUpdate,
    UserUpdate,
    validated,
)
from parley.identity.team_keys import check_team_admin_key
from parley.identity.users import MANAGING_ROLES
from parley.store.alerts import budgeted_holders, list_deliveries, tier_members

router = APIRouter(prefix="/admin", tags=["admin"])


class Actor(msgspec.Struct, frozen=True):
    id: str
    is_admin: bool
    admin_of: frozenset[str] = frozenset()
    """Teams this actor owns or administers."""
    roles: dict[str, str] = {}

    def may_manage_team(self, team_id: str | None) -> bool:
        return self.is_admin or (team_id is not None and team_id in self.admin_of)

    def require_team(self, team_id: str | None, refusal: str) -> None:
        if not self.may_manage_team(team_id):
            raise PermissionDenied(refusal)


async def actor(request: Request) -> Actor:
    """The admin key, or a logged-in user with admin rights somewhere; anyone else 401/403.
    A team that requires MFA grants its admins nothing unless this session used it."""
    svc = services(request)
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("missing credentials for /admin", code="unauthenticated")
    if is_admin_key(svc, token):
        return Actor("admin-key", is_admin=True)
    if token.startswith(KEY_PREFIX):
        raise PermissionDenied("API keys cannot use /admin; log in as an admin")
    auth = await svc.accounts.authenticate(token)
    if auth.user.is_admin:
        return Actor(auth.user.id, is_admin=True)
    roles = await svc.accounts.users.roles(auth.user.id)
    managed = {team for team, role in roles.items() if role in MANAGING_ROLES}
    if managed and not {"otp", "hwk"} & set(auth.claims.amr):  # TOTP or a passkey
        managed -= set(await svc.accounts.users.teams_requiring_mfa(auth.user.id))
    if not managed:
        raise PermissionDenied("this account has no admin rights")
    return Actor(auth.user.id, is_admin=False, admin_of=frozenset(managed), roles=roles)


def require_global(who: Actor) -> None:
    if not who.is_admin:
        raise PermissionDenied("only a global admin may do this")


def _key_view(row: dict[str, Any]) -> dict[str, Any]:
    view = dict(row)
    for field in ("budget_nusd", "soft_budget_nusd"):
        value = view.pop(field)
        view[field.replace("_nusd", "_usd")] = None if value is None else value / 1e9
    return view


@router.post("/keys")
async def create_key(request: Request) -> Response:
    who = await actor(request)
    body: KeyCreate = validated(KeyCreate, await json_body(request))
    who.require_team(body.team_id, "only a global admin or the team's admins may create this key")
    svc = services(request)
    spec = body.spec()
    if not who.is_admin:
        await check_team_admin_key(svc.accounts.users, who.id, body.team_id or "", spec)
    created = await svc.keys.create(spec, created_by=who.id)
    await audit(svc.db, actor=who.id, action="key.create", target=created.id, ip=client_ip(request))
    view = _key_view(await svc.keys.get(created.id))
    return json_response({**view, "key": created.key}, 201)


@router.get("/keys")
async def list_keys(request: Request) -> Response:
    who = await actor(request)
    team_id = request.query_params.get("team_id")
    who.require_team(team_id, "list keys of a team you administer: pass ?team_id=")
    svc = services(request)
    rows = await svc.keys.list(team_id=team_id, user_id=request.query_params.get("user_id"))
    now = int(time.time() * 1000)
    data = [await _with_spend(svc.admission.spent_since, _key_view(r), r, now) for r in rows]
    return json_response({"object": "list", "data": data})


async def _with_spend(
    spend: SpendLoader, view: dict[str, Any], row: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    """The key's spend in its budget's current period (the same count its budget is
    checked against; a key without a budget counts in calendar months)."""
    limits = Limits.from_row(row)
    period = current_period(limits.budget_period, now_ms, limits.budget_reset_ms)
    spent = await spend("key", row["id"], period.start_ms)
    return {**view, "spent_usd": spent / 1e9, "spend_period": period.id}


async def _owned_key(request: Request, key_id: str) -> tuple[Actor, dict[str, Any]]:
    who = await actor(request)
    row = await services(request).keys.get(key_id)
    who.require_team(row["team_id"], "only a global admin or the key's team admins may do this")
    return who, row


@router.get("/keys/{key_id}")
async def get_key(key_id: str, request: Request) -> Response:
    _, row = await _owned_key(request, key_id)
    return json_response(_key_view(row))


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> Response:
    who, _ = await _owned_key(request, key_id)
    svc = services(request)
    await svc.keys.revoke(key_id)
    await svc.admission.revoke("key", key_id)
    await audit(svc.db, actor=who.id, action="key.revoke", target=key_id, ip=client_ip(request))
    return json_response({"id": key_id, "revoked": True})


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, request: Request) -> Response:
    who, _ = await _owned_key(request, key_id)
    body = await json_body(request)
    grace = body.get("grace_seconds", 86400) if isinstance(body, dict) else 86400
    if not isinstance(grace, int | float) or isinstance(grace, bool) or grace < 0:
        raise InvalidRequest("grace_seconds must be a number >= 0", param="grace_seconds")
    svc = services(request)
    created = await svc.keys.rotate(key_id, grace_seconds=float(grace))
    await audit(svc.db, actor=who.id, action="key.rotate", target=key_id, ip=client_ip(request))
    return json_response({"id": key_id, "key": created.key, "prefix": created.prefix})


@router.post("/keys/{key_id}/reset-budget")
async def reset_key_budget(key_id: str, request: Request) -> Response:
    who, _ = await _owned_key(request, key_id)
    if not who.is_admin:
        raise PermissionDenied("only a global admin may reset a budget")
    svc = services(request)
    await svc.keys.reset_budget(key_id)
    await audit(
        svc.db, actor=who.id, action="key.reset_budget", target=key_id, ip=client_ip(request)
    )
    return json_response(_key_view(await svc.keys.get(key_id)))


@router.get("/deployments")
async def deployments(request: Request) -> Response:
    """Each deployment's live state on this instance: breaker, EWMA latency and time to
    first token, error rate and requests in the last minute, calls in flight."""
    who = await actor(request)
    require_global(who)
    gateway = request.app.state.gateway
    rows = [h.snapshot() for h in gateway.health.all()]
    gates = gateway.resilience.gates
    groups = [
        {"group": name, "capacity": gate.capacity, "in_use": gate.in_use, "waiting": gate.waiting}
        for name, gate in gates.items()
    ]
    return json_response({"object": "list", "data": rows, "groups": groups})


@router.get("/alerts")
async def alert_deliveries(request: Request) -> Response:
    """Budget alert webhooks: each event (holder, period, threshold), its status
    (``pending``, ``delivered``, ``failed`` after the last retry), attempts, last error."""
    who = await actor(request)
    require_global(who)
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise InvalidRequest("status must be pending, delivered or failed", param="status")
    limit = int_param(q.get("limit"), "limit", 100, 1, 1000)
    offset = int_param(q.get("offset"), "offset", 0, 0, 10**9)
    rows = await list_deliveries(services(request).db, status, limit, offset)
    data = []
    for row in rows:
        row.pop("lease_until_ms", None)
        row["spent_usd"] = row.pop("spent_nusd") / 1e9
        row["budget_usd"] = row.pop("budget_nusd") / 1e9
        data.append(row)
    return json_response({"object": "list", "data": data})


@router.get("/spend/forecast")
async def spend_forecast(request: Request) -> Response:
    """Per budget holder (the installation, model groups and deployments, keys, users and
    teams with a budget, and each member of a tier with one): spend so far this period and
    a projection to its end at the last hour's rate."""
    who = await actor(request)
    require_global(who)
    svc = services(request)
    gateway = request.app.state.gateway
    policies = gateway.policies
    holders: list[Principal] = []
    if has_budget(policies.budgets.installation):
        holders.append(Principal("installation", "all", policies.budgets.installation))
    for group in gateway.registry.groups:
        limits = policies.group_limits(group)
        if has_budget(limits):
            holders.append(Principal("model", group.name, limits))
        for dep in group.deployments:
            if dep.budget is not None:
                holders.append(Principal("deployment", dep.label, budget_limits(dep.budget)))
    tiers = {name: t for name, t in policies.budgets.tiers.items() if has_budget(t)}
    for member in await tier_members(svc.db, sorted(tiers)):
        holders.append(
            Principal(
                "tier",
                f"{member['tier']}:{member['id']}",
                tiers[member["tier"]],
                f"{member['tier']} (member {member['email']})",
            )
        )
    for row in await budgeted_holders(svc.db):
        holders.append(Principal(row["scope"], row["id"], Limits.from_row(row), row["label"]))
    found = await forecast(holders, svc.admission.spent_since, int(time.time() * 1000))
    return json_response({"object": "list", "data": [f.view() for f in found]})


@router.delete("/cache")
async def invalidate_cache(request: Request) -> Response:
    """Drop cached answers by namespace (``?namespace=`` as in ``x-parley-cache``'s docs,
    or ``?team_id=``), by model group (``?model=``), or both; sub-namespaces go with their
    namespace. Global admins may drop anything; team admins their team's namespace."""
    who = await actor(request)
    q = request.query_params
    namespace, team_id, model = q.get("namespace"), q.get("team_id"), q.get("model")
    if team_id is not None and namespace is None:
        namespace = f"team.{team_id}"
    if not who.is_admin:  # rights first: a team admin may drop only their team's namespace
        team = namespace.removeprefix("team.").split(".", 1)[0] if namespace else None
        owned = team if namespace and namespace.startswith("team.") else None
        who.require_team(owned, "only a global admin may drop cache entries beyond one team's")
    if team_id is not None and namespace != f"team.{team_id}":
        raise InvalidRequest("pass namespace or team_id, not both", param="team_id")
    if namespace is None and model is None:
        raise InvalidRequest("pass namespace, team_id or model (or several)", param="namespace")
    if namespace is not None and not _NAMESPACE.fullmatch(namespace):
        raise InvalidRequest("namespace is not a cache namespace", param="namespace")
    gateway = request.app.state.gateway
    if model is not None:
        model = gateway.registry.group(model).name
    if gateway.cache is None:
        return json_response({"dropped": 0})
    dropped = await gateway.cache.invalidate(namespace, model)
    svc = services(request)
    await audit(
        svc.db,
        actor=who.id,
        action="cache.invalidate",
        target=f"{namespace or '*'}/{model or '*'}",
        ip=client_ip(request),
    )
    return json_response({"dropped": dropped})


_NAMESPACE = re.compile(r"(shared|team|key|user)\.[A-Za-z0-9_.-]{1,64}|local")


# --- teams and users -------------------------------------------------------------------


@router.post("/teams")
async def create_team(request: Request) -> Response:
    who = await actor(request)
    require_global(who)
    body: TeamCreate = validated(TeamCreate, await json_body(request))
    svc = services(request)
    team = await svc.accounts.users.create_team(body.name, owner_id=body.owner_id)
    await audit(
        svc.db, actor=who.id, action="team.create", target=team["id"], ip=client_ip(request)
    )
    return json_response(_team_view(team), 201)


@router.get("/teams")
async def list_teams(request: Request) -> Response:
    """Every team for a global admin; the teams a team admin manages for them (never a
    count or a name of anyone else's)."""
    who = await actor(request)
    rows = await services(request).accounts.users.list_teams(None if who.is_admin else who.admin_of)
    return json_response({"object": "list", "data": [_team_view(r) for r in rows]})


@router.get("/teams/{team_id}")
async def get_team(team_id: str, request: Request) -> Response:
    who = await actor(request)
    who.require_team(team_id, "only a global admin or the team's admins may see this team")
    return json_response(_team_view(await services(request).accounts.users.team(team_id)))


@router.patch("/teams/{team_id}")
async def update_team(team_id: str, request: Request) -> Response:
    who = await actor(request)
    who.require_team(team_id, "only a global admin or the team's admins may change this team")
    body: TeamUpdate = validated(TeamUpdate, await json_body(request))
    values = body.values()
    if set(values) - {"mfa_required"} and not who.is_admin:
        raise PermissionDenied("only a global admin may change a team's limits and budget")
    svc = services(request)
    await svc.accounts.users.update_team(team_id, **values)
    await audit(
        svc.db,
        actor=who.id,
        action="team.update",
        target=team_id,
        ip=client_ip(request),
        detail={"fields": sorted(values)},
    )
    return json_response(_team_view(await svc.accounts.users.team(team_id)))


def _owner_rights(who: Actor, team_id: str) -> bool:
    """Whether ``who`` may make, demote or remove an owner: the team's owners and global
    admins (a team admin who could would take the team from the people it belongs to)."""
    return who.is_admin or who.roles.get(team_id) == "owner"


@router.put("/teams/{team_id}/members/{user_id}")
async def set_member(team_id: str, user_id: str, request: Request) -> Response:
    who = await actor(request)
    who.require_team(team_id, "only a global admin or the team's admins may change members")
    body: MemberSet = validated(MemberSet, await json_body(request))
    svc = services(request)
    await svc.accounts.users.set_member(
        team_id,
        user_id,
        body.role,
        owner_rights=_owner_rights(who, team_id),
        members_only=not who.is_admin,
    )
    await audit(
        svc.db,
        actor=who.id,
        action="team.member_set",
        target=f"{team_id}/{user_id}",
        ip=client_ip(request),
        detail={"role": body.role},
    )
    return json_response(_team_view(await svc.accounts.users.team(team_id)))


@router.post("/teams/{team_id}/invitations")
async def invite(team_id: str, request: Request) -> Response:
    """Invite an email address to the team; its user joins by accepting (``/api/
    invitations``). The answer is the same whether or not an account has that email."""
    who = await actor(request)
    who.require_team(team_id, "only a global admin or the team's admins may invite")
    body: InvitationCreate = validated(InvitationCreate, await json_body(request))
    if body.role == "owner" and not _owner_rights(who, team_id):
        raise PermissionDenied("only an owner or a global admin may invite an owner")
    svc = services(request)
    await svc.accounts.users.team(team_id)
    created = await svc.accounts.invitations.create(team_id, body.email, body.role, by=who.id)
    await audit(
        svc.db,
        actor=who.id,
        action="team.invite",
        target=f"{team_id}/{created['id']}",
        ip=client_ip(request),
        detail={"role": body.role},
    )
    return json_response(created, 201)


@router.delete("/teams/{team_id}/members/{user_id}")
async def remove_member(team_id: str, user_id: str, request: Request) -> Response:
    who = await actor(request)
    who.require_team(team_id, "only a global admin or the team's admins may change members")
    svc = services(request)
    await svc.accounts.users.remove_member(
        team_id, user_id, owner_rights=_owner_rights(who, team_id)
    )
    await audit(
        svc.db,
        actor=who.id,
        action="team.member_remove",
        target=f"{team_id}/{user_id}",
        ip=client_ip(request),
    )
    return json_response(_team_view(await svc.accounts.users.team(team_id)))


@router.get("/users")
async def list_users(request: Request) -> Response:
    who = await actor(request)
    require_global(who)
    limit = int_param(request.query_params.get("limit"), "limit", 100, 1, 1000)
    offset = int_param(request.query_params.get("offset"), "offset", 0, 0, 10**9)
    rows = await services(request).accounts.users.list_users(limit, offset)
    return json_response({"object": "list", "data": rows})


@router.patch("/users/{user_id}")
async def update_user(user_id: str, request: Request) -> Response:
    who = await actor(request)
    require_global(who)
    body: UserUpdate = validated(UserUpdate, await json_body(request))
    svc = services(request)
    await svc.accounts.users.get(user_id)
    values = body.values()
    await svc.accounts.users.set_fields(user_id, **values)
    svc.accounts.forget_user(user_id)  # a new admin or a disabled account counts at once here
    if values.get("disabled"):
        await svc.accounts.logout_all(user_id)
    await audit(
        svc.db,
        actor=who.id,
        action="user.update",
        target=user_id,
        ip=client_ip(request),
        detail={"fields": sorted(values)},
    )
    return json_response((await svc.accounts.users.get(user_id)).public())


@router.post("/users/{user_id}/password-reset")
async def reset_user_password(user_id: str, request: Request) -> Response:
    """Set a user's password, or make a one-time reset link to hand over (no SMTP needed)."""
    who = await actor(request)
    require_global(who)
    raw = await request.body()
    body = validated(PasswordReset, await json_body(request) if raw else {})
    svc = services(request)
    await svc.accounts.users.get(user_id)
    if body.password is not None:
        await svc.recovery.set_password(user_id, body.password)
        answer: dict[str, Any] = {"id": user_id, "password_set": True}
    else:
        link, seconds = await svc.recovery.reset_link_for(user_id, base_url=base_url(request))
        answer = {"id": user_id, "reset_url": link, "expires_in": int(seconds)}
    await audit(
        svc.db,
        actor=who.id,
        action="user.password_reset_set"
        if body.password is not None
        else "user.password_reset_link",
        target=user_id,
        ip=client_ip(request),
    )
    return json_response(answer, headers={"Cache-Control": "no-store"})


@router.post("/users/{user_id}/mfa-reset")
async def reset_user_mfa(user_id: str, request: Request) -> Response:
    """Turn off a locked-out user's TOTP (and recovery codes) and end their sessions, so
    they sign in with their password and may enrol again. Global admins only, audited."""
    who = await actor(request)
    require_global(who)
    svc = services(request)
    was_on = await svc.accounts.mfa_reset(user_id)
    await audit(
        svc.db,
        actor=who.id,
        action="user.mfa_reset",
        target=user_id,
        ip=client_ip(request),
        detail={"was_enabled": was_on},
    )
    return json_response({"id": user_id, "mfa_enabled": False, "was_enabled": was_on})


def _team_view(team: dict[str, Any]) -> dict[str, Any]:
    return _key_view(team)
