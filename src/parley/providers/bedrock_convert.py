"""Bedrock Converse wire format <-> Parley's types: the request body (``cachePoint`` blocks
for breakpoints, ``reasoningContent`` for earlier thinking, Claude's ``thinking`` in
``additionalModelRequestFields``, ``document`` blocks built by ``bedrock_documents.py``,
a failed tool result's ``status: "error"``), the answer (thinking blocks with their signatures),
usage (cache reads and writes), ``stopReason`` and AWS error answers. Shared by the
provider (``bedrock.py``) and its stream translator (``bedrock_stream.py``); see
``bedrock.py`` for what is translated how.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from parley.errors import InvalidRequest, UpstreamStatusError
from parley.observability.redact import redactor
from parley.providers import convert
from parley.providers.base import new_completion_id, now
from parley.providers.bedrock_documents import DocumentNames, document_block
from parley.providers.thinking import claude_thinking
from parley.schema.chat import (
    AssistantMessage,
    CacheControl,
    ChatCompletion,
    ChatRequest,
    Choice,
    DeveloperMessage,
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
    system = _system(request)
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    thinking, cap = claude_thinking(request)
    if request.output_limit is not None:
        inference["maxTokens"] = request.output_limit
    elif thinking is not None and thinking.get("budget_tokens"):
        inference["maxTokens"] = cap  # Claude's cap must exceed the budget
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
    if thinking is not None:
        # Bedrock hands this field to the model unread: Claude's own ``thinking`` object.
        body["additionalModelRequestFields"] = {"thinking": thinking}
    return body


def _cache_point(cache_control: CacheControl) -> dict[str, Any]:
    point: dict[str, Any] = {"type": "default"}
    if cache_control.ttl is not None:
        point["ttl"] = cache_control.ttl  # Bedrock takes "5m" and "1h", as Anthropic does
    return {"cachePoint": point}


def _mark(blocks: list[dict[str, Any]], cache_control: CacheControl | None) -> None:
    """A breakpoint as Converse spells it: a ``cachePoint`` block after the block that
    carried ``cache_control``. Bedrock refuses a cachePoint that opens a list, and one
    straight after another marks nothing new, so neither is sent."""
    if cache_control is not None and blocks and "cachePoint" not in blocks[-1]:
        blocks.append(_cache_point(cache_control))


def _text_blocks(content: str | list[TextPart]) -> list[dict[str, Any]]:
    """A message's text: one block, or a block per part when a part carries a breakpoint
    (so the cachePoint lands after that part). Empty text is left out: Bedrock refuses it."""
    if isinstance(content, str) or not any(p.cache_control for p in content):
        text = text_of(content)
        return [{"text": text}] if text else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.text:
            blocks.append({"text": part.text})
        _mark(blocks, part.cache_control)
    return blocks


def _system(request: ChatRequest) -> list[dict[str, Any]]:
    """System and developer messages, in order; a breakpoint is its own entry after the
    text it closes."""
    return [
        block
        for m in request.messages
        if isinstance(m, SystemMessage | DeveloperMessage)
        for block in _text_blocks(m.content)
    ]


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    names = DocumentNames()  # unique across the request, as Bedrock requires
    for index, message in enumerate(request.messages):
        if isinstance(message, UserMessage):
            role, blocks = "user", _user_blocks(message, index, names)
        elif isinstance(message, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(message, index)
        elif isinstance(message, ToolMessage):
            role, blocks = "user", _tool_result(message)
        else:
            continue  # system/developer: in ``system``
        convert.append_turn(turns, role, "content", blocks)
    return turns


def _tool_result(message: ToolMessage) -> list[dict[str, Any]]:
    """A ``toolResult`` block, ``status: "error"`` when the tool failed (Anthropic's
    ``is_error``; left out otherwise, as success is the default). Its content cannot hold a
    cachePoint, so a breakpoint on the message or on any of its text parts follows the
    whole result."""
    result: dict[str, Any] = {
        "toolUseId": message.tool_call_id,
        "content": [{"text": text_of(message.content)}],
    }
    if message.is_error:
        result["status"] = "error"
    blocks: list[dict[str, Any]] = [{"toolResult": result}]
    marks = [message.cache_control]
    if not isinstance(message.content, str):
        marks += [part.cache_control for part in message.content]
    _mark(blocks, next((mark for mark in marks if mark is not None), None))
    return blocks


def _user_blocks(message: UserMessage, index: int, names: DocumentNames) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}]
    blocks: list[dict[str, Any]] = []
    for part_index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            where = f"messages[{index}].content[{part_index}].image_url.url"
            blocks.append({"image": _image(part.image_url.url, where)})
        elif isinstance(part, FilePart):
            where = f"messages[{index}].content[{part_index}]"
            blocks.append({"document": document_block(part, names, where)})
        _mark(blocks, part.cache_control)
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


def _reasoning_blocks(message: AssistantMessage) -> list[dict[str, Any]]:
    """Earlier reasoning as ``reasoningContent``: signed text with its signature, redacted
    reasoning as the opaque base64 it came as. Unsigned text (another provider's thoughts)
    is left out: nothing upstream could verify it, and Claude refuses it."""
    blocks: list[dict[str, Any]] = []
    for block in message.thinking_blocks or []:
        if block.type == "redacted_thinking":
            if block.data:
                blocks.append({"reasoningContent": {"redactedContent": block.data}})
        elif block.signature:
            text = {"text": block.thinking or "", "signature": block.signature}
            blocks.append({"reasoningContent": {"reasoningText": text}})
    return blocks


def _assistant_blocks(message: AssistantMessage, index: int) -> list[dict[str, Any]]:
    # Reasoning first: with thinking on, Claude refuses a turn whose tool use is not
    # preceded by the signed reasoning that produced it.
    blocks = _reasoning_blocks(message)
    if message.content is not None:
        blocks += _text_blocks(message.content)
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
    tools: list[dict[str, Any]] = []
    for tool in request.tools or []:
        function = tool.function
        tools.append(_tool_spec(function.name, function.description, function.parameters))
        _mark(tools, tool.cache_control)
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


def thinking_block(reasoning: Mapping[str, Any]) -> ThinkingBlock | None:
    """A ``reasoningContent`` block as a canonical thinking block: ``reasoningText`` with
    its signature (empty when the model signs none), or ``redactedContent``, kept as the
    base64 text it arrived as so it goes back byte for byte."""
    if "redactedContent" in reasoning:
        return ThinkingBlock("redacted_thinking", data=str(reasoning["redactedContent"]))
    text = reasoning.get("reasoningText")
    if not isinstance(text, Mapping):
        return None  # a member newer than this adapter
    return ThinkingBlock(
        "thinking", thinking=str(text.get("text") or ""), signature=str(text.get("signature") or "")
    )


def bedrock_to_parley_completion(
    data: dict[str, Any], model: str, *, json_mode: bool
) -> ChatCompletion:
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = []
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
            found = thinking_block(block["reasoningContent"])
            if found is not None:
                thinking.append(found)
    message = convert.answer(texts, calls)
    if thinking:
        message.thinking_blocks = thinking
        reasoning = "".join(b.thinking or "" for b in thinking)
        if reasoning:
            message.reasoning_content = reasoning
    return ChatCompletion(
        id=new_completion_id(),
        created=now(),
        model=model,
        choices=[Choice(0, message, finish_reason(data.get("stopReason"), has_calls=bool(calls)))],
        usage=usage_from(data.get("usage") or {}),
    )
