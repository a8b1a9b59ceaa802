"""``/v1/responses`` through the same pipeline as Chat Completions.

A Responses request arrives here twice over: as its canonical translation (a
``ChatRequest``, which admission, token estimates, the cache and every translating
provider use) and as the body it came as, which an OpenAI deployment is sent unchanged
(apart from the model), so what only OpenAI can do (built-in tools, files by id) still
works there. Which of the two an attempt uses is decided per deployment, inside the
failover loop: a group whose deployments mix OpenAI and Anthropic fails over between them,
each spoken to in its own way. Requests only OpenAI can serve are refused (400, naming
what) on any other deployment, and never answered from or stored in the cache, whose keys
are made from the translation.

Pass-through answers are accounted from the upstream's own ``usage`` and are not cached
(the cache holds Chat Completions).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from parley.config.loader import Deployment, ModelGroup
from parley.errors import InvalidRequest, ParleyError
from parley.gateway.accounting.caller import Caller
from parley.gateway.accounting.policy import Call
from parley.gateway.cache.replay import Assembler, replay
from parley.gateway.cache.step import CACHE_DEPLOYMENT, NO_LOOKUP, Lookup, split_directive
from parley.gateway.pipeline import (
    CallOptions,
    Gateway,
    _completion_text,
    _counted_usage,
    _iterate,
    _OpenStream,
    _Prepared,
    _Tally,
)
from parley.gateway.routing.resilience import Lease, Outcome
from parley.providers.base import ChunkStream, signs_thinking, stream_ended_early
from parley.providers.openai import OpenAIProvider
from parley.schema.chat import ChatCompletion, ChatRequest, Usage

Events = AsyncIterator[dict[str, Any]]


@dataclass(slots=True)
class ResponsesJob:
    chat: ChatRequest
    """The canonical translation."""
    upstream: dict[str, Any]
    """The Responses body an OpenAI deployment is sent (its ``model`` replaced)."""
    problems: list[InvalidRequest] = field(default_factory=list)
    """Why a translating deployment cannot serve it; the first is its 400."""

    @property
    def cacheable(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class ResponsesAnswer:
    completion: ChatCompletion | None
    """A translated (or cached) answer, or None for an OpenAI one."""
    passthrough: dict[str, Any] | None
    """The Response object an OpenAI deployment sent."""
    deployment: str
    dropped: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ResponsesStream:
    chunks: ChunkStream | None
    """Chat Completions chunks (the API layer turns them into Responses events)."""
    events: Events | None
    """An OpenAI deployment's own Responses events."""
    deployment: str
    dropped: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    thinking_blocks: bool = False
    """The deployment reasons in signed thinking blocks (``providers.base.signs_thinking``),
    so its reasoning streams as a summary whose blocks are kept; known before the first
    delta, where a block's signature comes only at its end. (A cached answer's blocks arrive
    with their signatures, and tell for themselves.)"""


def speaks_responses(provider: object) -> bool:
    return isinstance(provider, OpenAIProvider) and provider.speaks_responses


