"""Anthropic Messages API (``POST /v1/messages``), translated to and from OpenAI's shapes.

Notable translations: system messages are hoisted to ``system``; tool results become
``tool_result`` blocks inside a user turn; consecutive same-role turns are merged;
``max_tokens`` (required by Anthropic) defaults to 4096, and ``reasoning_effort`` becomes a
thinking budget (both in ``thinking.py``, shared with Bedrock); JSON mode is done with a
forced tool whose input schema is the requested schema, and its input is returned as the
message text (Anthropic then guarantees schema-shaped output).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from parley.config.loader import Deployment
from parley.errors import InvalidRequest, UpstreamProtocolError, UpstreamStatusError
from parley.providers import convert
from parley.providers.base import (
    ChunkStream,
    check_response,
    check_stream,
    decode_json,
    json_body,
    now,
    stream_ended_early,
    unexpected,
)
from parley.providers.http import StreamingResponse, UpstreamClient
from parley.providers.sse import iter_sse
from parley.providers.thinking import claude_thinking
from parley.schema.chat import (
    OPENAI_ONLY_PARAMS,
    AssistantMessage,
    CacheControl,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    Delta,
    DeveloperMessage,
    EmbeddingRequest,
    EmbeddingResult,
    FilePart,
    ImagePart,
    NamedToolChoice,
    SystemMessage,
    TextPart,
    ThinkingBlock,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)

ANTHROPIC_VERSION = "2023-06-01"
JSON_TOOL = "json_response"

_FINISH = {
    "end_turn": convert.FINISH_STOP,
    "stop_sequence": convert.FINISH_STOP,
    "pause_turn": convert.FINISH_STOP,
    "max_tokens": convert.FINISH_LENGTH,
    "tool_use": convert.FINISH_TOOLS,
    "refusal": convert.FINISH_FILTER,
}


class AnthropicProvider:
    # safety_identifier is translated (metadata.user_id, as user is), reasoning_effort to a
    # thinking budget; top_k is Anthropic's.
    unsupported_params: frozenset[str] = (
        frozenset(
            {
                "n",
                "seed",
                "logprobs",
                "top_logprobs",
                "presence_penalty",
                "frequency_penalty",
                "logit_bias",
            }
        )
        | OPENAI_ONLY_PARAMS
    ) - {"safety_identifier", "reasoning_effort"}
    forwards_extra: bool = False
    native_protocol: str | None = "messages"
    signed_thinking: bool = True

    def __init__(self, deployment: Deployment, client: UpstreamClient) -> None:
        self.deployment = deployment
        self._client = client
        self._url = f"{deployment.api_base}/v1/messages"

    def _headers(self, request: ChatRequest) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **self.deployment.extra_headers,
        }
        if request.anthropic_beta:
            configured = headers.get("anthropic-beta")
            flags = [configured, *request.anthropic_beta] if configured else request.anthropic_beta
            headers["anthropic-beta"] = ",".join(flags)
        if self.deployment.api_key is not None:
            headers["x-api-key"] = self.deployment.api_key.reveal()
        return headers

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        body = to_anthropic(request, self.deployment.model, stream=False)
        data = check_response(
            await self._client.post(self._url, self._headers(request), json_body(body)),
            self._client.deployment,
        )
        with unexpected(self._client.deployment, "an unexpected message"):
            return anthropic_to_parley_completion(data, json_mode=_json_mode(request))

    @contextlib.asynccontextmanager
    async def open_stream(self, request: ChatRequest) -> AsyncIterator[ChunkStream]:
        body = to_anthropic(request, self.deployment.model, stream=True)
        headers = self._headers(request)
        async with self._client.open_stream(self._url, headers, json_body(body)) as up:
            await check_stream(up)
            yield _StreamTranslator(up, json_mode=_json_mode(request)).chunks()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        raise InvalidRequest(
            f"model {request.model!r} is served by Anthropic, which has no embeddings API",
            param="model",
            code="model_not_supported",
        )


def _json_mode(request: ChatRequest) -> bool:
    return convert.json_output_schema(request) is not None


# --- request -------------------------------------------------------------------------------


def to_anthropic(request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
    """The Messages body for a canonical request. Everything Anthropic takes survives:
    cache breakpoints on system, content, tool and tool-result blocks, thinking blocks with
    their signatures, ``is_error``, documents, ``thinking`` and ``top_k``."""
    thinking, max_tokens = claude_thinking(request)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": _messages(request),
    }
    if stream:
        body["stream"] = True
    system = _system(request)
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.stop_list:
        body["stop_sequences"] = request.stop_list
    if request.user or request.safety_identifier:
        body["metadata"] = {"user_id": request.user or request.safety_identifier}
    tools, tool_choice = _tools(request)
    if tools:
        body["tools"] = tools
    if tool_choice:
        body["tool_choice"] = tool_choice
    if request.extra:
        # Fields of Anthropic's own API Parley has no type for (``output_config``,
        # ``context_management``, ...): the params step let them through only for requests
        # that came in through /v1/messages.
        body.update(request.extra)
    if thinking is not None:
        body["thinking"] = thinking  # reasoning_effort as a budget: providers/thinking.py
    return body


def _cached(block: dict[str, Any], cache_control: CacheControl | None) -> dict[str, Any]:
    if cache_control is not None:
        block["cache_control"] = msgspec.to_builtins(cache_control)
    return block


def _text_blocks(content: str | list[TextPart]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [_cached({"type": "text", "text": p.text}, p.cache_control) for p in content]


def _system(request: ChatRequest) -> str | list[dict[str, Any]] | None:
    """System and developer messages as one string, or as blocks when any carries a cache
    breakpoint (so the breakpoint reaches Anthropic)."""
    hoisted = [m for m in request.messages if isinstance(m, SystemMessage | DeveloperMessage)]
    if any(
        isinstance(m.content, list) and any(p.cache_control for p in m.content) for m in hoisted
    ):
        return [block for m in hoisted for block in _text_blocks(m.content)]
    return convert.system_text(request.messages)


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if isinstance(message, UserMessage):
            role, blocks = "user", _user_blocks(message)
        elif isinstance(message, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(message, index)
        elif isinstance(message, ToolMessage):
            role = "user"
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            if isinstance(message.content, str):
                result["content"] = message.content
            else:
                result["content"] = _text_blocks(message.content)
            if message.is_error is not None:
                result["is_error"] = message.is_error
            blocks = [_cached(result, message.cache_control)]
        else:
            continue  # system/developer: hoisted
        convert.append_turn(turns, role, "content", blocks)
    return turns


def _user_blocks(message: UserMessage) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}]
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            blocks.append(_cached({"type": "text", "text": part.text}, part.cache_control))
        elif isinstance(part, ImagePart):
            inline = convert.split_data_url(part.image_url.url)
            if inline:
                source = {"type": "base64", "media_type": inline[0], "data": inline[1]}
            else:
                source = {"type": "url", "url": part.image_url.url}
            blocks.append(_cached({"type": "image", "source": source}, part.cache_control))
        elif isinstance(part, FilePart):
            blocks.append(_document(part))
    return blocks


def _document(part: FilePart) -> dict[str, Any]:
    file = part.file
    source: dict[str, Any]
    inline = convert.split_data_url(file.file_data) if file.file_data else None
    if inline and inline[0] == "text/plain":
        text = base64.b64decode(inline[1]).decode("utf-8", errors="replace")
        source = {"type": "text", "media_type": "text/plain", "data": text}
    elif inline:
        source = {"type": "base64", "media_type": inline[0], "data": inline[1]}
    elif file.url:
        source = {"type": "url", "url": file.url}
    elif file.file_id:
        source = {"type": "file", "file_id": file.file_id}
    else:
        raise InvalidRequest("a file part needs file_data, url or file_id", param="file")
    block: dict[str, Any] = {"type": "document", "source": source}
    title = part.title or file.filename
    if title:
        block["title"] = title
    if part.context:
        block["context"] = part.context
    return _cached(block, part.cache_control)


def _assistant_blocks(message: AssistantMessage, index: int) -> list[dict[str, Any]]:
    # Thinking first: with thinking on, Anthropic refuses an assistant turn whose tool use
    # is not preceded by the thinking block (and its signature) that produced it.
    blocks: list[dict[str, Any]] = [
        msgspec.to_builtins(block) for block in message.thinking_blocks or []
    ]
    if message.content is not None:
        blocks += _text_blocks(message.content)
    for call_index, call in enumerate(message.tool_calls or []):
        where = f"messages[{index}].tool_calls[{call_index}].function.arguments"
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": convert.parse_arguments(call.function.arguments, where),
            }
        )
    return blocks


def _tools(request: ChatRequest) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    tools = [
        _cached(
            {
                "name": tool.function.name,
                "description": tool.function.description or "",
                "input_schema": tool.function.parameters or {"type": "object", "properties": {}},
            },
            tool.cache_control,
        )
        for tool in request.tools or []
    ]
    choice: dict[str, Any] | None = None
    schema = convert.json_output_schema(request)
    if schema is not None:
        tools.append(
            {
                "name": JSON_TOOL,
                "description": "Respond with the final answer as JSON matching this schema.",
                "input_schema": schema,
            }
        )
        choice = {"type": "tool", "name": JSON_TOOL}
    elif isinstance(request.tool_choice, NamedToolChoice):
        choice = {"type": "tool", "name": request.tool_choice.function.name}
    elif request.tool_choice == "required":
        choice = {"type": "any"}
    elif request.tool_choice == "none":
        choice = {"type": "none"}
    elif request.tool_choice == "auto":
        choice = {"type": "auto"}
    if request.parallel_tool_calls is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return tools, choice


# --- response ------------------------------------------------------------------------------


def anthropic_usage(usage: dict[str, Any]) -> Usage:
    """Anthropic's counts in the canonical shape: its ``input_tokens`` leaves out cache
    reads and writes, so they are added to ``prompt_tokens`` and kept in the details."""
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + read + written
    completion = int(usage.get("output_tokens") or 0)
    details: dict[str, Any] | UnsetType = UNSET
    if "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage:
        details = {"cached_tokens": read, "cache_creation_tokens": written}
    return Usage(prompt, completion, prompt + completion, prompt_tokens_details=details)


def _thinking_block(block: dict[str, Any]) -> ThinkingBlock:
    if block["type"] == "redacted_thinking":
        return ThinkingBlock("redacted_thinking", data=str(block["data"]))
    return ThinkingBlock(
        "thinking", thinking=str(block["thinking"]), signature=str(block.get("signature", ""))
    )


def anthropic_to_parley_completion(data: dict[str, Any], *, json_mode: bool) -> ChatCompletion:
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = []
    for block in data["content"]:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_use":
            if json_mode and block["name"] == JSON_TOOL:
                texts.append(convert.dumps(block["input"]))
            else:
                calls.append(convert.tool_call(block["id"], block["name"], block["input"]))
        elif block["type"] in ("thinking", "redacted_thinking"):
            thinking.append(_thinking_block(block))
    reason = str(data.get("stop_reason"))
    finish = _FINISH.get(reason, convert.FINISH_STOP)
    if json_mode and not calls and finish == convert.FINISH_TOOLS:
        finish = convert.FINISH_STOP
    message = convert.answer(texts, calls)
    if thinking:
        message.thinking_blocks = thinking
        message.reasoning_content = "".join(b.thinking or "" for b in thinking)
    choice = Choice(0, message, finish)
    if reason == "stop_sequence":
        choice.stop_sequence = data.get("stop_sequence")
    return ChatCompletion(
        id=str(data["id"]),
        created=now(),
        model=str(data.get("model", "")),
        choices=[choice],
        usage=anthropic_usage(data.get("usage") or {}),
    )


class _StreamTranslator:
    """Anthropic's block-structured events, folded into OpenAI ``chat.completion.chunk``s.

    Thinking deltas become ``reasoning_content``, a thinking block's closing signature
    ``reasoning_signature``, a redacted block ``redacted_reasoning``; tool-use input
    pieces are passed on exactly as they came."""

    def __init__(self, upstream: StreamingResponse, *, json_mode: bool) -> None:
        self._upstream = upstream
        self._json_mode = json_mode
        self._id = ""
        self._model = ""
        self._created = now()
        self._tool_index: dict[int, int] = {}
        self._json_blocks: set[int] = set()
        self._input_usage: dict[str, Any] = {}
        self._output_tokens = 0
        self._finish: str | None = None
        self._stop_sequence: str | None = None

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        return convert.chunk(self._id, self._created, self._model, delta, finish)

    async def chunks(self) -> ChunkStream:
        deployment = self._upstream.deployment
        async for event in iter_sse(self._upstream.lines()):
            data = decode_json(event.data.encode(), deployment)
            if not isinstance(data, dict):
                raise UpstreamProtocolError(
                    f"upstream {deployment} sent a malformed event", deployment=deployment
                )
            kind = data.get("type", event.event)
            try:
                if kind == "message_stop":
                    usage = anthropic_usage(
                        {**self._input_usage, "output_tokens": self._output_tokens}
                    )
                    last = self._chunk(Delta(), self._finish or convert.FINISH_STOP)
                    if self._stop_sequence is not None:
                        last.choices[0].stop_sequence = self._stop_sequence
                    yield last
                    yield convert.chunk(self._id, self._created, self._model, None, usage=usage)
                    return
                if kind == "error":
                    error = data.get("error") or {}
                    error_type = str(error.get("type") or "api_error")
                    raise UpstreamStatusError(
                        529 if error_type == "overloaded_error" else 502,
                        f"upstream {deployment} failed mid-stream: {error.get('message')}",
                        deployment=deployment,
                        error_type=error_type,
                    )
                chunk = self._translate(kind, data)
            except (KeyError, TypeError, ValueError) as exc:
                raise UpstreamProtocolError(
                    f"upstream {deployment} sent a malformed {kind} event", deployment=deployment
                ) from exc
            if chunk is not None:
                yield chunk
        raise stream_ended_early(deployment)

    def _translate(self, kind: str, data: dict[str, Any]) -> ChatCompletionChunk | None:
        if kind == "message_start":
            message = data["message"]
            self._id, self._model = str(message["id"]), str(message.get("model", ""))
            self._input_usage = dict(message.get("usage") or {})
            self._output_tokens = int(self._input_usage.pop("output_tokens", 0) or 0)
            return self._chunk(Delta(role="assistant", content=""))
        if kind == "content_block_start":
            return self._block_start(data["content_block"], int(data["index"]))
        if kind == "content_block_delta":
            delta, index = data["delta"], int(data["index"])
            if delta["type"] == "text_delta":
                return self._chunk(Delta(content=str(delta["text"])))
            if delta["type"] == "input_json_delta":
                partial = str(delta["partial_json"])
                if index in self._json_blocks:
                    return self._chunk(Delta(content=partial))
                more = convert.tool_call_delta(self._tool_index[index], partial)
                return self._chunk(Delta(tool_calls=[more]))
            if delta["type"] == "thinking_delta":
                return self._chunk(Delta(reasoning_content=str(delta["thinking"])))
            if delta["type"] == "signature_delta":
                return self._chunk(Delta(reasoning_signature=str(delta["signature"])))
            return None  # citations and future delta types have no counterpart yet
        if kind == "message_delta":
            delta = data.get("delta") or {}
            reason = delta.get("stop_reason")
            if reason is not None:
                finish = _FINISH.get(str(reason), convert.FINISH_STOP)
                if finish == convert.FINISH_TOOLS and not self._tool_index:
                    finish = convert.FINISH_STOP  # only the JSON-mode tool was used
                self._finish = finish
                if reason == "stop_sequence" and delta.get("stop_sequence") is not None:
                    self._stop_sequence = str(delta["stop_sequence"])
            usage = data.get("usage") or {}
            for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                if usage.get(name) is not None:  # cumulative counts, when sent here
                    self._input_usage[name] = usage[name]
            if usage.get("output_tokens") is not None:
                self._output_tokens = int(usage["output_tokens"])
            return None
        return None  # ping, content_block_stop, unknown future events

    def _block_start(self, block: dict[str, Any], index: int) -> ChatCompletionChunk | None:
        kind = block["type"]
        if kind == "redacted_thinking":
            return self._chunk(Delta(redacted_reasoning=str(block["data"])))
        if kind == "thinking" and block.get("thinking"):
            return self._chunk(Delta(reasoning_content=str(block["thinking"])))
        if kind != "tool_use":
            return None
        if self._json_mode and block["name"] == JSON_TOOL:
            self._json_blocks.add(index)
            return None
        tool_index = len(self._tool_index)
        self._tool_index[index] = tool_index
        start = convert.tool_call_delta(
            tool_index, "", call_id=str(block["id"]), name=str(block["name"])
        )
        return self._chunk(Delta(tool_calls=[start]))
