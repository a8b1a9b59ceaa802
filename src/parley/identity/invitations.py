"""Team invitations: how a user comes to belong to a team with their own consent.

A team admin invites an email address; the user with that address sees the invitation
(``GET /api/invitations``) and accepts it while logged in. Only then are they a member
whose budget the team's admins may bill keys to: a membership records the invitation it
was accepted by. Invitations name an email, never a user id, and answer the same whether
or not an account has it, so inviting cannot be used to learn who has an account.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from parley.errors import NotFound
from parley.identity.keys import new_id, now_ms
from parley.identity.users import Role, User, normalise_email
from parley.store.db import Database
from parley.store.tables import memberships, team_invitations, teams

INVITATION_DAYS = 7


class Invitations:
    def __init__(self, db: Database, *, days: float = INVITATION_DAYS) -> None:
        self._db = db
        self._lifetime_ms = int(days * 86_400_000)

    async def create(self, team_id: str, email: str, role: Role, *, by: str) -> dict[str, Any]:
        now = now_ms()
        row = {
            "id": new_id(),
            "team_id": team_id,
            "email": normalise_email(email),
            "role": role,
            "invited_by": by,
            "created_ms": now,
            "expires_ms": now + self._lifetime_ms,
        }
        async with self._db.write() as conn:
            await conn.execute(team_invitations.insert().values(**row))
        return row

    async def pending_for(self, user: User) -> list[dict[str, Any]]:
        """The invitations to this user's email that are neither accepted nor expired."""
        query = (
            select(
                team_invitations.c.id,
                team_invitations.c.team_id,
                teams.c.name.label("team_name"),
                team_invitations.c.role,
                team_invitations.c.created_ms,
                team_invitations.c.expires_ms,
            )
            .select_from(team_invitations.join(teams, teams.c.id == team_invitations.c.team_id))
            .where(
                team_invitations.c.email == user.email,
                team_invitations.c.accepted_ms.is_(None),
                team_invitations.c.expires_ms > now_ms(),
            )
            .order_by(team_invitations.c.created_ms)
        )
        async with self._db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def accept(self, user: User, invitation_id: str) -> dict[str, Any]:
        """Join the team as the invitation says. A member already keeps their role (an
        invitation never demotes) and now counts as having joined by invitation. Every
        refusal is the same 404: not theirs, used, expired or unknown look alike."""
        now = now_ms()
        async with self._db.write() as conn:
            claimed = await conn.execute(
                update(team_invitations)
                .where(
                    team_invitations.c.id == invitation_id,
                    team_invitations.c.email == user.email,
                    team_invitations.c.accepted_ms.is_(None),
                    team_invitations.c.expires_ms > now,
                )
                .values(accepted_ms=now, accepted_by=user.id)
                .returning(team_invitations.c.team_id, team_invitations.c.role)
            )
            invitation = claimed.first()
            if invitation is None:
                raise NotFound("no such invitation for this account")
            team_id, role = invitation.team_id, invitation.role
            member = memberships.c.team_id == team_id, memberships.c.user_id == user.id
            current = await conn.scalar(select(memberships.c.role).where(*member))
            if current is None:
                await conn.execute(
                    memberships.insert().values(
                        user_id=user.id, team_id=team_id, role=role, invitation_id=invitation_id
                    )
                )
            else:
                role = current
                await conn.execute(
                    update(memberships).where(*member).values(invitation_id=invitation_id)
                )
        return {"id": invitation_id, "team_id": team_id, "role": role, "accepted": True}