def usage_from_response(response: dict[str, Any]) -> Usage | None:
    """A Responses ``usage`` as Parley's Usage (details kept in Chat Completions' names)."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    try:
        prompt, completion = int(usage["input_tokens"]), int(usage["output_tokens"])
    except (KeyError, TypeError, ValueError):
        return None
    total = int(usage.get("total_tokens") or prompt + completion)
    result = Usage(prompt, completion, total)
    if isinstance(details := usage.get("input_tokens_details"), dict):
        result.prompt_tokens_details = details
    if isinstance(details := usage.get("output_tokens_details"), dict):
        result.completion_tokens_details = details
    return result


def output_text(response: dict[str, Any]) -> str:
    """Every text and argument an answer generated, for counting tokens when it has no
    usage."""
    parts: list[str] = []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            parts.append(item["arguments"])
        for part in item.get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    return "".join(parts)


@dataclass(slots=True)
class _Attempted:
    completion: ChatCompletion | None
    passthrough: dict[str, Any] | None
    dropped: list[str]


@dataclass(slots=True)
class _OpenEvents:
    cm: contextlib.AbstractAsyncContextManager[Events]
    events: Events
    first: dict[str, Any]
    closed: bool = False

    async def all(self) -> Events:
        yield self.first
        async for event in self.events:
            yield event

    async def close(self, exc: BaseException | None) -> Any:
        if self.closed:
            return False
        self.closed = True
        if exc is None:
            return await self.cm.__aexit__(None, None, None)
        return await self.cm.__aexit__(type(exc), exc, exc.__traceback__)


class ResponsesCalls:
    """The Responses entry points, sharing the gateway's admission, cache and routing."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    async def _begin(
        self, job: ResponsesJob, caller: Caller, request_id: str, options: CallOptions
    ) -> tuple[ChatRequest, ModelGroup, Call, Lookup]:
        gw = self._gw
        request, directive = split_directive(job.chat, options.cache)
        request, group, call = await gw._admitted(request, caller, request_id, options)
        lookup = NO_LOOKUP
        if job.cacheable:
            lookup = await gw._cache.lookup(call, group, request, directive)
        return request, group, call, lookup

    async def respond(
        self, job: ResponsesJob, caller: Caller, request_id: str, options: CallOptions
    ) -> ResponsesAnswer:
        gw = self._gw
        request, group, call, lookup = await self._begin(job, caller, request_id, options)
        if lookup.answer is not None:
            completion = lookup.answer.completion
            return ResponsesAnswer(completion, None, CACHE_DEPLOYMENT, [], call.headers)

        async def attempt(
            group: ModelGroup, request: ChatRequest, dep: Deployment, options: CallOptions
        ) -> _Attempted:
            provider = gw.registry.provider(dep)
            if speaks_responses(provider):
                assert isinstance(provider, OpenAIProvider)
                with gw._metrics.upstream_call(dep):
                    raw = await provider.respond(job.upstream)
                return _Attempted(None, raw, [])
            if job.problems:
                raise job.problems[0]
            completion, prepared = await gw._complete(group, request, dep, options)
            if completion.usage is None:
                completion.usage = _counted_usage(prepared.request, _completion_text(completion))
            return _Attempted(completion, None, prepared.dropped)

        stored: bytes | None = None
        try:
            outcome = await gw._routed(call, group, request, options, attempt)
            answer = outcome.value
            if answer.completion is not None:
                assert answer.completion.usage is not None
                await gw._succeeded(call, outcome.lease, answer.completion.usage)
                stored = await gw._cache.store(lookup, answer.completion)
            else:
                assert answer.passthrough is not None
                usage = usage_from_response(answer.passthrough) or _counted_usage(
                    request, output_text(answer.passthrough)
                )
                await gw._succeeded(call, outcome.lease, usage)
        finally:
            gw._cache.land(lookup, stored)
        label = outcome.lease.deployment.label
        return ResponsesAnswer(
            answer.completion, answer.passthrough, label, answer.dropped, call.headers
        )

    @contextlib.asynccontextmanager
    async def respond_stream(
        self, job: ResponsesJob, caller: Caller, request_id: str, options: CallOptions
    ) -> AsyncIterator[ResponsesStream]:
        """As ``Gateway.chat_stream``: entering admits, asks the cache, routes and reads
        the first chunk or event, so failures up to there fail over or become HTTP
        errors."""
        gw = self._gw
        request, group, call, lookup = await self._begin(job, caller, request_id, options)
        if lookup.answer is not None:
            chunks = replay(lookup.answer.completion, include_usage=True)
            yield ResponsesStream(_iterate(chunks), None, CACHE_DEPLOYMENT, [], call.headers)
            return

        async def attempt(
            group: ModelGroup, request: ChatRequest, dep: Deployment, options: CallOptions
        ) -> tuple[_OpenStream, _Prepared] | _OpenEvents:
            provider = gw.registry.provider(dep)
            if speaks_responses(provider):
                assert isinstance(provider, OpenAIProvider)
                return await _open_events(gw, provider, dep, job.upstream)
            if job.problems:
                raise job.problems[0]
            return await gw._open(group, request, dep, options)

        tally = _Tally(assembler=Assembler() if lookup.plan and lookup.plan.store else None)
        try:
            outcome = await gw._routed(call, group, request, options, attempt)
            opened = outcome.value
            if isinstance(opened, _OpenEvents):
                async with self._passthrough(call, request, opened, outcome.lease) as stream:
                    yield stream
                return
            chat_outcome = Outcome(opened, outcome.lease, outcome.group, outcome.attempts)
            blocks = signs_thinking(gw.registry.provider(outcome.lease.deployment))
            async with gw._upstream_stream(
                call, chat_outcome, include_usage=True, tally=tally, lookup=lookup
            ) as chat:
                yield ResponsesStream(
                    chat.chunks, None, chat.deployment, chat.dropped, chat.headers, blocks
                )
        finally:
            gw._cache.land(lookup, tally.stored)

    @contextlib.asynccontextmanager
    async def _passthrough(
        self, call: Call, request: ChatRequest, opened: _OpenEvents, lease: Lease
    ) -> AsyncIterator[ResponsesStream]:
        gw = self._gw
        state = _Tally()
        try:
            events = self._accounted(call, request, opened.all(), lease, state)
            yield ResponsesStream(None, events, lease.deployment.label, [], call.headers)
        except BaseException as exc:
            if not await opened.close(exc):
                raise
        else:
            await opened.close(None)
        finally:
            if not call.finished:  # the client left, or the stream broke mid-way
                usage = _counted_usage(request, "".join(state.text))
                await lease.close(ok=state.status == 499, tokens=usage.total_tokens)
                await gw.policies.finish(
                    call, status=state.status, deployment=lease.deployment, usage=usage
                )
            await lease.close()

    async def _accounted(
        self, call: Call, request: ChatRequest, events: Events, lease: Lease, state: _Tally
    ) -> Events:
        usage: Usage | None = None
        try:
            async for event in events:
                kind = event.get("type")
                if kind == "error":
                    state.status = 502  # the upstream's own failure, in band
                elif kind in (
                    "response.output_text.delta",
                    "response.function_call_arguments.delta",
                ):
                    delta = event.get("delta")
                    if isinstance(delta, str):
                        state.text.append(delta)
                elif kind in ("response.completed", "response.incomplete", "response.failed"):
                    response = event.get("response")
                    if isinstance(response, dict):
                        usage = usage_from_response(response)
                    if usage is None:
                        usage = _counted_usage(request, "".join(state.text))
                    await self._gw._succeeded(call, lease, usage)
                    cost = call.cost
                    if cost is not None:
                        event["parley"] = cost  # as ChunkEvents puts it on its terminal event
                yield event
        except ParleyError as exc:
            state.status = exc.status_code
            raise


async def _open_events(
    gw: Gateway, provider: OpenAIProvider, dep: Deployment, body: dict[str, Any]
) -> _OpenEvents:
    """Open an OpenAI Responses stream and read its first event (to fail over before it)."""
    with gw._metrics.upstream_call(dep):
        cm = provider.open_responses(body)
        events = await cm.__aenter__()
    try:
        first = await anext(events)
    except StopAsyncIteration:
        await cm.__aexit__(None, None, None)
        raise stream_ended_early(dep.label) from None
    except BaseException as exc:
        await cm.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    return _OpenEvents(cm, events, first)


__all__ = [
    "ResponsesAnswer",
    "ResponsesCalls",
    "ResponsesJob",
    "ResponsesStream",
    "speaks_responses",
]
