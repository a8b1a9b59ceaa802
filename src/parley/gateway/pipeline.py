"""The gateway pipeline: resolve the model group, admit the caller (access, limits,
budgets), route and call with retries, breakers and fallbacks (``resilience.py``), and
account tokens, cost and usage (counting tokens when the upstream does not).

Framework-free: takes typed requests, a ``Caller`` and ``CallOptions``, returns typed
results or chunk iterators. The API layer renders them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from parley.config.loader import Deployment, ModelGroup
from parley.config.models import Strategy
from parley.config.secrets import Secret
from parley.errors import BudgetExceeded, InvalidRequest, ParleyError
from parley.gateway import params
from parley.gateway.accounting import tokens
from parley.gateway.accounting.caller import ANONYMOUS, Caller
from parley.gateway.accounting.policy import Call, Policies
from parley.gateway.cache.replay import Assembler, replay
from parley.gateway.cache.step import CACHE_DEPLOYMENT, CacheStep, Lookup, split_directive
from parley.gateway.cache.store import ResponseCache
from parley.gateway.client_base import client_deployment
from parley.gateway.embeddings import EmbeddingCalls
from parley.gateway.registry import ModelRegistry
from parley.gateway.routing.admission import DEFAULT_PRIORITY
from parley.gateway.routing.breaker import BreakerState
from parley.gateway.routing.health import HealthBook
from parley.gateway.routing.resilience import Lease, Outcome, Resilience, genai_provider
from parley.gateway.routing.router import Router, RouteRequest
from parley.gateway.routing.selector import Selection, Selector
from parley.observability import tracing
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics
from parley.providers.base import (
    ChunkStream,
    Provider,
    native_protocol_of,
    refused_parts_of,
    stream_ended_early,
)
from parley.schema.chat import (
    CacheDirective,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    Usage,
)
from parley.state import BreakerSync

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-request knobs from the API layer (headers): priority, deadline, strategy."""

    priority: int = DEFAULT_PRIORITY
    deadline: float | None = None
    """Absolute ``loop.time()`` by which the whole request must be done."""
    strategy: Strategy | None = None
    cache: CacheDirective | None = None
    """From the ``Cache-Control`` header; merged with the body's ``cache`` object."""
    upstream_key: Secret | None = None
    """The client's own key for the upstream its ``api_base`` names (``client_base.py``)."""
    max_cost_nusd: int | None = None
    """``x-parley-max-cost-usd``: a per-request ceiling that can only lower the key's,
    the tier's and the group's."""


DEFAULT_OPTIONS = CallOptions()


@dataclass(slots=True)
class ChatOutcome:
    completion: ChatCompletion
    deployment: str
    dropped: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamOutcome:
    chunks: ChunkStream
    deployment: str
    dropped: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EmbeddingOutcome:
    result: EmbeddingResult
    deployment: str
    prompt_tokens: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Prepared:
    provider: Provider
    request: ChatRequest
    dropped: list[str]


