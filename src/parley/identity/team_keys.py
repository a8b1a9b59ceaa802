"""What a team admin (not a global admin) may put on a key they mint for their team.

A key's requests count against every principal it names (key, user, team), so a team
admin choosing a key's user chooses whose budget pays: only themselves, or a member who
joined the team by accepting an invitation (``identity/invitations.py``). A key may not
promise more than the team has: each limit and budget at most the team's own where the
team sets one (where it sets none the team is unlimited there, so is the ceiling), and a
priority no better than the default, teams having no priority of their own. A key that
leaves a field unset is bounded by the team's value anyway, since the team's limits apply
to every request of its keys.
"""

from __future__ import annotations

from typing import Any

from parley.errors import PermissionDenied
from parley.gateway.routing.admission import DEFAULT_PRIORITY
from parley.identity.keys import KeySpec
from parley.identity.users import Users

_CAPPED = ("rpm", "tpm", "max_parallel", "budget_nusd", "soft_budget_nusd")
_PARAM = {"budget_nusd": "budget_usd", "soft_budget_nusd": "soft_budget_usd"}
NOT_YOURS = (
    "a team admin may create keys only for themselves or for members who joined the team "
    "by accepting an invitation"
)


async def check_team_admin_key(users: Users, actor_id: str, team_id: str, spec: KeySpec) -> None:
    """Raise 403 naming the field if a team admin may not mint this key. The user check
    answers the same for an id that does not exist as for one outside the team."""
    someone_else = spec.user_id is not None and spec.user_id != actor_id
    if someone_else and not await users.joined_by_invitation(team_id, spec.user_id or ""):
        raise PermissionDenied(NOT_YOURS, param="user_id")
    if spec.priority is not None and spec.priority < DEFAULT_PRIORITY:
        raise PermissionDenied(
            f"a team admin may set priority {DEFAULT_PRIORITY} to 5 (the default or later); "
            "teams have no priority above the default",
            param="priority",
        )
    team: dict[str, Any] = await users.team(team_id)
    for field in _CAPPED:
        ceiling, wanted = team[field], getattr(spec, field)
        if ceiling is not None and wanted is not None and wanted > ceiling:
            param = _PARAM.get(field, field)
            shown = ceiling / 1e9 if field in _PARAM else ceiling
            raise PermissionDenied(f"{param} may not exceed the team's own ({shown})", param=param)
