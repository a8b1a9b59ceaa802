"""The one small interface every provider adapter implements, and helpers they share."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from parley.config.loader import Deployment
from parley.errors import UpstreamProtocolError, UpstreamStatusError
from parley.observability.redact import redactor
from parley.providers.http import RawResponse, StreamingResponse
from parley.schema.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
)

ChunkStream = AsyncIterator[ChatCompletionChunk]


class Provider(Protocol):
    """An upstream API, seen through Parley's types.

    ``open_stream`` is an async context manager: entering it sends the request and returns
    once the upstream accepted it (HTTP status known), so failures before the first byte
    can still become a proper HTTP error; iterating yields OpenAI-shaped chunks; leaving it
    closes the upstream connection (which is how a disconnected client cancels upstream).
    """

    deployment: Deployment
    unsupported_params: frozenset[str]
    """Typed parameters the adapter cannot honour (``gateway/params.py``)."""
    forwards_extra: bool
    """Whether top-level fields Parley has no type for are sent upstream as they came."""
    # Optional, read with ``native_protocol_of``: ``native_protocol``, the inbound protocol
    # (``ChatRequest.protocol``) that is this upstream's own API, whose requests' extra
    # fields are the upstream's own and are forwarded too (Anthropic: "messages").
    # Optional, read with ``refused_parts_of``: ``refused_parts(request)``, the content
    # parts the adapter cannot send (Bedrock: a document by URL or file id), which the
    # gateway refuses or drops as ``drop_params`` decides, as it does parameters.
    # Optional, read with ``signs_thinking``: ``signed_thinking``, True when reasoning
    # comes as thinking blocks closed by a signature (Claude's), not as plain text.

    async def complete(self, request: ChatRequest) -> ChatCompletion: ...

    def open_stream(
        self, request: ChatRequest
    ) -> contextlib.AbstractAsyncContextManager[ChunkStream]: ...

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult: ...


def native_protocol_of(provider: Provider) -> str | None:
    """The adapter's ``native_protocol``; None for adapters that declare none."""
    value = getattr(provider, "native_protocol", None)
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RefusedPart:
    """A content part of a user message that an adapter cannot send, and why: the gateway
    names it (``param``) in the 400, or drops it with ``drop_params``."""

    message: int
    part: int
    reason: str

    @property
    def param(self) -> str:
        return f"messages[{self.message}].content[{self.part}]"


def refused_parts_of(provider: Provider, request: ChatRequest) -> list[RefusedPart]:
    """The parts of ``request`` the adapter says it cannot send; none for adapters that
    declare no ``refused_parts`` (they send every part, or refuse one as they build it)."""
    check = getattr(provider, "refused_parts", None)
    return list(check(request)) if check is not None else []


def signs_thinking(provider: Provider) -> bool:
    """Whether the adapter's reasoning comes as signed thinking blocks: a stream's reader
    must keep each block until its signature, which comes only at its end."""
    return getattr(provider, "signed_thinking", False) is True


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def decode_json(raw: bytes, deployment: str) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(
            f"upstream {deployment} sent a body that is not valid JSON", deployment=deployment
        ) from exc


def raise_for_status(status: int, headers: Mapping[str, str], body: bytes, deployment: str) -> None:
    """Map an upstream HTTP error faithfully: same status, its message, Retry-After kept.

    Understands the error envelopes of OpenAI (``error.message/type/code/param``),
    Anthropic (``{"type":"error","error":{"type","message"}}``) and Gemini
    (``error.code/message/status``).
    """
    if status < 400:
        return
    message, error_type, code, param = _parse_error(body)
    message = redactor.scrub(message)  # upstreams echo (parts of) keys in auth errors
    raise UpstreamStatusError(
        status,
        f"upstream {deployment} returned {status}: {message}",
        deployment=deployment,
        error_type=error_type,
        code=code,
        param=param,
        retry_after=headers.get("Retry-After"),
    )


def _parse_error(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", errors="replace").strip()[:500]
        return text or "(empty body)", None, None, None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "(no message)")
        raw_type = error.get("type")
        code = error.get("code") if isinstance(error.get("code"), str) else None
        code = code or (error.get("status") if isinstance(error.get("status"), str) else None)
        param = error.get("param") if isinstance(error.get("param"), str) else None
        return message, raw_type if isinstance(raw_type, str) else None, code, param
    if isinstance(error, str):
        return error, None, None, None
    return str(data)[:500], None, None, None


def check_response(resp: RawResponse, deployment: str) -> Any:
    raise_for_status(resp.status, resp.headers, resp.body, deployment)
    return decode_json(resp.body, deployment)


def json_body(payload: Any) -> bytes:
    return msgspec.json.encode(payload)


def stream_ended_early(deployment: str) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        f"upstream {deployment} ended the stream before it was complete",
        deployment=deployment,
    )


async def check_stream(upstream: StreamingResponse) -> None:
    """An upstream that refused a stream answers with an ordinary error body: map it."""
    if upstream.status >= 400:
        raise_for_status(
            upstream.status, upstream.headers, await upstream.read_all(), upstream.deployment
        )


@contextlib.contextmanager
def unexpected(deployment: str, what: str) -> Iterator[None]:
    """Around reading a provider's answer: a field missing or of the wrong type (``KeyError``,
    ``TypeError``, ``ValueError``) is the upstream's fault, said as one protocol error
    naming ``what`` it sent ("an unexpected message", "a malformed chunk")."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamProtocolError(
            f"upstream {deployment} sent {what}", deployment=deployment
        ) from exc
