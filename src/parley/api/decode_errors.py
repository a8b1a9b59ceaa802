"""A msgspec validation failure, told the way OpenAI tells it.

msgspec says "Expected `float` <= 2.0 - at `$.temperature`". The SDKs print an error's
message and not its ``param``, so a user saw "Expected `float` <= 2.0" and could not tell
which field was wrong. The message now names the field first, as OpenAI's do ("Invalid
value for 'temperature': ...", "Missing required parameter: 'messages'."), and ``param``
stays set for clients that read it.
"""

from __future__ import annotations

import re

import msgspec

from parley.errors import InvalidRequest

_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


def _join(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


def invalid_request(exc: msgspec.MsgspecError) -> InvalidRequest:
    """The 400 for a body msgspec refused, its message naming the field."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidRequest(f"request body is not valid JSON: {text}", code="invalid_json")
    detail, _, at = text.partition(" - at `")
    where = at.rstrip("`").removeprefix("$").removeprefix(".")
    # For these two, ``param`` stays the object holding the field, as it always was.
    if (missing := _MISSING.match(detail)) is not None:
        name = _join(where, missing["field"])
        return InvalidRequest(f"Missing required parameter: '{name}'.", param=where or None)
    if (unknown := _UNKNOWN.match(detail)) is not None:
        name = _join(where, unknown["field"])
        return InvalidRequest(f"Unrecognized request argument supplied: {name}", param=where)
    if not where:
        return InvalidRequest(f"Invalid request body: {detail}")
    kind = "type" if ", got `" in detail else "value"
    return InvalidRequest(f"Invalid {kind} for '{where}': {detail}", param=where)