class Gateway:
    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        *,
        drop_params: bool,
        policies: Policies | None = None,
        health: HealthBook | None = None,
        selector: Selector | None = None,
        breaker_sync: BreakerSync | None = None,
        cache: ResponseCache | None = None,
        embed_batch_max: int = 256,
        embed_batch_in_flight: int = 4,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self._embeddings = EmbeddingCalls(
            metrics, max_batch=embed_batch_max, max_in_flight=embed_batch_in_flight
        )
        self._breaker_sync = breaker_sync
        self._background: set[asyncio.Task[None]] = set()
        self.selector = selector or Selector([], [], metrics)
        self._metrics = metrics
        self._drop_params = drop_params
        self.policies = policies or Policies(None, None, metrics)
        self._cache = CacheStep(cache, self.policies, metrics)
        self.health = health or HealthBook(registry.groups, self._breaker_changed)
        router = Router(self.health, self.policies.price)
        self.resilience = Resilience(registry.by_name, router, self.health, metrics)

    def swap(self, groups: list[ModelGroup]) -> None:
        """Serve ``groups`` from now on, on every path at once (registry, health, router,
        gates, derived prices and limits; ``/v1/models`` reads the registry). Nothing here
        awaits, so no request sees half of it. A request already running holds its group,
        deployment, adapter and resilience object, and finishes on them."""
        registry = self.registry.replaced(groups)
        health = self.health.rebuilt(groups)
        router = Router(health, self.policies.price)
        resilience = self.resilience.rebuilt(registry.by_name, router, health)
        self.policies.forget_groups()
        self._embeddings.retain({d.label for g in groups for d in g.deployments})
        self.registry, self.health, self.resilience = registry, health, resilience

    def _breaker_changed(self, label: str, old: BreakerState, new: BreakerState) -> None:
        self._metrics.breaker_transitions.labels(label, new.value).inc()
        if self._breaker_sync is None:
            return
        if new is BreakerState.OPEN:
            found = self.health.by_label(label)
            seconds = found.breaker.cooldown if found is not None else 10.0
            self._share(self._breaker_sync.publish(label, "open", seconds))
        elif new is BreakerState.CLOSED and old is BreakerState.HALF_OPEN:
            self._share(self._breaker_sync.publish(label, "closed", 0.0))

    def _share(self, publish: Coroutine[Any, Any, None]) -> None:
        """Publish in the background: a breaker decision never waits on Redis."""

        async def run() -> None:
            try:
                await publish
            except ParleyError as exc:
                log.warning("could not share a breaker transition", error=exc.message)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def apply_breaker(self, label: str, state: str, seconds: float) -> None:
        """Another instance's breaker transition (``BreakerSync.listen`` calls this)."""
        found = self.health.by_label(label)
        if found is None:
            return
        if state == "open":
            found.breaker.force_open(seconds)
        else:
            found.breaker.force_close()

    def _select(self, request: ChatRequest, caller: Caller) -> tuple[ChatRequest, Selection | None]:
        """Resolve a virtual model (tiered, experiment) to the real group that serves it."""
        if not self.selector.is_virtual(request.model):
            return request, None
        selection = self.selector.select(request, caller)
        assert selection is not None
        return msgspec.structs.replace(request, model=selection.group), selection

    async def _admitted(
        self,
        request: ChatRequest,
        caller: Caller,
        request_id: str,
        options: CallOptions = DEFAULT_OPTIONS,
    ) -> tuple[ChatRequest, ModelGroup, Call]:
        """Resolve a virtual model (tiered, experiment), then admit the caller, downgrading
        to the group's cheaper one where a budget says so. Returns the request as it will
        be served (its ``model`` is the serving group)."""
        requested = request.model
        request, selection = self._select(request, caller)
        group = self.registry.group(request.model)
        self.resilience.check_room(group)

        async def admit(target: ModelGroup) -> Call:
            begin = self.policies.begin(
                caller,
                target,
                request_id,
                prompt_tokens=lambda: tokens.count_prompt(request),
                max_tokens=request.output_limit,
                requested=requested,
                max_cost_nusd=options.max_cost_nusd,
            )
            if tracing.ON:
                return await tracing.within(
                    "parley.policies", begin, {"parley.model_group": target.name}
                )
            return await begin

        downgrade = group.downgrade
        try:
            call = await admit(group)
        except BudgetExceeded as exc:
            if downgrade is None:
                raise
            reason = f"budget:{exc.scope}"
        else:
            share = call.ticket.highest_use() * 100
            if downgrade is None or downgrade.at_percent is None or share < downgrade.at_percent:
                if selection is not None:
                    call.route(selection.tier, selection.variant, selection.reason)
                return request, group, call
            await self.policies.release(call)
            reason = f"threshold:{downgrade.at_percent:g}%"
        original = group.name
        group = self.registry.group(downgrade.to)
        request = msgspec.structs.replace(request, model=group.name)
        call = await admit(group)
        if selection is not None:
            call.route(selection.tier, selection.variant, selection.reason)
        call.downgraded(original, reason)
        self._metrics.limit_refusals.labels("downgrade", reason.split(":")[0]).inc()
        return request, group, call

    async def _routed(
        self,
        call: Call,
        group: ModelGroup,
        request: ChatRequest,
        options: CallOptions,
        attempt: Callable[[ModelGroup, ChatRequest, Deployment, CallOptions], Awaitable[T]],
    ) -> Outcome[T]:
        """Route and call with resilience, up to the first byte."""
        route = RouteRequest(
            prompt_tokens=lambda: tokens.count_prompt(request),
            max_tokens=request.output_limit or 0,
            strategy=options.strategy if group.allow_strategy_override else None,
        )
        outcome = await self._run(
            call, group, route, lambda dep: attempt(group, request, dep, options), options
        )
        outcome.lease.first_byte()
        call.first_token()
        return outcome

    async def _run(
        self,
        call: Call,
        group: ModelGroup,
        route: RouteRequest,
        attempt: Callable[[Deployment], Awaitable[T]],
        options: CallOptions,
    ) -> Outcome[T]:
        try:
            return await self.resilience.run(
                group,
                route,
                attempt,
                priority=options.priority,
                deadline=options.deadline,
                reservations=self.policies.reservations(call),
            )
        except BaseException as exc:
            status = exc.status_code if isinstance(exc, ParleyError) else 499
            if isinstance(exc, ParleyError):
                self._metrics.errors.labels(call.group, exc.code or exc.error_type).inc()
            await self.policies.finish(call, status=status)
            raise

    async def _succeeded(self, call: Call, lease: Lease, usage: Usage) -> None:
        """Settle a finished call: health, metrics, limits and the usage record."""
        await lease.close(ok=True, tokens=usage.total_tokens)
        self._metrics.record_tokens(
            call.group, lease.deployment.label, usage.prompt_tokens, usage.completion_tokens
        )
        if lease.ttft is not None:
            self._metrics.child(self._metrics.ttft_seconds, call.group).observe(lease.ttft)
        await self.policies.finish(call, status=200, deployment=lease.deployment, usage=usage)

    def _prepare(
        self, group: ModelGroup, deployment: Deployment, request: ChatRequest, options: CallOptions
    ) -> _Prepared:
        provider = self.registry.provider(deployment)
        provider, request = self._guard_api_base(provider, request, options)
        drop = self._drop_params if group.drop_params is None else group.drop_params
        request, dropped = params.apply_drop_params(
            request,
            provider.unsupported_params,
            drop=drop,
            deployment=deployment.label,
            refused=deployment.refused_params,
            forwards_extra=provider.forwards_extra
            or (request.protocol is not None and request.protocol == native_protocol_of(provider)),
        )
        request, dropped_parts = params.apply_drop_parts(
            request, refused_parts_of(provider, request), drop=drop, deployment=deployment.label
        )
        return _Prepared(provider, request, dropped + dropped_parts)

    def _guard_api_base(
        self, provider: Provider, request: ChatRequest, options: CallOptions
    ) -> tuple[Provider, ChatRequest]:
        """SSRF guard: credentials only ever go to configured URLs; a client-chosen URL
        (where an admin opted in) gets the client's own key and nothing of the deployment's.
        Runs for every attempt, so retries and fallbacks are guarded alike."""
        override = request.api_base or request.base_url
        if override is None:
            return provider, request
        param = "api_base" if request.api_base else "base_url"
        deployment = client_deployment(
            provider.deployment, override, param, options.upstream_key, request.model
        )
        request = msgspec.structs.replace(request, api_base=None, base_url=None)
        return self.registry.one_off(deployment), request

    async def _lookup(
        self, call: Call, group: ModelGroup, request: ChatRequest, directive: CacheDirective | None
    ) -> Lookup:
        lookup = self._cache.lookup(call, group, request, directive)
        if not tracing.ON:
            return await lookup

        async def looked_up() -> Lookup:
            found = await lookup
            tracing.annotate({"parley.cache.hit": found.answer is not None})
            return found

        return await tracing.within("parley.cache", looked_up())

    async def chat(
        self,
        request: ChatRequest,
        caller: Caller = ANONYMOUS,
        request_id: str = "",
        options: CallOptions = DEFAULT_OPTIONS,
    ) -> ChatOutcome:
        if tracing.ON:
            served = self._chat(request, caller, request_id, options)
            return await tracing.operation("chat", request.model, served, self._described)
        return await self._chat(request, caller, request_id, options)

    def _described(self, outcome: ChatOutcome) -> dict[str, Any]:
        """The GenAI response attributes of a finished chat call (its span's end)."""
        completion = outcome.completion
        attributes = _response_attributes(completion.usage, completion.model, completion.id)
        reasons = [c.finish_reason for c in completion.choices if c.finish_reason]
        attributes["gen_ai.response.finish_reasons"] = reasons
        return {**attributes, **self._served_by(outcome.deployment)}

    def _served_by(self, label: str) -> dict[str, str | bool]:
        if label == CACHE_DEPLOYMENT:
            return {"parley.deployment": label, "parley.cache.hit": True}
        found = self.health.by_label(label)
        if found is None:
            return {"parley.deployment": label}
        deployment = found.deployment
        return {
            "parley.deployment": label,
            "gen_ai.provider.name": genai_provider(deployment.provider),
        }

    async def _chat(
        self, request: ChatRequest, caller: Caller, request_id: str, options: CallOptions
    ) -> ChatOutcome:
        request, directive = split_directive(request, options.cache)
        request, group, call = await self._admitted(request, caller, request_id, options)
        lookup = await self._lookup(call, group, request, directive)
        if lookup.answer is not None:
            return ChatOutcome(lookup.answer.completion, CACHE_DEPLOYMENT, [], call.headers)
        stored: bytes | None = None
        try:
            outcome = await self._routed(call, group, request, options, self._complete)
            completion, prepared = outcome.value
            if completion.usage is None:
                completion.usage = _counted_usage(prepared.request, _completion_text(completion))
            await self._succeeded(call, outcome.lease, completion.usage)
            stored = await self._cache.store(lookup, completion)
        finally:
            self._cache.land(lookup, stored)
        label = outcome.lease.deployment.label
        return ChatOutcome(completion, label, prepared.dropped, call.headers)

    async def _complete(
        self, group: ModelGroup, request: ChatRequest, deployment: Deployment, options: CallOptions
    ) -> tuple[ChatCompletion, _Prepared]:
        prepared = self._prepare(group, deployment, request, options)
        with self._metrics.upstream_call(deployment):
            completion = await prepared.provider.complete(prepared.request)
        return completion, prepared

    async def _open(
        self, group: ModelGroup, request: ChatRequest, deployment: Deployment, options: CallOptions
    ) -> tuple[_OpenStream, _Prepared]:
        """Open the stream and read its first chunk, so a failure up to there can still
        fail over."""
        prepared = self._prepare(group, deployment, request, options)
        with self._metrics.upstream_call(deployment):
            stream_cm = prepared.provider.open_stream(prepared.request)
            upstream = await stream_cm.__aenter__()
        opened = _OpenStream(stream_cm, upstream)
        try:
            opened.first = await anext(upstream)
        except StopAsyncIteration:
            await opened.close(None)
            raise stream_ended_early(deployment.label) from None
        except BaseException as exc:
            await opened.close(exc)
            raise
        return opened, prepared

    def chat_stream(
        self,
        request: ChatRequest,
        caller: Caller = ANONYMOUS,
        request_id: str = "",
        options: CallOptions = DEFAULT_OPTIONS,
    ) -> contextlib.AbstractAsyncContextManager[StreamOutcome]:
        """See :meth:`_chat_stream`; traced when tracing is on."""
        if tracing.ON:
            return self._traced_stream(request, caller, request_id, options)
        return self._chat_stream(request, caller, request_id, options, _Tally())

    @contextlib.asynccontextmanager
    async def _traced_stream(
        self, request: ChatRequest, caller: Caller, request_id: str, options: CallOptions
    ) -> AsyncIterator[StreamOutcome]:
        """The stream inside a GenAI span that ends with the stream: its children
        (policies, cache, upstream attempts) are made while it is entered."""
        span = tracing.start_operation("chat", request.model)
        tally = _Tally()
        served = self._chat_stream(request, caller, request_id, options, tally)
        label = ""
        try:
            with tracing.current(span):
                outcome = await served.__aenter__()
            label = outcome.deployment
        except BaseException as exc:
            tracing.end(span, {}, exc)
            raise
        error: BaseException | None = None
        try:
            yield outcome
        except BaseException as exc:
            error = exc
            if not await served.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await served.__aexit__(None, None, None)
        finally:
            attributes = _response_attributes(tally.usage, tally.model, tally.response_id)
            attributes["gen_ai.response.finish_reasons"] = tally.finish_reasons
            tracing.end(span, {**attributes, **self._served_by(label)}, error)

    @contextlib.asynccontextmanager
    async def _chat_stream(
        self,
        request: ChatRequest,
        caller: Caller,
        request_id: str,
        options: CallOptions,
        tally: _Tally,
    ) -> AsyncIterator[StreamOutcome]:
        """Entering admits the caller, asks the cache, routes, and reads the first chunk:
        every failure up to there (including a slow first token) can still be retried
        elsewhere or become a proper HTTP error. Leaving closes upstream and settles
        whatever was generated; a stream is cached only when it completed."""
        request, directive = split_directive(request, options.cache)
        request, group, call = await self._admitted(request, caller, request_id, options)
        lookup = await self._lookup(call, group, request, directive)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        if lookup.answer is not None:
            chunks = replay(lookup.answer.completion, include_usage=include_usage)
            yield StreamOutcome(_iterate(chunks), CACHE_DEPLOYMENT, [], call.headers)
            return
        if lookup.plan and lookup.plan.store:
            tally.assembler = Assembler()
        try:
            outcome = await self._routed(call, group, request, options, self._open)
            async with self._upstream_stream(
                call, outcome, include_usage=include_usage, tally=tally, lookup=lookup
            ) as opened:
                yield opened
        finally:
            self._cache.land(lookup, tally.stored)

    @contextlib.asynccontextmanager
    async def _upstream_stream(
        self,
        call: Call,
        outcome: Outcome[tuple[_OpenStream, _Prepared]],
        *,
        include_usage: bool,
        tally: _Tally,
        lookup: Lookup,
    ) -> AsyncIterator[StreamOutcome]:
        opened, prepared = outcome.value
        lease = outcome.lease
        try:
            chunks = self._accounted(
                prepared.request,
                opened.chunks(),
                include_usage=include_usage,
                call=call,
                tally=tally,
                lease=lease,
                lookup=lookup,
            )
            yield StreamOutcome(chunks, lease.deployment.label, prepared.dropped, call.headers)
        except BaseException as exc:
            if not await opened.close(exc):
                raise
        else:
            await opened.close(None)
        finally:
            if not call.finished:  # the client left, or the stream broke mid-way
                usage = _counted_usage(prepared.request, "".join(tally.text))
                await lease.close(ok=tally.status == 499, tokens=usage.total_tokens)
                await self.policies.finish(
                    call, status=tally.status, deployment=lease.deployment, usage=usage
                )
            await lease.close()

    async def _accounted(
        self,
        request: ChatRequest,
        upstream: ChunkStream,
        *,
        include_usage: bool,
        call: Call,
        tally: _Tally,
        lease: Lease,
        lookup: Lookup,
    ) -> ChunkStream:
        usage: Usage | None = None
        text = tally.text
        assembler = tally.assembler
        last: ChatCompletionChunk | None = None
        try:
            async for chunk in upstream:
                if chunk.usage is not None:
                    usage = chunk.usage
                    if not chunk.choices:
                        continue  # the usage-only chunk: re-emitted below if the client asked
                    if not include_usage:
                        chunk.usage = None
                for choice in chunk.choices:
                    if choice.finish_reason:
                        tally.finish_reasons.append(choice.finish_reason)
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                    if delta.reasoning_content:
                        text.append(delta.reasoning_content)
                    for tool_call in delta.tool_calls or []:
                        if tool_call.function and tool_call.function.arguments:
                            text.append(tool_call.function.arguments)
                if assembler is not None:
                    assembler.add(chunk)
                last = chunk
                yield chunk
        except ParleyError as exc:
            tally.status = exc.status_code
            raise
        if usage is None:
            usage = _counted_usage(request, "".join(text))
        tally.usage = usage
        if last is not None:
            tally.model, tally.response_id = last.model, last.id
        # Settled and recorded before the stream's end reaches the client: a client that
        # saw [DONE] can rely on its usage record existing (in Redis, when configured).
        await self._succeeded(call, lease, usage)
        if assembler is not None:
            tally.stored = await self._cache.store(lookup, assembler.completion(usage))
        if include_usage and last is not None:
            cost = call.cost
            yield ChatCompletionChunk(
                last.id,
                last.created,
                last.model,
                [],
                usage=usage,
                system_fingerprint=last.system_fingerprint,
                parley=msgspec.UNSET if cost is None else cost,
            )

    async def embed(
        self,
        request: EmbeddingRequest,
        caller: Caller = ANONYMOUS,
        request_id: str = "",
        options: CallOptions = DEFAULT_OPTIONS,
    ) -> EmbeddingOutcome:
        if tracing.ON:
            served = self._embed(request, caller, request_id, options)
            return await tracing.operation(
                "embeddings", request.model, served, self._described_embedding
            )
        return await self._embed(request, caller, request_id, options)

    def _described_embedding(self, outcome: EmbeddingOutcome) -> dict[str, Any]:
        attributes = {
            "gen_ai.response.model": outcome.result.model,
            "gen_ai.usage.input_tokens": outcome.prompt_tokens,
        }
        return {**attributes, **self._served_by(outcome.deployment)}

    async def _embed(
        self,
        request: EmbeddingRequest,
        caller: Caller,
        request_id: str,
        options: CallOptions,
    ) -> EmbeddingOutcome:
        try:
            texts = request.texts()
        except ValueError as exc:
            raise InvalidRequest(f"Invalid value for 'input': {exc}", param="input") from None
        group = self.registry.group(request.model)
        call = await self.policies.begin(
            caller,
            group,
            request_id,
            prompt_tokens=lambda: sum(tokens.count_text(t) for t in texts),
            max_tokens=None,
        )

        async def attempt(deployment: Deployment) -> EmbeddingResult:
            provider = self.registry.provider(deployment)
            return await self._embeddings.call(deployment, provider, request, texts)

        route = RouteRequest(
            prompt_tokens=lambda: sum(tokens.count_text(t) for t in texts), max_tokens=0
        )
        outcome = await self._run(call, group, route, attempt, options)
        result, lease = outcome.value, outcome.lease
        prompt_tokens = result.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(tokens.count_text(t) for t in texts)
        lease.first_byte()
        await self._succeeded(call, lease, Usage(prompt_tokens, 0, prompt_tokens))
        return EmbeddingOutcome(result, lease.deployment.label, prompt_tokens, call.headers)

    async def embed_texts(self, group: str, texts: list[str]) -> list[list[float]]:
        """Vectors from an embeddings group, for Parley's own use (the semantic cache)."""
        request = EmbeddingRequest(model=group, input=texts)
        outcome = await self.embed(request, ANONYMOUS, "parley-semantic-cache")
        return outcome.result.vectors


