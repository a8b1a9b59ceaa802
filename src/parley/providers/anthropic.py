"""Anthropic Messages API (``POST /v1/messages``), translated to and from OpenAI's shapes.

Notable translations: system messages are hoisted to ``system``; tool results become
``tool_result`` blocks inside a user turn; consecutive same-role turns are merged;
``max_tokens`` (required by Anthropic) defaults to ``DEFAULT_MAX_TOKENS``; JSON mode is
done with a forced tool whose input schema is the requested schema, and its input is
returned as the message text (Anthropic then guarantees schema-shaped output).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

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
from parley.schema.chat import (
    OPENAI_ONLY_PARAMS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ImagePart,
    NamedToolChoice,
    TextPart,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
    text_of,
)

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
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
    # safety_identifier is translated (metadata.user_id, as user is); top_k is Anthropic's.
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
    ) - {"safety_identifier"}
    forwards_extra: bool = False

    def __init__(self, deployment: Deployment, client: UpstreamClient) -> None:
        self.deployment = deployment
        self._client = client
        self._url = f"{deployment.api_base}/v1/messages"

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **self.deployment.extra_headers,
        }
        if self.deployment.api_key is not None:
            headers["x-api-key"] = self.deployment.api_key.reveal()
        return headers

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        body = to_anthropic(request, self.deployment.model, stream=False)
        data = check_response(
            await self._client.post(self._url, self._headers(), json_body(body)),
            self._client.deployment,
        )
        with unexpected(self._client.deployment, "an unexpected message"):
            return anthropic_to_parley_completion(data, json_mode=_json_mode(request))

    @contextlib.asynccontextmanager
    async def open_stream(self, request: ChatRequest) -> AsyncIterator[ChunkStream]:
        body = to_anthropic(request, self.deployment.model, stream=True)
        async with self._client.open_stream(self._url, self._headers(), json_body(body)) as up:
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
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.output_limit or DEFAULT_MAX_TOKENS,
        "messages": _messages(request),
    }
    if stream:
        body["stream"] = True
    system = convert.system_text(request.messages)
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
    return body


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if isinstance(message, UserMessage):
            role, blocks = "user", _user_blocks(message)
        elif isinstance(message, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(message, index)
        elif isinstance(message, ToolMessage):
            role = "user"
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": text_of(message.content),
                }
            ]
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
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            inline = convert.split_data_url(part.image_url.url)
            if inline:
                source = {"type": "base64", "media_type": inline[0], "data": inline[1]}
            else:
                source = {"type": "url", "url": part.image_url.url}
            blocks.append({"type": "image", "source": source})
    return blocks


def _assistant_blocks(message: AssistantMessage, index: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = text_of(message.content)
    if text:
        blocks.append({"type": "text", "text": text})
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
        {
            "name": tool.function.name,
            "description": tool.function.description or "",
            "input_schema": tool.function.parameters or {"type": "object", "properties": {}},
        }
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


def _usage(usage: dict[str, Any]) -> Usage:
    prompt = (
        int(usage.get("input_tokens") or 0)
        + int(usage.get("cache_creation_input_tokens") or 0)
        + int(usage.get("cache_read_input_tokens") or 0)
    )
    completion = int(usage.get("output_tokens") or 0)
    return Usage(prompt, completion, prompt + completion)


def anthropic_to_parley_completion(data: dict[str, Any], *, json_mode: bool) -> ChatCompletion:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in data["content"]:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_use":
            if json_mode and block["name"] == JSON_TOOL:
                texts.append(convert.dumps(block["input"]))
            else:
                calls.append(convert.tool_call(block["id"], block["name"], block["input"]))
    finish = _FINISH.get(str(data.get("stop_reason")), convert.FINISH_STOP)
    if json_mode and not calls and finish == convert.FINISH_TOOLS:
        finish = convert.FINISH_STOP
    message = convert.answer(texts, calls)
    return ChatCompletion(
        id=str(data["id"]),
        created=now(),
        model=str(data.get("model", "")),
        choices=[Choice(0, message, finish)],
        usage=_usage(data.get("usage") or {}),
    )


class _StreamTranslator:
    """Anthropic's block-structured events, folded into OpenAI ``chat.completion.chunk``s."""

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
                    usage = _usage({**self._input_usage, "output_tokens": self._output_tokens})
                    yield self._chunk(Delta(), self._finish or convert.FINISH_STOP)
                    yield convert.chunk(self._id, self._created, self._model, None, usage=usage)
                    return
                if kind == "error":
                    error = data.get("error") or {}
                    raise UpstreamStatusError(
                        502,
                        f"upstream {deployment} failed mid-stream: {error.get('message')}",
                        deployment=deployment,
                        error_type=str(error.get("type") or "api_error"),
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
            block, index = data["content_block"], int(data["index"])
            if block["type"] != "tool_use":
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
            return None  # thinking / signature deltas have no OpenAI counterpart
        if kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason is not None:
                finish = _FINISH.get(str(reason), convert.FINISH_STOP)
                if finish == convert.FINISH_TOOLS and not self._tool_index:
                    finish = convert.FINISH_STOP  # only the JSON-mode tool was used
                self._finish = finish
            usage = data.get("usage") or {}
            if usage.get("output_tokens") is not None:
                self._output_tokens = int(usage["output_tokens"])
            return None
        return None  # ping, content_block_stop, unknown future events
