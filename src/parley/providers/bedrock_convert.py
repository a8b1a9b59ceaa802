"""Bedrock Converse wire format <-> Parley's types: the request body, the answer, usage,
``stopReason`` and AWS error answers. Shared by the provider (``bedrock.py``) and its stream
translator (``bedrock_stream.py``); see ``bedrock.py`` for what is translated how.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from parley.errors import InvalidRequest, UpstreamStatusError
from parley.observability.redact import redactor
from parley.providers import convert
from parley.providers.base import new_completion_id, now
from parley.schema.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatRequest,
    Choice,
    DeveloperMessage,
    ImagePart,
    NamedToolChoice,
    ResponseMessage,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
    text_of,
)

JSON_TOOL = "json_response"

FINISH = {
    "end_turn": convert.FINISH_STOP,
    "stop_sequence": convert.FINISH_STOP,
    "max_tokens": convert.FINISH_LENGTH,
    "model_context_window_exceeded": convert.FINISH_LENGTH,
    "tool_use": convert.FINISH_TOOLS,
    "guardrail_intervened": convert.FINISH_FILTER,
    "content_filtered": convert.FINISH_FILTER,
}
"""``stopReason`` -> ``finish_reason``; anything else (``malformed_model_output``,
``malformed_tool_use``, a future value) is ``stop``."""

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_OPEN_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def json_mode(request: ChatRequest) -> bool:
    """Whether the answer is to be JSON (done with the forced ``JSON_TOOL``)."""
    return convert.json_output_schema(request) is not None


# --- errors --------------------------------------------------------------------------------

# AWS error names whose HTTP status says less than the name: a model that failed (424) is
# the upstream's failure, retried elsewhere like a 5xx.
_STATUS_FOR = {"ModelErrorException": 502, "modelStreamErrorException": 502}


def error_name(headers: Mapping[str, str], data: Any) -> str | None:
    """The AWS error type: ``x-amzn-ErrorType`` (``ThrottlingException:http://...``), else
    the body's ``__type`` (``com.amazon.coral.service#ThrottlingException``) or ``code``."""
    raw = headers.get("x-amzn-ErrorType")
    if raw is None and isinstance(data, dict):
        raw = data.get("__type") or data.get("code")
    if not isinstance(raw, str) or not raw:
        return None
    return raw.split(":", 1)[0].rsplit("#", 1)[-1] or None


def raise_for_bedrock_status(
    status: int, headers: Mapping[str, str], body: bytes, deployment: str
) -> None:
    """An AWS error answer as ``UpstreamStatusError``: its status (424 model failures as
    502), its message, the AWS error name as ``code``, ``Retry-After`` kept if sent."""
    if status < 400:
        return
    try:
        data: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    name = error_name(headers, data)
    message = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("Message")
    if not isinstance(message, str) or not message:
        message = body.decode("utf-8", errors="replace").strip()[:500] or "(empty body)"
    raise UpstreamStatusError(
        _STATUS_FOR.get(name or "", status),
        f"upstream {deployment} returned {status}"
        f"{f' {name}' if name else ''}: {redactor.scrub(message)}",
        deployment=deployment,
        code=name,
        retry_after=headers.get("Retry-After"),
    )


# --- request -------------------------------------------------------------------------------


def to_converse(request: ChatRequest) -> dict[str, Any]:
    """The Converse (and ConverseStream) request body; the model id goes in the URL."""
    body: dict[str, Any] = {"messages": _messages(request)}
    system = [
        {"text": text}
        for m in request.messages
        if isinstance(m, SystemMessage | DeveloperMessage) and (text := text_of(m.content))
    ]
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    if request.output_limit is not None:
        inference["maxTokens"] = request.output_limit
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop_list:
        inference["stopSequences"] = request.stop_list
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    return body


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if isinstance(message, UserMessage):
            role, blocks = "user", _user_blocks(message, index)
        elif isinstance(message, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(message, index)
        elif isinstance(message, ToolMessage):
            role = "user"
            result = {
                "toolUseId": message.tool_call_id,
                "content": [{"text": text_of(message.content)}],
            }
            blocks = [{"toolResult": result}]
        else:
            continue  # system/developer: in ``system``
        convert.append_turn(turns, role, "content", blocks)
    return turns


def _user_blocks(message: UserMessage, index: int) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}]
    blocks: list[dict[str, Any]] = []
    for part_index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            where = f"messages[{index}].content[{part_index}].image_url.url"
            blocks.append({"image": _image(part.image_url.url, where)})
    return blocks


