"""The gateway pipeline: resolve the model group, admit the caller (access, limits,
budgets), check parameters, call the provider, and account tokens, cost and usage
(counting tokens when the upstream does not).

Framework-free: takes typed requests and a ``Caller``, returns typed results or chunk
iterators. The API layer renders them. Later issues insert cache and resilience steps here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec

from parley.errors import InvalidRequest, ParleyError, UpstreamProtocolError
from parley.gateway import params, tokens
from parley.gateway.caller import ANONYMOUS, Caller
from parley.gateway.policy import Call, Policies
from parley.gateway.registry import ModelRegistry
from parley.gateway.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    Usage,
)
from parley.observability.metrics import Metrics
from parley.providers.base import ChunkStream, Provider


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


class Gateway:
    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        *,
        drop_params: bool,
        policies: Policies | None = None,
    ) -> None:
        self.registry = registry
        self._metrics = metrics
        self._drop_params = drop_params
        self.policies = policies or Policies(None, None, metrics)

    async def _begin(self, request: ChatRequest, caller: Caller, request_id: str) -> Call:
        return await self.policies.begin(
            caller,
            self.registry.group(request.model),
            request_id,
            prompt_tokens=lambda: tokens.count_prompt(request),
            max_tokens=request.output_limit,
        )

    def _prepare(self, request: ChatRequest) -> tuple[Provider, ChatRequest, list[str]]:
        group = self.registry.group(request.model)
        provider = self.registry.pick(request.model)
        provider, request = self._guard_api_base(provider, request)
        drop = self._drop_params if group.drop_params is None else group.drop_params
        request, dropped = params.apply_drop_params(
            request, provider.unsupported_params, drop=drop, deployment=provider.deployment.label
        )
        return provider, request, dropped

    def _guard_api_base(
        self, provider: Provider, request: ChatRequest
    ) -> tuple[Provider, ChatRequest]:
        """SSRF guard: credentials only ever go to configured URLs, unless an admin opted in."""
        override = request.api_base or request.base_url
        if override is None:
            return provider, request
        param = "api_base" if request.api_base else "base_url"
        if not provider.deployment.allow_client_api_base:
            raise InvalidRequest(
                f"{param} cannot be set per request for model {request.model!r}", param=param
            )
        parts = urlsplit(override)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest(f"{param} must be an http(s) URL", param=param)
        request = msgspec.structs.replace(request, api_base=None, base_url=None)
        return self.registry.with_api_base(provider, override), request

    async def chat(
        self, request: ChatRequest, caller: Caller = ANONYMOUS, request_id: str = ""
    ) -> ChatOutcome:
        provider, request, dropped = self._prepare(request)
        call = await self._begin(request, caller, request_id)
        label = provider.deployment.label
        try:
            with self._metrics.upstream_call(provider.deployment):
                completion = await provider.complete(request)
        except ParleyError as exc:
            await self.policies.finish(call, status=exc.status_code, deployment=provider.deployment)
            raise
        except BaseException:
            await self.policies.finish(call, status=499, deployment=provider.deployment)
            raise
        call.first_token()
        if completion.usage is None:
            completion.usage = _counted_usage(request, _completion_text(completion))
        self._metrics.record_tokens(request.model, label, completion.usage)
        await self.policies.finish(
            call, status=200, deployment=provider.deployment, usage=completion.usage
        )
        return ChatOutcome(completion, label, dropped, call.headers)

    @contextlib.asynccontextmanager
    async def chat_stream(
        self, request: ChatRequest, caller: Caller = ANONYMOUS, request_id: str = ""
    ) -> AsyncIterator[StreamOutcome]:
        """Entering admits the caller and opens the upstream (errors raise here, before any
        byte reaches the client); the chunks then carry usage as the client asked; leaving
        closes upstream and, if the stream did not finish, settles what was generated."""
        provider, request, dropped = self._prepare(request)
        call = await self._begin(request, caller, request_id)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        label = provider.deployment.label
        tally = _Tally()
        try:
            with self._metrics.upstream_call(provider.deployment):
                stream_cm = provider.open_stream(request)
                upstream = await stream_cm.__aenter__()
        except ParleyError as exc:
            await self.policies.finish(call, status=exc.status_code, deployment=provider.deployment)
            raise
        except BaseException:
            await self.policies.finish(call, status=499, deployment=provider.deployment)
            raise
        try:
            chunks = self._accounted(
                request,
                upstream,
                include_usage=include_usage,
                call=call,
                tally=tally,
                provider=provider,
            )
            yield StreamOutcome(chunks, label, dropped, call.headers)
        except BaseException as exc:
            if not await stream_cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await stream_cm.__aexit__(None, None, None)
        finally:
            if not call.finished:  # the client left, or the stream broke mid-way
                usage = _counted_usage(request, "".join(tally.text))
                await self.policies.finish(
                    call, status=tally.status, deployment=provider.deployment, usage=usage
                )

    async def _accounted(
        self,
        request: ChatRequest,
        upstream: ChunkStream,
        *,
        include_usage: bool,
        call: Call,
        tally: _Tally,
        provider: Provider,
    ) -> ChunkStream:
        label = provider.deployment.label
        usage: Usage | None = None
        text = tally.text
        last: ChatCompletionChunk | None = None
        try:
            async for chunk in self._timed(upstream, call):
                if chunk.usage is not None:
                    usage = chunk.usage
                    if not chunk.choices:
                        continue  # the usage-only chunk: re-emitted below if the client asked
                    if not include_usage:
                        chunk.usage = None
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                    for tool_call in delta.tool_calls or []:
                        if tool_call.function and tool_call.function.arguments:
                            text.append(tool_call.function.arguments)
                last = chunk
                yield chunk
        except ParleyError as exc:
            tally.status = exc.status_code
            raise
        if usage is None:
            usage = _counted_usage(request, "".join(text))
        self._metrics.record_tokens(request.model, label, usage)
        # Settled and recorded before the stream's end reaches the client: a client that
        # saw [DONE] can rely on its usage record existing (in Redis, when configured).
        await self.policies.finish(call, status=200, deployment=provider.deployment, usage=usage)
        if include_usage and last is not None:
            yield ChatCompletionChunk(
                last.id,
                last.created,
                last.model,
                [],
                usage=usage,
                system_fingerprint=last.system_fingerprint,
            )

    @staticmethod
    async def _timed(upstream: ChunkStream, call: Call) -> ChunkStream:
        async for chunk in upstream:
            call.first_token()
            yield chunk

    async def embed(
        self, request: EmbeddingRequest, caller: Caller = ANONYMOUS, request_id: str = ""
    ) -> EmbeddingOutcome:
        try:
            texts = request.texts()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="input") from None
        provider = self.registry.pick(request.model)
        call = await self.policies.begin(
            caller,
            self.registry.group(request.model),
            request_id,
            prompt_tokens=lambda: sum(tokens.count_text(t) for t in texts),
            max_tokens=None,
        )
        status, usage = 499, None
        try:
            with self._metrics.upstream_call(provider.deployment):
                result = await provider.embed(request)
            if len(result.vectors) != len(texts):
                raise UpstreamProtocolError(
                    f"upstream {provider.deployment.label} returned {len(result.vectors)} "
                    f"embeddings for {len(texts)} inputs",
                    deployment=provider.deployment.label,
                )
            prompt_tokens = result.prompt_tokens
            if prompt_tokens is None:
                prompt_tokens = sum(tokens.count_text(t) for t in texts)
            usage = Usage(prompt_tokens, 0, prompt_tokens)
            status = 200
        except ParleyError as exc:
            status = exc.status_code
            raise
        finally:
            await self.policies.finish(
                call, status=status, deployment=provider.deployment, usage=usage
            )
        self._metrics.record_tokens(request.model, provider.deployment.label, usage)
        return EmbeddingOutcome(result, provider.deployment.label, prompt_tokens, call.headers)


@dataclass(slots=True)
class _Tally:
    """What a stream produced so far, for settling a stream that did not finish."""

    text: list[str] = field(default_factory=list)
    status: int = 499  # client closed the request, unless an upstream error says otherwise


def _completion_text(completion: ChatCompletion) -> str:
    parts: list[str] = []
    for choice in completion.choices:
        parts.append(choice.message.content or "")
        for call in choice.message.tool_calls or []:
            parts.append(call.function.arguments)
    return "".join(parts)


def _counted_usage(request: ChatRequest, completion_text: str) -> Usage:
    prompt = tokens.count_prompt(request)
    completion = tokens.count_text(completion_text)
    return Usage(prompt, completion, prompt + completion)
