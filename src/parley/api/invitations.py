"""``/api/invitations``: the logged-in user's pending team invitations, and accepting one.

Accepting is the user's consent to join the team: only members who joined this way may
have keys minted in their name by the team's admins (``identity/team_keys.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.auth import current_user
from parley.api.deps import client_ip, json_response, services
from parley.identity.audit import audit

router = APIRouter(prefix="/api/invitations", tags=["teams"])


@router.get("")
async def pending(request: Request) -> Response:
    auth = await current_user(request)
    rows = await services(request).accounts.invitations.pending_for(auth.user)
    return json_response({"object": "list", "data": rows})


@router.post("/{invitation_id}/accept")
async def accept(invitation_id: str, request: Request) -> Response:
    auth = await current_user(request)
    svc = services(request)
    joined = await svc.accounts.invitations.accept(auth.user, invitation_id)
    await audit(
        svc.db,
        actor=auth.user.id,
        action="team.invitation_accept",
        target=f"{joined['team_id']}/{invitation_id}",
        ip=client_ip(request),
    )
    return json_response(joined)
