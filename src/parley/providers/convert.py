"""Translation helpers shared by the non-OpenAI adapters (Anthropic, Gemini)."""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import msgspec

from parley.errors import InvalidRequest
from parley.schema.chat import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatRequest,
    ChunkChoice,
    Delta,
    DeveloperMessage,
    FunctionCall,
    FunctionDelta,
    JSONObjectFormat,
    JSONSchemaFormat,
    Message,
    ResponseMessage,
    SystemMessage,
    ToolCall,
    ToolCallDelta,
    ToolMessage,
    Usage,
    text_of,
)

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.+)$", re.DOTALL)

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_TOOLS = "tool_calls"
FINISH_FILTER = "content_filter"


def split_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,...`` -> (mime type, base64 data); None for other URLs."""
    match = _DATA_URL.match(url)
    return (match["mime"], match["data"]) if match else None


def guess_mime(url: str) -> str:
    return mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"


def parse_arguments(arguments: str, where: str) -> Any:
    """Tool-call arguments arrive as a JSON string; other providers want the object."""
    if not arguments.strip():
        return {}
    try:
        return msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        raise InvalidRequest("tool call arguments must be a JSON object", param=where) from None


def system_text(messages: list[Message]) -> str | None:
    """System and developer messages, hoisted (both providers take them out of band)."""
    texts = [
        text_of(m.content) for m in messages if isinstance(m, SystemMessage | DeveloperMessage)
    ]
    return "\n\n".join(t for t in texts if t) or None


def tool_names_by_id(messages: list[Message]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, AssistantMessage) and message.tool_calls:
            for call in message.tool_calls:
                names[call.id] = call.function.name
    return names


def tool_result_payload(message: ToolMessage) -> Any:
    """A tool result as structured data when it is JSON, else as text."""
    text = text_of(message.content)
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    return value


def json_output_schema(request: ChatRequest) -> dict[str, Any] | None:
    """The schema a JSON-mode request asks for; ``{"type": "object"}`` for json_object."""
    fmt = request.response_format
    if isinstance(fmt, JSONSchemaFormat):
        return fmt.json_schema.schema or {"type": "object"}
    if isinstance(fmt, JSONObjectFormat):
        return {"type": "object"}
    return None


def dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def append_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[Any]) -> None:
    """Add a turn, merging into the previous one when the role repeats (Anthropic and Gemini
    both want one turn per speaker change: consecutive tool results become one user turn)."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


# --- building Parley's answers from a provider's --------------------------------------


def tool_call(call_id: str, name: str, arguments: Any) -> ToolCall:
    """A whole tool call; ``arguments`` is the provider's parsed object, sent on as JSON text."""
    return ToolCall(call_id, FunctionCall(name, dumps(arguments)))


def answer(texts: list[str], calls: list[ToolCall]) -> ResponseMessage:
    """A completion's message: its text (None when the model only called tools) and calls."""
    return ResponseMessage(
        content="".join(texts) if texts or not calls else None, tool_calls=calls or None
    )


def tool_call_delta(
    index: int, arguments: str, *, call_id: str | None = None, name: str | None = None
) -> ToolCallDelta:
    """A streamed piece of a tool call: its start (with ``call_id`` and ``name``) or more of
    its arguments."""
    return ToolCallDelta(
        index,
        id=call_id,
        type="function" if call_id is not None else None,
        function=FunctionDelta(name=name, arguments=arguments),
    )


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: Delta | None,
    finish: str | None = None,
    *,
    index: int = 0,
    usage: Usage | None = None,
) -> ChatCompletionChunk:
    """One stream chunk; ``delta=None`` is the usage-only chunk that ends a stream."""
    choices = [] if delta is None else [ChunkChoice(index, delta, finish)]
    return ChatCompletionChunk(completion_id, created, model, choices, usage=usage)
