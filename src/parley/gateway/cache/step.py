"""The response cache's place in the pipeline, between admission and routing.

``lookup`` asks the exact cache, then (where the group has one) the semantic cache, then
joins or leads a single flight; a hit finishes the call there (no tokens against limits,
no cost) and the pipeline serves it. After an upstream answer, ``store`` keeps it and
indexes its question, and ``land`` ends the flight so waiting requests get it. A cache
failure is always a miss, never an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from parley.config.loader import ModelGroup
from parley.gateway.accounting.policy import Call, Policies
from parley.gateway.cache.keys import (
    CachePlan,
    Question,
    merge_directives,
    plan_for,
    question_of,
)
from parley.gateway.cache.store import CachedAnswer, Flight, ResponseCache
from parley.observability.metrics import Metrics
from parley.schema.chat import CacheDirective, ChatCompletion, ChatRequest

if TYPE_CHECKING:  # numpy and the vector index load only where a group uses them
    from parley.gateway.cache.embedders import Vectors
    from parley.gateway.cache.semantic import SemanticCache

CACHE_DEPLOYMENT = "cache"
"""What ``x-parley-deployment`` says of an answer served from the cache."""


@dataclass(slots=True)
class Lookup:
    """What the cache said: the plan (None: the group does not cache), a hit, or the
    flight this request leads."""

    plan: CachePlan | None = None
    answer: CachedAnswer | None = None
    flight: Flight | None = None
    question: Question | None = None
    """Set when the group has a semantic cache and the request ends with a user's text."""
    vector: Vectors | None = None
    embedder: str = ""


NO_LOOKUP = Lookup()


def split_directive(
    request: ChatRequest, header: CacheDirective | None
) -> tuple[ChatRequest, CacheDirective | None]:
    """Take Parley's ``cache`` extension out of the body (no provider may see it) and merge
    it with the ``Cache-Control`` header's."""
    if request.cache is None:
        return request, header
    directive = merge_directives(request.cache, header)
    return msgspec.structs.replace(request, cache=None), directive


class CacheStep:
    def __init__(self, cache: ResponseCache | None, policies: Policies, metrics: Metrics) -> None:
        self._cache = cache
        self._policies = policies
        self._metrics = metrics

    async def lookup(
        self,
        call: Call,
        group: ModelGroup,
        request: ChatRequest,
        directive: CacheDirective | None,
    ) -> Lookup:
        """Ask the cache, where the group has one. A hit finishes the call; a miss may make
        this request the leader of a single flight, which the caller must ``land``."""
        cache = self._cache
        if cache is None or not group.cache.enabled:
            return NO_LOOKUP
        if request.api_base is not None or request.base_url is not None:
            # A client-chosen upstream answers for that client only: the cache key does not
            # name the URL, so storing its answer would serve it to everyone in the group.
            return NO_LOOKUP
        plan = plan_for(request, group.name, call.caller, group.cache, directive)
        lookup = Lookup(plan, embedder=group.cache.embedder)
        try:
            lookup.answer = await cache.get(plan)
            if group.cache.semantic and cache.semantic is not None:
                lookup.question = question_of(plan, request)
                if lookup.answer is None and plan.read and lookup.question is not None:
                    await self._semantic(call, group, lookup, cache, cache.semantic)
            if lookup.answer is None:
                joined = await cache.join(plan)
                if isinstance(joined, CachedAnswer):
                    lookup.answer = joined
                else:
                    lookup.flight = joined
        except BaseException:  # cancelled while waiting for a leader
            await self._policies.finish(call, status=499)
            raise
        if call.cache is None:
            call.cache = "hit" if lookup.answer is not None else plan.outcome_if_missed
        self._metrics.child(self._metrics.cache_lookups, group.name, call.cache).inc()
        if lookup.answer is not None:
            call.first_token()
            await self._policies.finish(call, status=200, usage=lookup.answer.completion.usage)
        return lookup

    @staticmethod
    async def _semantic(
        call: Call,
        group: ModelGroup,
        lookup: Lookup,
        cache: ResponseCache,
        semantic: SemanticCache,
    ) -> None:
        assert lookup.question is not None
        assert lookup.plan is not None
        lookup.vector = await semantic.vector(group.cache.embedder, lookup.question.text)
        if lookup.vector is None:
            return
        now = int(time.time() * 1000)
        match = await semantic.nearest(lookup.question, lookup.vector, group.cache.threshold, now)
        if match is None:
            return
        answer = await cache.at(match.address, lookup.plan.max_age_s)
        if answer is None:
            await semantic.forget(match.address)
            return
        lookup.answer = answer
        call.cache = "semantic-hit"
        call.similarity = match.similarity

    async def store(self, lookup: Lookup, completion: ChatCompletion | None) -> bytes | None:
        """Store an answer, and index its question for the semantic cache."""
        cache, plan, question = self._cache, lookup.plan, lookup.question
        if cache is None or plan is None or completion is None:
            return None
        stored = await cache.put(plan, completion)
        if stored is None or question is None or cache.semantic is None:
            return stored
        vector = lookup.vector
        if vector is None:
            vector = await cache.semantic.vector(lookup.embedder, question.text)
        if vector is not None:
            expires = int((time.time() + plan.ttl_s) * 1000)
            await cache.semantic.remember(question, vector, plan.address, expires)
        return stored

    def land(self, lookup: Lookup, stored: bytes | None) -> None:
        if self._cache is not None and lookup.flight is not None:
            self._cache.land(lookup.flight, stored)
