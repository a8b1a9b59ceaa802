"""What a request's cache entry is called and what the cache may do with it.

The key is a hash of the normalised request: everything that changes the answer (the
serving group, messages, tools, response format, sampling parameters, forwarded fields
Parley has no type for such as ``min_p``), nothing that does not (``user`` and the other
bookkeeping parameters, ``stream``, transport details, Parley's own cache controls). It lives inside
a namespace that defaults to the caller's team, so no answer ever crosses tenants unless an
admin configured a shared namespace for the group.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

import msgspec

from parley.config.models import CacheConfig
from parley.gateway.accounting.caller import Caller
from parley.schema.chat import CacheDirective, ChatRequest, UserMessage, text_of
from parley.state.keys import SUB_NAMESPACE

OPENAI_DEFAULT_TEMPERATURE = 1.0
_encode = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True, slots=True)
class CachePlan:
    namespace: str
    group: str
    digest: str
    read: bool
    store: bool
    ttl_s: float
    max_age_s: float | None = None

    @property
    def address(self) -> str:
        """``namespace:group:digest``, each part free of ``:`` and glob characters, so
        invalidation can match a namespace or a group with a pattern."""
        return f"{self.namespace}:{quote(self.group, safe='')}:{self.digest}"

    @property
    def outcome_if_missed(self) -> str:
        return "miss" if self.read else "bypass"


def namespace_of(caller: Caller, config: CacheConfig, directive: CacheDirective | None) -> str:
    """The caller's tenant (team, else key, else user; ``local`` for the unauthenticated
    embedded tier), or the group's admin-configured shared namespace. A request may only
    narrow it to a sub-namespace of its own."""
    if config.namespace is not None:
        base = f"shared.{config.namespace}"
    elif caller.team_id is not None:
        base = f"team.{caller.team_id}"
    elif caller.key_id is not None:
        base = f"key.{caller.key_id}"
    elif caller.user_id is not None:
        base = f"user.{caller.user_id}"
    else:
        base = "local"
    if directive is not None and directive.namespace is not None:
        return f"{base}{SUB_NAMESPACE}{directive.namespace}"
    return base


def within(namespace: str, scope: str | None) -> bool:
    """Whether ``namespace`` is ``scope`` or one of its sub-namespaces (None: any)."""
    return scope is None or namespace == scope or namespace.startswith(scope + SUB_NAMESPACE)


def digest_of(request: ChatRequest, group: str) -> str:
    normal = msgspec.structs.replace(
        request,
        model=group,
        stream=False,
        stream_options=None,
        user=None,
        safety_identifier=None,
        metadata=None,
        store=None,
        prompt_cache_key=None,
        service_tier=None,
        api_base=None,
        base_url=None,
        cache=None,
    )
    return hashlib.blake2b(_encode(normal), digest_size=20).hexdigest()


def plan_for(
    request: ChatRequest,
    group: str,
    caller: Caller,
    config: CacheConfig,
    directive: CacheDirective | None,
) -> CachePlan:
    """What the cache may do with this request, for a group whose cache is enabled."""
    temperature = request.temperature
    if temperature is None:
        temperature = OPENAI_DEFAULT_TEMPERATURE
    too_hot = config.max_temperature is not None and temperature > config.max_temperature
    d = directive or CacheDirective()
    return CachePlan(
        namespace=namespace_of(caller, config, directive),
        group=group,
        digest=digest_of(request, group),
        read=not (too_hot or d.no_cache),
        store=not (too_hot or d.no_store),
        ttl_s=d.ttl or config.ttl,
        max_age_s=d.max_age,
    )


@dataclass(frozen=True, slots=True)
class Question:
    context: str
    """Namespace, group and the digest of the request without its final user turn."""
    text: str
    namespace: str
    group: str


def question_of(plan: CachePlan, request: ChatRequest) -> Question | None:
    """None when the request does not end with a user's text (a tool result, say)."""
    last = request.messages[-1]
    if not isinstance(last, UserMessage):
        return None
    text = text_of(last.content).strip()
    if not text or (not isinstance(last.content, str) and len(last.content) != 1):
        return None  # images or several parts: only plain text questions are compared
    rest = [*request.messages[:-1], UserMessage("")]
    digest = digest_of(msgspec.structs.replace(request, messages=rest), plan.group)
    context = hashlib.blake2b(
        f"{plan.namespace}\0{plan.group}\0{digest}".encode(), digest_size=16
    ).hexdigest()
    return Question(context, text, plan.namespace, plan.group)


def merge_directives(
    body: CacheDirective | None, header: CacheDirective | None
) -> CacheDirective | None:
    """The ``Cache-Control`` header and the body's ``cache`` object together: either one
    can turn reading or storing off; ``ttl`` and ``namespace`` come from the body."""
    if header is None:
        return body
    if body is None:
        return header
    return CacheDirective(
        no_cache=body.no_cache or header.no_cache,
        no_store=body.no_store or header.no_store,
        ttl=body.ttl,
        namespace=body.namespace,
        max_age=header.max_age if body.max_age is None else body.max_age,
    )


def parse_cache_control(value: str) -> CacheDirective | None:
    """``no-cache``, ``no-store`` and ``max-age=N`` (RFC 9111 request directives); others
    are ignored, as a cache must. Raises ValueError on a malformed ``max-age``."""
    no_cache = no_store = False
    max_age: float | None = None
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            arg = arg.strip().strip('"')
            if not (arg.isascii() and arg.isdigit()):  # '²'.isdigit() is true
                raise ValueError("Cache-Control max-age must be a whole number of seconds")
            max_age = float(arg)
    if not (no_cache or no_store or max_age is not None):
        return None
    return CacheDirective(no_cache=no_cache, no_store=no_store, max_age=max_age)
