"""Secret references: config files name an environment variable, never hold the value."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_REF = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")


class Secret:
    """A resolved secret whose repr and str never reveal it (logs, tracebacks, reprs)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def is_reference(value: str) -> bool:
    return _REF.match(value) is not None


def reference_name(value: str) -> str:
    match = _REF.match(value)
    if match is None:
        raise ValueError(
            "secrets must be references like 'os.environ/OPENAI_API_KEY', not inline values"
        )
    return match.group(1)


def resolve(value: str, environ: Mapping[str, str] | None = None) -> Secret:
    """Look the reference up; KeyError names the missing variable."""
    env = os.environ if environ is None else environ
    name = reference_name(value)
    if name not in env or not env[name]:
        raise KeyError(name)
    return Secret(env[name])
