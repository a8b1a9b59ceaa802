"""The gateway pipeline: resolve the model group, check parameters, call the provider, and
account tokens (counting them when the upstream does not).

Framework-free: takes typed requests, returns typed results or chunk iterators. The API
layer renders them. Later issues insert admission, cache and resilience steps here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec

from parley.errors import InvalidRequest, UpstreamProtocolError
from parley.gateway import params, tokens
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


@dataclass(slots=True)
class StreamOutcome:
    chunks: ChunkStream
    deployment: str
    dropped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EmbeddingOutcome:
    result: EmbeddingResult
    deployment: str
    prompt_tokens: int


class Gateway:
    def __init__(self, registry: ModelRegistry, metrics: Metrics, *, drop_params: bool) -> None:
        self.registry = registry
        self._metrics = metrics
        self._drop_params = drop_params

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

    async def chat(self, request: ChatRequest) -> ChatOutcome:
        provider, request, dropped = self._prepare(request)
        label = provider.deployment.label
        with self._metrics.upstream_call(provider.deployment):
            completion = await provider.complete(request)
        if completion.usage is None:
            completion.usage = _counted_usage(request, _completion_text(completion))
        self._metrics.record_tokens(request.model, label, completion.usage)
        return ChatOutcome(completion, label, dropped)

    @contextlib.asynccontextmanager
    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[StreamOutcome]:
        """Entering opens the upstream (errors raise here, before any byte reaches the
        client); the chunks then carry usage as the client asked; leaving closes upstream."""
        provider, request, dropped = self._prepare(request)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        label = provider.deployment.label
        with self._metrics.upstream_call(provider.deployment):
            stream_cm = provider.open_stream(request)
            upstream = await stream_cm.__aenter__()
        try:
            yield StreamOutcome(
                self._accounted(request, upstream, include_usage, label), label, dropped
            )
        except BaseException as exc:
            if not await stream_cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await stream_cm.__aexit__(None, None, None)

    async def _accounted(
        self, request: ChatRequest, upstream: ChunkStream, include_usage: bool, label: str
    ) -> ChunkStream:
        usage: Usage | None = None
        text: list[str] = []
        last: ChatCompletionChunk | None = None
        async for chunk in upstream:
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
                for call in delta.tool_calls or []:
                    if call.function and call.function.arguments:
                        text.append(call.function.arguments)
            last = chunk
            yield chunk
        if usage is None:
            usage = _counted_usage(request, "".join(text))
        self._metrics.record_tokens(request.model, label, usage)
        if include_usage and last is not None:
            yield ChatCompletionChunk(
                last.id,
                last.created,
                last.model,
                [],
                usage=usage,
                system_fingerprint=last.system_fingerprint,
            )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingOutcome:
        try:
            texts = request.texts()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="input") from None
        provider = self.registry.pick(request.model)
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
        self._metrics.record_tokens(
            request.model, provider.deployment.label, Usage(prompt_tokens, 0, prompt_tokens)
        )
        return EmbeddingOutcome(result, provider.deployment.label, prompt_tokens)


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
