"""Google Gemini API (``generateContent``, ``streamGenerateContent?alt=sse``,
``batchEmbedContents``), translated to and from OpenAI's shapes.

Roles become ``user``/``model``; system messages go to ``systemInstruction``; tool calls are
``functionCall`` parts and tool results ``functionResponse`` parts, which Gemini matches by
function *name*, so the name is looked up from the assistant turn that made the call.
Gemini's stream has no end sentinel: a stream is complete once a ``finishReason`` arrived.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from parley.config.loader import Deployment
from parley.errors import InvalidRequest, UpstreamProtocolError
from parley.providers import convert
from parley.providers.base import (
    ChunkStream,
    check_response,
    check_stream,
    decode_json,
    json_body,
    new_completion_id,
    now,
    raise_for_status,
    stream_ended_early,
    unexpected,
)
from parley.providers.http import StreamingResponse, UpstreamClient
from parley.providers.sse import iter_sse
from parley.schema.chat import (
    OPENAI_ONLY_PARAMS,
    AssistantMessage,
    ChatCompletion,
    ChatRequest,
    Choice,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    FilePart,
    ImagePart,
    NamedToolChoice,
    ResponseMessage,
    TextPart,
    ThinkingConfig,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
    text_of,
)

_FINISH = {
    "STOP": convert.FINISH_STOP,
    "MAX_TOKENS": convert.FINISH_LENGTH,
    "SAFETY": convert.FINISH_FILTER,
    "RECITATION": convert.FINISH_FILTER,
    "BLOCKLIST": convert.FINISH_FILTER,
    "PROHIBITED_CONTENT": convert.FINISH_FILTER,
    "SPII": convert.FINISH_FILTER,
    "IMAGE_SAFETY": convert.FINISH_FILTER,
}
# JSON-Schema keywords Gemini's OpenAPI-subset ``parameters`` rejects.
_UNSUPPORTED_SCHEMA_KEYS = frozenset({"additionalProperties", "$schema", "strict", "$id"})


class GeminiProvider:
    unsupported_params: frozenset[str] = (
        frozenset({"logprobs", "top_logprobs", "logit_bias", "parallel_tool_calls"})
        | OPENAI_ONLY_PARAMS
    )
    forwards_extra: bool = False
    native_protocol: str | None = None

    def __init__(self, deployment: Deployment, client: UpstreamClient) -> None:
        self.deployment = deployment
        self._client = client
        model = deployment.model.removeprefix("models/")
        self._model_path = f"{deployment.api_base}/v1beta/models/{quote(model, safe='.-_')}"
        self._model_name = f"models/{model}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.deployment.extra_headers}
        if self.deployment.api_key is not None:
            headers["x-goog-api-key"] = self.deployment.api_key.reveal()
        return headers

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        resp = await self._client.post(
            f"{self._model_path}:generateContent", self._headers(), json_body(to_gemini(request))
        )
        data = check_response(resp, self._client.deployment)
        with unexpected(self._client.deployment, "an unexpected response"):
            return gemini_to_parley_completion(data, self.deployment.model)

    @contextlib.asynccontextmanager
    async def open_stream(self, request: ChatRequest) -> AsyncIterator[ChunkStream]:
        url = f"{self._model_path}:streamGenerateContent?alt=sse"
        async with self._client.open_stream(
            url, self._headers(), json_body(to_gemini(request))
        ) as up:
            await check_stream(up)
            yield _stream(up, self.deployment.model)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        try:
            texts = request.texts()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="input") from None
        requests: list[dict[str, Any]] = []
        for text in texts:
            item: dict[str, Any] = {
                "model": self._model_name,
                "content": {"parts": [{"text": text}]},
            }
            if request.dimensions is not None:
                item["outputDimensionality"] = request.dimensions
            requests.append(item)
        resp = await self._client.post(
            f"{self._model_path}:batchEmbedContents",
            self._headers(),
            json_body({"requests": requests}),
        )
        data = check_response(resp, self._client.deployment)
        with unexpected(self._client.deployment, "unexpected embeddings"):
            vectors = [list(map(float, e["values"])) for e in data["embeddings"]]
        return EmbeddingResult(vectors, self.deployment.model, None)


# --- request -------------------------------------------------------------------------------


def to_gemini(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents(request)}
    system = convert.system_text(request.messages)
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    _declaration(
                        tool.function.name, tool.function.description, tool.function.parameters
                    )
                    for tool in request.tools
                ]
            }
        ]
    tool_config = _tool_config(request)
    if tool_config:
        body["toolConfig"] = tool_config
    return body


def _contents(request: ChatRequest) -> list[dict[str, Any]]:
    names = convert.tool_names_by_id(request.messages)
    contents: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if isinstance(message, UserMessage):
            role, parts = "user", _user_parts(message)
        elif isinstance(message, AssistantMessage):
            role, parts = "model", _model_parts(message, index)
        elif isinstance(message, ToolMessage):
            name = names.get(message.tool_call_id)
            if name is None:
                raise InvalidRequest(
                    f"tool result for unknown tool call {message.tool_call_id!r}",
                    param=f"messages[{index}].tool_call_id",
                )
            result = convert.tool_result_payload(message)
            response = result if isinstance(result, dict) else {"result": result}
            role = "user"
            parts = [
                {
                    "functionResponse": {
                        "id": message.tool_call_id,
                        "name": name,
                        "response": response,
                    }
                }
            ]
        else:
            continue
        convert.append_turn(contents, role, "parts", parts)
    return contents


def _user_parts(message: UserMessage) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}]
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            inline = convert.split_data_url(part.image_url.url)
            if inline:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                url = part.image_url.url
                parts.append({"fileData": {"mimeType": convert.guess_mime(url), "fileUri": url}})
        elif isinstance(part, FilePart):
            parts.append(_file_part(part))
    return parts


def _file_part(part: FilePart) -> dict[str, Any]:
    """A document: inline data as ``inlineData``, a URL as ``fileData``; Gemini cannot
    read another provider's file ids."""
    file = part.file
    inline = convert.split_data_url(file.file_data) if file.file_data else None
    if inline:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if file.url:
        return {"fileData": {"mimeType": convert.guess_mime(file.url), "fileUri": file.url}}
    raise InvalidRequest("Gemini cannot read a document by file id; send it inline", param="file")


