"""Every key Parley writes to the shared state, in one place (arq's ``constants.py`` habit),
so two features can never collide and an operator can tell what a Redis key is for."""

from __future__ import annotations

PREFIX = "parley:"


def rate(scope: str, ident: str, metric: str) -> str:
    """Sliding-window counter, e.g. ``parley:rl:key:<id>:rpm``."""
    return f"{PREFIX}rl:{scope}:{ident}:{metric}"


def parallel(scope: str, ident: str) -> str:
    return f"{PREFIX}par:{scope}:{ident}"


def importing(user_id: str) -> str:
    """The concurrency slots of a user's conversation imports."""
    return f"{PREFIX}import:{user_id}"


def spend(scope: str, ident: str, period: str) -> str:
    """Budget counter for one period, e.g. ``parley:spend:team:<id>:m2026-11``."""
    return f"{PREFIX}spend:{scope}:{ident}:{period}"


def suspended_key(key_id: str) -> str:
    """A key suspended by usage anomaly detection, refused on every instance at once."""
    return f"{PREFIX}suspended:key:{key_id}"


def revoked(kind: str, ident: str) -> str:
    """A revocation flag: ``kind`` is ``key`` or ``session``."""
    return f"{PREFIX}revoked:{kind}:{ident}"


def passkey_challenge(purpose: str, subject: str, challenge: str) -> str:
    """An outstanding passkey challenge (``purpose`` is ``register``, ``login`` or
    ``mfa``; ``subject`` the user it was issued to, ``-`` before anyone is known)."""
    return f"{PREFIX}passkey:{purpose}:{subject}:{challenge}"


def sso_flow(state_digest: str) -> str:
    """A single sign-on flow not finished yet, by the SHA-256 of its ``state``: taken once."""
    return f"{PREFIX}sso:flow:{state_digest}"


def session_idle(session_id: str) -> str:
    """Present while a session with an idle timeout is in use; its TTL is the time left."""
    return f"{PREFIX}idle:session:{session_id}"


def failures(kind: str, ident: str) -> str:
    """Login-failure record for an account or a client address."""
    return f"{PREFIX}fail:{kind}:{ident}"


USAGE_STREAM = f"{PREFIX}usage"
USAGE_GROUP = "parley-usage-writers"


BREAKER_CHANNEL = f"{PREFIX}breakers"


def breaker(label: str) -> str:
    """Set while a deployment's breaker is open somewhere; expires with its cooldown."""
    return f"{PREFIX}breaker:{label}"


CACHE_CHANNEL = f"{PREFIX}cache:invalidate"
SEMANTIC_STREAM = f"{PREFIX}cache:semantic"
"""Questions indexed by the semantic cache, for every instance's in-process index."""


def cache_entry(address: str) -> str:
    """A cached answer; ``address`` is ``namespace:group:digest`` (``gateway/cache/keys.py``)."""
    return f"{PREFIX}cache:e:{address}"


SUB_NAMESPACE = ".sub."
"""Joins a namespace and a request's sub-namespace (``team.<id>.sub.<name>``)."""


def cache_patterns(namespace: str | None, group: str | None) -> list[str]:
    """SCAN patterns for invalidation: the namespace and its sub-namespaces. The parts hold
    no glob characters (namespaces are validated, groups quoted)."""
    g = group or "*"
    if namespace is None:
        return [cache_entry(f"*:{g}:*")]
    return [
        cache_entry(f"{namespace}:{g}:*"),
        cache_entry(f"{namespace}{SUB_NAMESPACE}*:{g}:*"),
    ]
