"""Users, teams and memberships: the SQL side of accounts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, select, update

from parley.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from parley.gateway.accounting.caller import Limits
from parley.identity.keys import new_id, now_ms
from parley.store.db import Database
from parley.store.tables import memberships, teams, users

Role = Literal["owner", "admin", "member", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "admin", "member", "viewer")
MANAGING_ROLES = frozenset({"owner", "admin"})
_OWNERS_ONLY = "only an owner or a global admin may make, change or remove an owner"
_MEMBERS_ONLY = (
    "a team admin may change only the roles of the team's members; "
    "invite anyone else with POST /admin/teams/{team_id}/invitations"
)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    is_admin: bool
    disabled: bool
    mfa_enabled: bool
    password_hash: str
    mfa_secret: str | None
    email_verified: bool = False
    tier: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "is_admin": self.is_admin,
            "mfa_enabled": self.mfa_enabled,
            "email_verified": self.email_verified,
            "tier": self.tier,
        }


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 320 or " " in email:
        raise InvalidRequest("email is not a valid address", param="email")
    return email


def _user(row: Any) -> User:
    r = row._mapping
    return User(
        r["id"],
        r["email"],
        r["name"],
        bool(r["is_admin"]),
        bool(r["disabled"]),
        bool(r["mfa_enabled"]),
        r["password_hash"],
        r["mfa_secret"],
        r["email_verified_ms"] is not None,
        r["tier"],
    )


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, *, email: str, name: str, password_hash: str, is_admin: bool = False
    ) -> User:
        user_id = new_id()
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    users.insert().values(
                        id=user_id,
                        email=email,
                        name=name,
                        password_hash=password_hash,
                        is_admin=is_admin,
                        disabled=False,
                        mfa_enabled=False,
                        created_ms=now_ms(),
                    )
                )
        except Conflict:
            raise Conflict("an account with this email already exists", param="email") from None
        return await self.get(user_id)

    async def any_exist(self) -> bool:
        async with self._db.read() as conn:
            return (await conn.execute(select(users.c.id).limit(1))).first() is not None

    async def get(self, user_id: str) -> User:
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise NotFound(f"no user with id {user_id!r}")
        return _user(row)

    async def limits(self, user_id: str) -> Limits:
        """The user's own limits and budget (what the chat product bills against)."""
        return (await self.billing(user_id))[0]

    async def billing(self, user_id: str) -> tuple[Limits, str | None]:
        """The user's own limits and budget, and their user tier (whose limits apply to
        them as a member), from one read."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise NotFound(f"no user with id {user_id!r}")
        values = dict(row._mapping)
        return Limits.from_row(values), values.get("tier")

    async def by_id(self, user_id: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return None if row is None else _user(row)

    async def by_email(self, email: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.email == email))).first()
        return None if row is None else _user(row)

    async def set_fields(self, user_id: str, **values: Any) -> None:
        async with self._db.write() as conn:
            await conn.execute(update(users).where(users.c.id == user_id).values(**values))

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        query = (
            select(
                users.c.id,
                users.c.email,
                users.c.name,
                users.c.is_admin,
                users.c.disabled,
                users.c.mfa_enabled,
            )
            .order_by(users.c.created_ms)
            .limit(limit)
            .offset(offset)
        )
        async with self._db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def roles(self, user_id: str) -> dict[str, str]:
        """team id -> role, for every team the user belongs to."""
        query = select(memberships.c.team_id, memberships.c.role).where(
            memberships.c.user_id == user_id
        )
        async with self._db.read() as conn:
            return {r.team_id: r.role for r in await conn.execute(query)}

    async def teams_requiring_mfa(self, user_id: str) -> list[str]:
        query = (
            select(teams.c.id)
            .select_from(memberships.join(teams, teams.c.id == memberships.c.team_id))
            .where(memberships.c.user_id == user_id, teams.c.mfa_required.is_(True))
        )
        async with self._db.read() as conn:
            return [r.id for r in await conn.execute(query)]

    async def create_team(self, name: str, *, owner_id: str | None = None) -> dict[str, Any]:
        team_id = new_id()
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    teams.insert().values(
                        id=team_id, name=name, mfa_required=False, created_ms=now_ms()
                    )
                )
                if owner_id is not None:
                    await conn.execute(
                        memberships.insert().values(user_id=owner_id, team_id=team_id, role="owner")
                    )
        except Conflict:
            raise Conflict(f"a team named {name!r} already exists", param="name") from None
        return await self.team(team_id)

    async def team(self, team_id: str) -> dict[str, Any]:
        async with self._db.read() as conn:
            row = (await conn.execute(select(teams).where(teams.c.id == team_id))).first()
            if row is None:
                raise NotFound(f"no team with id {team_id!r}")
            members = await conn.execute(
                select(
                    memberships.c.user_id,
                    memberships.c.role,
                    memberships.c.invitation_id,
                    users.c.email,
                    users.c.name,
                )
                .select_from(memberships.join(users, users.c.id == memberships.c.user_id))
                .where(memberships.c.team_id == team_id)
                .order_by(users.c.email)
            )
            found = dict(row._mapping)
            # Email and name so a team's admins can tell their members apart (they may
            # not list users: that is a global admin's view).
            found["members"] = [
                {
                    "user_id": m.user_id,
                    "role": m.role,
                    "by_invitation": m.invitation_id is not None,
                    "email": m.email,
                    "name": m.name,
                }
                for m in members
            ]
        return found

    async def list_teams(self, only: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """Teams by name with their member counts: every team, or those in ``only`` (the
        teams a team admin manages; an empty set lists nothing)."""
        count = (
            select(func.count())
            .where(memberships.c.team_id == teams.c.id)
            .correlate(teams)
            .scalar_subquery()
        )
        query = select(teams, count.label("member_count")).order_by(teams.c.name)
        if only is not None:
            query = query.where(teams.c.id.in_(sorted(only)))
        async with self._db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def update_team(self, team_id: str, **values: Any) -> None:
        async with self._db.write() as conn:
            result = await conn.execute(update(teams).where(teams.c.id == team_id).values(**values))
        if result.rowcount == 0:
            raise NotFound(f"no team with id {team_id!r}")

    async def joined_by_invitation(self, team_id: str, user_id: str) -> bool:
        """Whether the user is a member of the team who accepted an invitation to it."""
        query = select(memberships.c.invitation_id).where(
            memberships.c.team_id == team_id, memberships.c.user_id == user_id
        )
        async with self._db.read() as conn:
            return await conn.scalar(query) is not None

    async def set_member(
        self,
        team_id: str,
        user_id: str,
        role: Role,
        *,
        owner_rights: bool = True,
        members_only: bool = False,
    ) -> None:
        """Add the user to the team or change their role. Making, demoting or removing an
        owner needs ``owner_rights`` (403); demoting the team's only owner is refused
        (409 ``last_owner``). With ``members_only`` (a team admin) only a member's role
        may change: anyone else, whether or not the id exists, is the same 403, so a
        team admin neither adds people without their consent nor learns which ids exist.
        All of it is decided under the team's lock."""
        await self.team(team_id)
        if not members_only:
            await self.get(user_id)
        async with self._db.write() as conn:
            current = await _locked_role(conn, team_id, user_id)
            if current is None and members_only:
                raise PermissionDenied(_MEMBERS_ONLY)
            if "owner" in (role, current) and not owner_rights:
                raise PermissionDenied(_OWNERS_ONLY)
            if current is None:
                await conn.execute(
                    memberships.insert().values(user_id=user_id, team_id=team_id, role=role)
                )
                return
            if current == "owner" and role != "owner":
                await _keep_an_owner(conn, team_id, user_id)
            await conn.execute(
                update(memberships)
                .where(memberships.c.team_id == team_id, memberships.c.user_id == user_id)
                .values(role=role)
            )

    async def remove_member(self, team_id: str, user_id: str, *, owner_rights: bool = True) -> None:
        """Take the user out of the team (a no-op when they are not in it); an owner only
        with ``owner_rights``, and never the team's only owner."""
        async with self._db.write() as conn:
            if await _locked_role(conn, team_id, user_id) == "owner":
                if not owner_rights:
                    raise PermissionDenied(_OWNERS_ONLY)
                await _keep_an_owner(conn, team_id, user_id)
            await conn.execute(
                delete(memberships).where(
                    memberships.c.team_id == team_id, memberships.c.user_id == user_id
                )
            )


async def _locked_role(conn: Any, team_id: str, user_id: str) -> str | None:
    """The member's role, read after locking the team's row (PostgreSQL), so two owners
    stepping down at once cannot both see the other still there. SQLite has one writer."""
    await conn.execute(select(teams.c.id).where(teams.c.id == team_id).with_for_update())
    role = await conn.scalar(
        select(memberships.c.role).where(
            memberships.c.team_id == team_id, memberships.c.user_id == user_id
        )
    )
    return None if role is None else str(role)


async def _keep_an_owner(conn: Any, team_id: str, leaving: str) -> None:
    others = await conn.scalar(
        select(func.count())
        .select_from(memberships)
        .where(
            memberships.c.team_id == team_id,
            memberships.c.role == "owner",
            memberships.c.user_id != leaving,
        )
    )
    if not others:
        raise Conflict(
            "a team keeps at least one owner: make another member owner first",
            code="last_owner",
        )