def _model_parts(message: AssistantMessage, index: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = text_of(message.content)
    if text:
        parts.append({"text": text})
    for call_index, call in enumerate(message.tool_calls or []):
        where = f"messages[{index}].tool_calls[{call_index}].function.arguments"
        parts.append(
            {
                "functionCall": {
                    "id": call.id,
                    "name": call.function.name,
                    "args": convert.parse_arguments(call.function.arguments, where),
                }
            }
        )
    return parts


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    pairs = (
        ("temperature", request.temperature),
        ("topP", request.top_p),
        ("topK", request.top_k),
        ("maxOutputTokens", request.output_limit),
        ("candidateCount", request.n),
        ("seed", request.seed),
        ("presencePenalty", request.presence_penalty),
        ("frequencyPenalty", request.frequency_penalty),
    )
    config.update({key: value for key, value in pairs if value is not None})
    if request.stop_list:
        config["stopSequences"] = request.stop_list
    if request.thinking is not None:
        config["thinkingConfig"] = _thinking_config(request.thinking)
    schema = convert.json_output_schema(request)
    if schema is not None:
        config["responseMimeType"] = "application/json"
        if schema != {"type": "object"}:
            config["responseJsonSchema"] = schema
    return config


def _thinking_config(thinking: ThinkingConfig) -> dict[str, Any]:
    """Anthropic's ``thinking`` as Gemini's: the budget as ``thinkingBudget`` (``-1``, the
    model's own choice, for ``adaptive``; ``0``, off, for ``disabled``), thoughts asked
    for so they come back as reasoning."""
    if thinking.type == "disabled":
        return {"thinkingBudget": 0}
    budget = -1 if thinking.type == "adaptive" else (thinking.budget_tokens or 1024)
    return {"thinkingBudget": budget, "includeThoughts": True}


def _declaration(name: str, description: str | None, parameters: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": name}
    if description:
        declaration["description"] = description
    if parameters and parameters.get("properties"):
        declaration["parameters"] = _clean_schema(parameters)
    return declaration


def _clean_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _clean_schema(v) for k, v in schema.items() if k not in _UNSUPPORTED_SCHEMA_KEYS}
    if isinstance(schema, list):
        return [_clean_schema(item) for item in schema]
    return schema


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None or not request.tools:
        return None
    if isinstance(choice, NamedToolChoice):
        return {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
        }
    mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]
    return {"functionCallingConfig": {"mode": mode}}


# --- response ------------------------------------------------------------------------------