def _image(url: str, where: str) -> dict[str, Any]:
    inline = convert.split_data_url(url)
    if inline is not None:
        mime, data = inline
        source: dict[str, Any] = {"bytes": data}  # blobs travel base64-encoded in JSON
    elif url.startswith("s3://"):
        mime, source = convert.guess_mime(url), {"s3Location": {"uri": url}}
    else:
        raise InvalidRequest(
            "Bedrock takes images as base64 data: URLs or s3:// locations; "
            "Parley does not fetch image URLs for it",
            param=where,
        )
    image_format = _IMAGE_FORMATS.get(mime.lower())
    if image_format is None:
        raise InvalidRequest(
            f"Bedrock takes png, jpeg, gif or webp images, not {mime}", param=where
        )
    return {"format": image_format, "source": source}


def _assistant_blocks(message: AssistantMessage, index: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = text_of(message.content)
    if text:
        blocks.append({"text": text})
    for call_index, call in enumerate(message.tool_calls or []):
        where = f"messages[{index}].tool_calls[{call_index}].function.arguments"
        use = {
            "toolUseId": call.id,
            "name": call.function.name,
            "input": convert.parse_arguments(call.function.arguments, where),
        }
        blocks.append({"toolUse": use})
    return blocks


def _tool_spec(name: str, description: str | None, schema: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": schema or _OPEN_SCHEMA}}
    if description:  # Bedrock refuses an empty description
        spec["description"] = description
    return {"toolSpec": spec}


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    tools = [
        _tool_spec(t.function.name, t.function.description, t.function.parameters)
        for t in request.tools or []
    ]
    schema = convert.json_output_schema(request)
    has_tool_turns = any(
        isinstance(m, ToolMessage) or (isinstance(m, AssistantMessage) and m.tool_calls)
        for m in request.messages
    )
    if schema is not None:
        tools.append(
            _tool_spec(
                JSON_TOOL, "Respond with the final answer as JSON matching this schema.", schema
            )
        )
        return {"tools": tools, "toolChoice": {"tool": {"name": JSON_TOOL}}}
    if not tools and has_tool_turns:
        used = dict.fromkeys(convert.tool_names_by_id(request.messages).values())
        tools = [_tool_spec(name, None, None) for name in used]
    if not tools or (request.tool_choice == "none" and not has_tool_turns):
        return None
    config: dict[str, Any] = {"tools": tools}
    if isinstance(request.tool_choice, NamedToolChoice):
        config["toolChoice"] = {"tool": {"name": request.tool_choice.function.name}}
    elif request.tool_choice == "required":
        config["toolChoice"] = {"any": {}}
    elif request.tool_choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


# --- response ------------------------------------------------------------------------------


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """Bedrock counts ``inputTokens`` apart from the tokens read from and written to the
    prompt cache; OpenAI's ``prompt_tokens`` holds all three, the reads also as
    ``prompt_tokens_details.cached_tokens``, the writes as ``cache_creation_tokens`` (as
    Anthropic's decoder reports them), so each is priced at its own rate."""
    read = int(usage.get("cacheReadInputTokens") or 0)
    written = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + read + written
    completion = int(usage.get("outputTokens") or 0)
    if read or written:
        details = {"cached_tokens": read, "cache_creation_tokens": written}
        return Usage(prompt, completion, prompt + completion, details)
    return Usage(prompt, completion, prompt + completion)


def finish_reason(stop_reason: Any, *, has_calls: bool) -> str:
    finish = FINISH.get(str(stop_reason), convert.FINISH_STOP)
    if finish == convert.FINISH_TOOLS and not has_calls:
        return convert.FINISH_STOP  # only the JSON-mode tool was used
    return finish


def bedrock_to_parley_completion(
    data: dict[str, Any], model: str, *, json_mode: bool
) -> ChatCompletion:
    texts: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[str] = []
    for block in data["output"]["message"]["content"]:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            if json_mode and use["name"] == JSON_TOOL:
                texts.append(convert.dumps(use["input"]))
            else:
                calls.append(
                    convert.tool_call(str(use["toolUseId"]), str(use["name"]), use["input"])
                )
        elif "reasoningContent" in block:
            thought = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if thought:
                reasoning.append(str(thought))
    message = convert.answer(texts, calls)
    if reasoning:
        message = ResponseMessage(
            content=message.content,
            tool_calls=message.tool_calls,
            reasoning_content="".join(reasoning),
        )
    return ChatCompletion(
        id=new_completion_id(),
        created=now(),
        model=model,
        choices=[Choice(0, message, finish_reason(data.get("stopReason"), has_calls=bool(calls)))],
        usage=usage_from(data.get("usage") or {}),
    )
