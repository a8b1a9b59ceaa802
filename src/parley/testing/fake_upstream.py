"""A fake upstream speaking OpenAI, Azure OpenAI, Anthropic, Gemini and Amazon Bedrock at
their real paths.

In-process (``async with FakeUpstream() as fake: fake.url``) on a free loopback port, or as
``python -m parley.testing.fake_upstream --port N`` for benchmarks. Scripts latency, time to
first token, HTTP errors with ``Retry-After``, connection resets and malformed chunks
mid-stream (see ``scenario`` for the model-name directives), counts calls, and records
streams whose client went away (``disconnects``).

Keys: any non-empty key is accepted except ones starting with ``bad``, which get a 401 whose
message echoes the key, as real providers partly do, so tests can prove Parley scrubs it.

Bedrock (``/model/{modelId}/converse`` and ``/converse-stream``) checks every request's SigV4
signature against the known test credentials (``aws.FAKE_AWS_CREDENTIALS``) and refuses
unsigned or wrongly signed ones as AWS does; a Bedrock API key (bearer) is taken like any
other key. Its streams are AWS event-stream frames.

The OpenAI and Azure chat routes refuse what the real API refuses (``openai_rules``):
missing required fields, wrong types, unknown top-level parameters. ``/compat/v1`` is an
OpenAI-compatible server that takes any extra parameter, as vLLM or llama.cpp do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from parley.testing import scenario
from parley.testing.aws import Incoming, verify_sigv4
from parley.testing.bedrock import BedrockFormat
from parley.testing.formats import (
    AnthropicFormat,
    GeminiFormat,
    OpenAIFormat,
    WireFormat,
)
from parley.testing.openai_rules import Rejected, check_chat
from parley.testing.responses_format import ResponsesFormat, check_responses
from parley.testing.scenario import Behaviour

_BODY: web.RequestKey[Any] = web.RequestKey("parsed_body", object)  # JSON, or raw bytes
_RAW: web.RequestKey[bytes] = web.RequestKey("raw_body", bytes)  # what a signature covers
_MALFORMED_SSE = b'data: {"choices": [{"delta": {"content": \n\n'
_OPENAI = OpenAIFormat()
_ANTHROPIC = AnthropicFormat()
_GEMINI = GeminiFormat()
_BEDROCK = BedrockFormat()


@dataclass(slots=True)
class Call:
    family: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    defaults: Behaviour = field(default_factory=Behaviour)
    calls: list[Call] = field(default_factory=list)
    disconnects: int = 0
    set_cookies: dict[str, str] = field(default_factory=dict)
    """Sent with every response, as a provider's CDN does (``__cf_bm`` and the like)."""
    _faults: deque[Behaviour] = field(default_factory=deque)
    _prompt_cache: set[str] = field(default_factory=set)
    """Prompt prefixes seen at a cache breakpoint (Anthropic format)."""
    _runner: web.AppRunner | None = None
    _disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record])
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/v1/responses", self._openai_responses)
        app.router.add_post("/compat/v1/chat/completions", self._compatible_chat)
        app.router.add_post("/v1/embeddings", self._openai_embeddings)
        app.router.add_get("/v1/models", self._openai_models)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure_chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._azure_embeddings)
        app.router.add_post("/v1/messages", self._anthropic_messages)
        app.router.add_post("/v1beta/models/{model_action}", self._gemini)
        app.router.add_post("/model/{model}/converse", self._bedrock_converse)
        app.router.add_post("/model/{model}/converse-stream", self._bedrock_converse_stream)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- scripting -----------------------------------------------------------------------

    def fail_next(self, behaviour: Behaviour) -> None:
        """The next call (any family) behaves like this, whatever its model name says."""
        self._faults.append(behaviour)

    async def wait_for_disconnect(self, seconds: float = 5.0) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._disconnected.wait()
        return self._disconnected.is_set()

    def calls_to(self, family: str) -> list[Call]:
        return [c for c in self.calls if c.family == family]

    # --- handlers ------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Count every call, refused ones included; handlers read the body parsed here."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw
        self.calls.append(Call(_family(request.path), request.path_qs, dict(request.headers), body))
        request[_BODY] = body
        request[_RAW] = raw
        response: web.StreamResponse = await handler(request)
        for name, value in self.set_cookies.items():
            response.set_cookie(name, value)
        return response

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_bearer(request, _OPENAI, optional=True)) is not None:
            return denied
        return await self._chat(request, _OPENAI, None, check=check_chat)

    async def _openai_responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API (``responses_format``); a format per request, since it
        echoes the request's settings in its answer."""
        if (denied := self._check_bearer(request, _OPENAI, optional=True)) is not None:
            return denied
        return await self._chat(request, ResponsesFormat(), None, check=check_responses)

    async def _compatible_chat(self, request: web.Request) -> web.StreamResponse:
        """An OpenAI-compatible server (vLLM-like): OpenAI's format, but parameters of its
        own (``top_k``, ``min_p``, ...) are taken, not refused."""
        return await self._chat(request, _OPENAI, None)

    async def _azure_chat(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_azure(request)) is not None:
            return denied
        return await self._chat(
            request, _OPENAI, request.match_info["deployment"], check=_check_azure_chat
        )

    async def _anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("anthropic-version"):
            return _json(_ANTHROPIC.error(400, "anthropic-version: header is required"), 400)
        if (
            denied := self._check_key(request, _ANTHROPIC, request.headers.get("x-api-key"))
        ) is not None:
            return denied
        return await self._chat(request, _ANTHROPIC, None)

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["model_action"].partition(":")
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if (denied := self._check_key(request, _GEMINI, key)) is not None:
            return denied
        if action == "generateContent":
            return await self._chat(request, _GEMINI, model, force_stream=False)
        if action == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return _json(_GEMINI.error(400, "this fake streams only with alt=sse"), 400)
            return await self._chat(request, _GEMINI, model, force_stream=True)
        if action == "batchEmbedContents":
            return await self._gemini_embeddings(request, model)
        return _json(_GEMINI.error(404, f"unknown method {action}"), 404)

    async def _bedrock_converse(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_aws(request)) is not None:
            return denied
        return await self._chat(request, _BEDROCK, request.match_info["model"], force_stream=False)

    async def _bedrock_converse_stream(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_aws(request)) is not None:
            return denied
        return await self._chat(request, _BEDROCK, request.match_info["model"], force_stream=True)

    async def _chat(
        self,
        request: web.Request,
        fmt: WireFormat,
        path_model: str | None,
        force_stream: bool | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> web.StreamResponse:
        body = request[_BODY]
        if not isinstance(body, dict):
            return _error(fmt, 400, "request body is not a JSON object")
        if check is not None:
            try:
                check(body)
            except Rejected as exc:
                return _json(exc.body, 400)
        try:
            parsed = fmt.read(body, path_model)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return _error(fmt, 400, f"invalid request: {exc}")
        if force_stream is not None:
            parsed.stream = force_stream
        if parsed.cache_key is not None:
            parsed.cache_hit = parsed.cache_key in self._prompt_cache
            self._prompt_cache.add(parsed.cache_key)
        behaviour = (
            self._faults.popleft()
            if self._faults
            else scenario.parse_model(parsed.model, self.defaults)
        )
        parsed.sparse = behaviour.sparse
        parsed.parallel_tools = behaviour.parallel_tools
        if not await self._latency(request, behaviour.latency):
            return web.Response(status=499)  # nobody is listening any more
        if behaviour.status is not None:
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else None
            message = behaviour.error_message or f"fake upstream error {behaviour.status}"
            return _error(fmt, behaviour.status, message, headers)
        answer = scenario.answer(parsed.conversation, behaviour)
        if behaviour.omit_usage:
            parsed.include_usage = False  # as a server that ignores stream_options does
        if not parsed.stream:
            reply = fmt.complete(parsed, answer)
            if behaviour.omit_usage:
                reply.pop("usage", None)
            return _json(reply, 200)
        frames = fmt.frames(parsed, answer)
        if behaviour.error_after is not None:
            frames = [*frames[: behaviour.error_after], fmt.error_frame("upstream overloaded")]
        return await self._stream(request, frames, behaviour, fmt)

    async def _stream(
        self, request: web.Request, frames: list[bytes], behaviour: Behaviour, fmt: WireFormat
    ) -> web.StreamResponse:
        if isinstance(fmt, BedrockFormat):
            content_type, malformed = fmt.stream_content_type, fmt.malformed_frame()
        else:
            content_type, malformed = "text/event-stream", _MALFORMED_SSE
        response = web.StreamResponse(
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await self._sleep(request, behaviour.ttft)
            for index, frame in enumerate(frames):
                if behaviour.cut_after is not None and index >= behaviour.cut_after:
                    assert request.transport is not None
                    request.transport.abort()  # a reset, not a clean end of the chunked body
                    return response
                if behaviour.malformed_after is not None and index == behaviour.malformed_after:
                    await response.write(malformed)
                    continue
                if index and behaviour.chunk_delay:
                    await self._sleep(request, behaviour.chunk_delay)
                await response.write(frame)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            self._note_disconnect()
        return response

    async def _sleep(self, request: web.Request, seconds: float) -> None:
        """Sleep, but notice promptly when the client hangs up meanwhile."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError("client went away")
            await asyncio.sleep(min(0.02, left))
        if request.transport is None or request.transport.is_closing():
            raise ConnectionResetError("client went away")

    async def _latency(self, request: web.Request, seconds: float) -> bool:
        """Wait before answering; False when the client hung up meanwhile (a caller that
        timed out), so that a stopping fake is not held up by answers nobody reads."""
        if seconds <= 0:
            return True
        try:
            await self._sleep(request, seconds)
        except ConnectionResetError:
            self._note_disconnect()
            return False
        return True

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self._disconnected.set()

    async def _openai_embeddings(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_bearer(request, _OPENAI, optional=True)) is not None:
            return denied
        return await self._embeddings(request, "openai")

    async def _azure_embeddings(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_azure(request)) is not None:
            return denied
        return await self._embeddings(request, "azure")

    async def _embeddings(self, request: web.Request, family: str) -> web.StreamResponse:
        body = request[_BODY]
        behaviour = scenario.parse_model(str(body.get("model", "")), self.defaults)
        if not await self._latency(request, behaviour.latency):
            return web.Response(status=499)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = int(body.get("dimensions") or 16)
        data = [
            {"object": "embedding", "index": i, "embedding": scenario.embedding(str(text), dims)}
            for i, text in enumerate(inputs)
        ]
        words = sum(scenario.count_words(str(t)) for t in inputs)
        return _json(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", family),
                "usage": {"prompt_tokens": words, "total_tokens": words},
            },
            200,
        )

    async def _gemini_embeddings(self, request: web.Request, model: str) -> web.StreamResponse:
        body = request[_BODY]
        vectors = []
        for item in body["requests"]:
            if item.get("model") != f"models/{model}":
                return _json(_GEMINI.error(400, "request model does not match the URL"), 400)
            text = "".join(p.get("text", "") for p in item["content"]["parts"])
            vectors.append(
                {"values": scenario.embedding(text, int(item.get("outputDimensionality") or 16))}
            )
        return _json({"embeddings": vectors}, 200)

    async def _openai_models(self, request: web.Request) -> web.StreamResponse:
        return _json(
            {
                "object": "list",
                "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "fake"}
                ],
            },
            200,
        )

    # --- auth ----------------------------------------------------------------------------

    def _check_bearer(
        self, request: web.Request, fmt: WireFormat, *, optional: bool
    ) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header and optional:
            return None
        return self._check_key(request, fmt, header.removeprefix("Bearer ").strip())

    def _check_azure(self, request: web.Request) -> web.Response | None:
        if not request.query.get("api-version"):
            return _json(_OPENAI.error(400, "Missing required query parameter: api-version"), 400)
        key = request.headers.get("api-key") or request.headers.get(
            "Authorization", ""
        ).removeprefix("Bearer ")
        return self._check_key(request, _OPENAI, key)

    def _check_aws(self, request: web.Request) -> web.Response | None:
        """A Bedrock API key (bearer) like any key; else a SigV4 signature, verified."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            key = header.removeprefix("Bearer ").strip()
            if key.startswith("bad"):
                return _error(
                    _BEDROCK, 403, f"Invalid API key: {key}", error="AccessDeniedException"
                )
            return None
        incoming = Incoming(
            request.method, request.host, request.raw_path, request.headers, request[_RAW]
        )
        refusal = verify_sigv4(incoming)
        if refusal is None:
            return None
        return _error(_BEDROCK, refusal.status, refusal.message, error=refusal.error)

    def _check_key(
        self, request: web.Request, fmt: WireFormat, key: str | None
    ) -> web.Response | None:
        if not key:
            return _json(fmt.error(401, "no API key provided"), 401)
        if key.startswith("bad"):
            return _json(fmt.error(401, f"Incorrect API key provided: {key}"), 401)
        return None


def _check_azure_chat(body: dict[str, Any]) -> None:
    check_chat(body, azure=True)


def _family(path: str) -> str:
    if path.startswith("/openai/"):
        return "azure"
    if path.startswith("/v1beta/"):
        return "gemini"
    if path == "/v1/messages":
        return "anthropic"
    if path.startswith("/compat/"):
        return "openai_compatible"
    if path.startswith("/model/"):
        return "bedrock"
    return "openai"


def _json(payload: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


def _error(
    fmt: WireFormat,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    error: str | None = None,
) -> web.Response:
    """An error in ``fmt``'s envelope; Bedrock's carries its name in ``x-amzn-ErrorType``."""
    if isinstance(fmt, BedrockFormat):
        headers = {**(headers or {}), **fmt.error_headers(status, error)}
    return _json(fmt.error(status, message), status, headers)


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(**kwargs)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake LLM upstream for tests and benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before headers")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to first chunk")
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=None, help="words per answer")
    args = parser.parse_args(argv)
    defaults = Behaviour(
        latency=args.latency, ttft=args.ttft, chunk_delay=args.chunk_delay, tokens=args.tokens
    )

    async def serve() -> None:
        fake = FakeUpstream(host=args.host, port=args.port, defaults=defaults)
        await fake.start()
        print(f"fake upstream listening on {fake.url}", flush=True)  # noqa: T201
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