def _usage(metadata: dict[str, Any] | None) -> Usage | None:
    """Gemini's counts: ``promptTokenCount`` includes ``cachedContentTokenCount`` (kept as
    ``cached_tokens``); thoughts count as completion tokens and as ``reasoning_tokens``."""
    if not metadata:
        return None
    prompt = int(metadata.get("promptTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    completion = int(metadata.get("candidatesTokenCount") or 0) + thoughts
    usage = Usage(prompt, completion, int(metadata.get("totalTokenCount") or prompt + completion))
    if "cachedContentTokenCount" in metadata:
        usage.prompt_tokens_details = {
            "cached_tokens": int(metadata.get("cachedContentTokenCount") or 0)
        }
    if "thoughtsTokenCount" in metadata:
        usage.completion_tokens_details = {"reasoning_tokens": thoughts}
    return usage


def _call_id(call: dict[str, Any]) -> str:
    return str(call.get("id") or "call_" + uuid.uuid4().hex[:24])


def _finish(reason: Any, has_calls: bool) -> str:
    finish = _FINISH.get(str(reason), convert.FINISH_STOP)
    return convert.FINISH_TOOLS if has_calls and finish == convert.FINISH_STOP else finish


def _read_parts(candidate: dict[str, Any]) -> tuple[list[str], list[ToolCall], list[str]]:
    """A candidate's visible text, its function calls, as OpenAI's, and its thoughts
    (``thought: true`` parts, sent when ``includeThoughts`` was asked for)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    thoughts: list[str] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "text" in part and part.get("thought"):
            thoughts.append(str(part["text"]))
        elif "text" in part:
            texts.append(str(part["text"]))
        elif "functionCall" in part:
            call = part["functionCall"]
            calls.append(
                convert.tool_call(_call_id(call), str(call["name"]), call.get("args") or {})
            )
    return texts, calls, thoughts


def gemini_to_parley_completion(data: dict[str, Any], model: str) -> ChatCompletion:
    choices: list[Choice] = []
    for position, candidate in enumerate(data.get("candidates") or []):
        texts, calls, thoughts = _read_parts(candidate)
        message = convert.answer(texts, calls)
        if thoughts:
            message.reasoning_content = "".join(thoughts)
        index = int(candidate.get("index", position))
        choices.append(Choice(index, message, _finish(candidate.get("finishReason"), bool(calls))))
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices.append(Choice(0, ResponseMessage(content=""), convert.FINISH_FILTER))
    return ChatCompletion(
        id=str(data.get("responseId") or new_completion_id()),
        created=now(),
        model=str(data.get("modelVersion") or model),
        choices=choices,
        usage=_usage(data.get("usageMetadata")),
    )


async def _stream(upstream: StreamingResponse, model: str) -> ChunkStream:
    deployment = upstream.deployment
    completion_id, created = new_completion_id(), now()
    started: set[int] = set()
    tool_counts: dict[int, int] = {}
    finished: set[int] = set()
    usage: Usage | None = None
    async for event in iter_sse(upstream.lines()):
        data = decode_json(event.data.encode(), deployment)
        if not isinstance(data, dict):
            raise UpstreamProtocolError(
                f"upstream {deployment} sent a malformed event", deployment=deployment
            )
        if isinstance(data.get("error"), dict):
            raise_for_status(502, upstream.headers, event.data.encode(), deployment)
        try:
            usage = _usage(data.get("usageMetadata")) or usage
            model = str(data.get("modelVersion") or model)
            candidates = data.get("candidates") or []
            if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
                finished.add(0)
                yield convert.chunk(
                    completion_id,
                    created,
                    model,
                    Delta(role="assistant", content=""),
                    convert.FINISH_FILTER,
                )
            for position, candidate in enumerate(candidates):
                index = int(candidate.get("index", position))
                delta = Delta(role=None if index in started else "assistant")
                started.add(index)
                texts, whole_calls, thoughts = _read_parts(candidate)
                first = tool_counts.get(index, 0)
                tool_counts[index] = first + len(whole_calls)
                # Gemini streams each function call whole, so one delta carries all of it.
                calls = [
                    convert.tool_call_delta(
                        first + n, call.function.arguments, call_id=call.id, name=call.function.name
                    )
                    for n, call in enumerate(whole_calls)
                ]
                delta.content = "".join(texts) if texts else (None if calls or thoughts else "")
                delta.tool_calls = calls or None
                delta.reasoning_content = "".join(thoughts) if thoughts else None
                finish = None
                if candidate.get("finishReason"):
                    finish = _finish(candidate["finishReason"], tool_counts.get(index, 0) > 0)
                    finished.add(index)
                yield convert.chunk(completion_id, created, model, delta, finish, index=index)
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamProtocolError(
                f"upstream {deployment} sent a malformed chunk", deployment=deployment
            ) from exc
    if not finished or not started <= finished:
        raise stream_ended_early(deployment)
    if usage is not None:
        yield convert.chunk(completion_id, created, model, None, usage=usage)
