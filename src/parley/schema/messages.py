"""Anthropic's Messages API request (``POST /v1/messages``), as Parley validates it.

msgspec Structs like ``schema/chat.py``'s, for the same reason: one typed decode checks the
whole body. Blocks are tagged unions on ``type`` (a wrong or missing type is a 400 naming
the path); top-level fields Anthropic does not document are refused, as Anthropic does
("Extra inputs are not permitted"). ``api/messages_in.py`` turns these into Parley's
canonical ``ChatRequest``; ``api/messages_out.py`` renders answers in Anthropic's shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from parley.schema.chat import CacheControl, ThinkingConfig


class Base64Source(Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class URLSource(Struct, tag="url", tag_field="type"):
    url: str


class PlainTextSource(Struct, tag="text", tag_field="type"):
    data: str
    media_type: str = "text/plain"


class FileSource(Struct, tag="file", tag_field="type"):
    file_id: str


class TextBlock(Struct, tag="text", tag_field="type", omit_defaults=True):
    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None


class ImageBlock(Struct, tag="image", tag_field="type", omit_defaults=True):
    source: Base64Source | URLSource | FileSource
    cache_control: CacheControl | None = None


class DocumentBlock(Struct, tag="document", tag_field="type", omit_defaults=True):
    source: Base64Source | URLSource | PlainTextSource | FileSource
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(Struct, tag="tool_use", tag_field="type", omit_defaults=True):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolResultBlock(Struct, tag="tool_result", tag_field="type", omit_defaults=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlockIn(Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class RedactedThinkingBlock(Struct, tag="redacted_thinking", tag_field="type"):
    data: str


Block = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlockIn
    | RedactedThinkingBlock
)


class MessageParam(Struct):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolParam(Struct, omit_defaults=True):
    """A client tool. Anthropic's server tools (``web_search_20250305``, ``bash_...``) carry
    a ``type`` and no ``input_schema``; they are refused (``api/messages_in.py``)."""

    name: Annotated[str, Meta(min_length=1, max_length=128)]
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None
    cache_control: CacheControl | None = None


class ToolChoiceAuto(Struct, tag="auto", tag_field="type", omit_defaults=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Struct, tag="any", tag_field="type", omit_defaults=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Struct, tag="tool", tag_field="type", omit_defaults=True):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Struct, tag="none", tag_field="type"):
    pass


ToolChoiceParam = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class Metadata(Struct, omit_defaults=True):
    user_id: str | None = None


class MessagesRequest(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """A ``POST /v1/messages`` body: the fields Parley translates (others: ``extra``)."""

    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: Annotated[list[MessageParam], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    metadata: Metadata | None = None
    thinking: ThinkingConfig | None = None
    service_tier: str | None = None
    """Accepted (Anthropic's ``auto`` / ``standard_only``); Parley picks the deployment."""


class CountTokensRequest(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """A ``POST /v1/messages/count_tokens`` body: a Messages request without the output
    controls."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[MessageParam], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingConfig | None = None


_messages_decoder = msgspec.json.Decoder(MessagesRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)


MESSAGES_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(MessagesRequest))
_UNKNOWN_TOP_LEVEL = "Object contains unknown field `"


def decode_messages_request(body: bytes) -> tuple[MessagesRequest, dict[str, Any] | None]:
    """The typed request, and the top-level fields Parley has no type for (Anthropic adds
    fields faster than any gateway: ``output_config``, ``context_management``, ...). Those
    go on to Anthropic upstreams as sent; elsewhere ``drop_params`` decides, as for Chat
    Completions' unknown fields. One typed decode for the usual body, as there."""
    try:
        return _messages_decoder.decode(body), None
    except msgspec.ValidationError as exc:
        text = str(exc)
        if not text.startswith(_UNKNOWN_TOP_LEVEL) or " - at `" in text:
            raise
    data = msgspec.json.decode(body)
    assert isinstance(data, dict)  # the typed decode got as far as an object's field
    extra = {name: data.pop(name) for name in list(data) if name not in MESSAGES_FIELDS}
    return msgspec.convert(data, MessagesRequest), extra


def decode_count_tokens_request(body: bytes) -> CountTokensRequest:
    return _count_decoder.decode(body)