class _OpenStream:
    """An upstream stream whose first chunk was already read (to fail over before it)."""

    def __init__(
        self, cm: contextlib.AbstractAsyncContextManager[ChunkStream], upstream: ChunkStream
    ) -> None:
        self._cm = cm
        self._upstream = upstream
        self.first: ChatCompletionChunk | None = None
        self._closed = False

    async def chunks(self) -> ChunkStream:
        if self.first is not None:
            yield self.first
        async for chunk in self._upstream:
            yield chunk

    async def close(self, exc: BaseException | None) -> Any:
        if self._closed:
            return False
        self._closed = True
        if exc is None:
            return await self._cm.__aexit__(None, None, None)
        return await self._cm.__aexit__(type(exc), exc, exc.__traceback__)


@dataclass(slots=True)
class _Tally:
    """What a stream produced so far, for settling a stream that did not finish."""

    text: list[str] = field(default_factory=list)
    status: int = 499  # client closed the request, unless an upstream error says otherwise
    assembler: Assembler | None = None
    """Set when the answer may be cached: collects it, to store once it is complete."""
    stored: bytes | None = None
    finish_reasons: list[str] = field(default_factory=list)
    usage: Usage | None = None
    model: str = ""
    response_id: str = ""


def _response_attributes(usage: Usage | None, model: str, response_id: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if model:
        attributes["gen_ai.response.model"] = model
    if response_id:
        attributes["gen_ai.response.id"] = response_id
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
    return attributes


async def _iterate(chunks: list[ChatCompletionChunk]) -> ChunkStream:
    for chunk in chunks:
        yield chunk


def _completion_text(completion: ChatCompletion) -> str:
    parts: list[str] = []
    for choice in completion.choices:
        parts.append(choice.message.content or "")
        if isinstance(choice.message.reasoning_content, str):
            parts.append(choice.message.reasoning_content)
        for call in choice.message.tool_calls or []:
            parts.append(call.function.arguments)
    return "".join(parts)


def _counted_usage(request: ChatRequest, completion_text: str) -> Usage:
    prompt = tokens.count_prompt(request)
    completion = tokens.count_text(completion_text)
    return Usage(prompt, completion, prompt + completion)
