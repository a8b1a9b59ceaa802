"""Parley's typed view of the OpenAI wire format.

These are msgspec Structs because they sit on the hot path: a request body is decoded and
validated in one pass (several times faster than a pydantic round trip), and responses are
encoded without building intermediate dicts. Provider adapters translate to and from these
types; nothing outside ``providers/`` sees a provider's own wire shape.

A field the wire requires is never a plain default on an ``omit_defaults`` struct: that
option leaves out every field equal to its default, which once sent ``tools`` without
``"type": "function"`` (the real API answers 400 "Missing required parameter"). Constant
discriminators (``type``, ``role``) are struct tags instead: msgspec always encodes a tag,
still accepts its absence when decoding a lone struct, and refuses a wrong value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

# --- request: content parts -------------------------------------------------------------


class CacheControl(Struct, omit_defaults=True):
    """Anthropic's prompt-caching breakpoint (``{"type": "ephemeral", "ttl": "5m"}``).

    Honoured by Anthropic upstreams, and by Bedrock as a ``cachePoint`` block after the
    block it marks; OpenAI-format and Gemini upstreams cache prompts on their own, so for
    them it is a hint with no meaning and is left out."""

    type: Literal["ephemeral"]
    ttl: str | None = None


class ImageURL(Struct, omit_defaults=True):
    url: str
    detail: str | None = None


class TextPart(Struct, tag="text", tag_field="type", omit_defaults=True):
    text: str
    cache_control: CacheControl | None = None


class ImagePart(Struct, tag="image_url", tag_field="type", omit_defaults=True):
    image_url: ImageURL
    cache_control: CacheControl | None = None


class FileData(Struct, omit_defaults=True):
    file_data: str | None = None
    """A ``data:`` URL (``data:application/pdf;base64,...``)."""
    file_id: str | None = None
    filename: str | None = None
    url: str | None = None
    """Not OpenAI's: a document by URL (Anthropic's ``url`` source), sent where taken."""


class FilePart(Struct, tag="file", tag_field="type", omit_defaults=True):
    """OpenAI's ``file`` content part; Anthropic's ``document`` block maps to it. Bedrock
    takes it as a ``document`` block. A document an upstream cannot take is refused with a
    400, never silently left out (Bedrock's are dropped instead with ``drop_params``)."""

    file: FileData
    cache_control: CacheControl | None = None
    title: str | None = None
    """An Anthropic document's title and context, kept for Anthropic upstreams."""
    context: str | None = None


ContentPart = TextPart | ImagePart | FilePart
TextContent = str | list[TextPart]


class FunctionCall(Struct):
    name: str
    arguments: str


class ToolCall(Struct, tag="function", tag_field="type"):
    """``{"id", "type": "function", "function"}``; ``type`` is the tag, always sent."""

    id: str
    function: FunctionCall


# --- request: messages (tagged by role) ---------------------------------------------------


class SystemMessage(Struct, tag="system", tag_field="role", omit_defaults=True):
    content: TextContent
    name: str | None = None


class DeveloperMessage(Struct, tag="developer", tag_field="role", omit_defaults=True):
    content: TextContent
    name: str | None = None


class UserMessage(Struct, tag="user", tag_field="role", omit_defaults=True):
    content: str | list[ContentPart]
    name: str | None = None


class ThinkingBlock(Struct, omit_defaults=True):
    """A model's reasoning as Anthropic returns it: the text and the signature that must
    come back unchanged in the next turn of a tool loop (``thinking``), or the encrypted
    form (``redacted_thinking``, its ``data``). LiteLLM spells these the same way."""

    type: Literal["thinking", "redacted_thinking"]
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class AssistantMessage(Struct, tag="assistant", tag_field="role", omit_defaults=True):
    content: TextContent | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    refusal: str | None = None
    thinking_blocks: list[ThinkingBlock] | None = None
    """Earlier reasoning, sent back to Anthropic upstreams and to Bedrock (as
    ``reasoningContent``; it must precede the turn's tool calls there); other upstreams
    cannot take it and it is left out."""


class ToolMessage(Struct, tag="tool", tag_field="role", omit_defaults=True):
    content: TextContent
    tool_call_id: str
    is_error: bool | None = None
    """Anthropic's ``tool_result.is_error``: sent to Anthropic, and to Bedrock as the
    ``toolResult``'s ``status: "error"``; left out elsewhere."""
    cache_control: CacheControl | None = None


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


# --- request: tools and formats -------------------------------------------------------------


class FunctionDef(Struct, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct, tag="function", tag_field="type", omit_defaults=True):
    """``{"type": "function", "function"}``: the tag keeps ``type`` on the wire."""

    function: FunctionDef
    cache_control: CacheControl | None = None


class ToolChoiceFunction(Struct):
    name: str


class NamedToolChoice(Struct, tag="function", tag_field="type"):
    function: ToolChoiceFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JSONSchemaSpec(Struct, omit_defaults=True):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextFormat(Struct, tag="text", tag_field="type"):
    pass


class JSONObjectFormat(Struct, tag="json_object", tag_field="type"):
    pass


class JSONSchemaFormat(Struct, tag="json_schema", tag_field="type"):
    json_schema: JSONSchemaSpec


ResponseFormat = TextFormat | JSONObjectFormat | JSONSchemaFormat


class ThinkingConfig(Struct, omit_defaults=True):
    """Anthropic's ``thinking`` (``{"type": "enabled", "budget_tokens": 2048}``). Sent as
    it is to Anthropic and to Claude on Bedrock (in ``additionalModelRequestFields``);
    translated to ``reasoning_effort`` for OpenAI-format upstreams and to
    ``thinkingConfig`` for Gemini (docs/api.md has the table)."""

    type: Literal["enabled", "disabled", "adaptive"]
    """``adaptive``: the model decides how much to think (newer Claude models)."""
    budget_tokens: Annotated[int, Meta(ge=1024)] | None = None


class StreamOptions(Struct, omit_defaults=True):
    include_usage: bool = False


class CacheDirective(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """Per-request cache controls: the body's ``cache`` object, merged with the
    ``Cache-Control`` header by the API layer. Never forwarded upstream."""

    no_cache: bool = msgspec.field(default=False, name="no-cache")
    """Do not answer from the cache (a fresh answer is still stored)."""
    no_store: bool = msgspec.field(default=False, name="no-store")
    """Do not store this answer."""
    ttl: Annotated[float, Meta(gt=0, le=30 * 86400)] | None = None
    """Seconds to keep this answer, instead of the group's ``ttl``."""
    namespace: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    """A sub-namespace inside the caller's own (never another tenant's)."""
    max_age: Annotated[float, Meta(ge=0)] | None = msgspec.field(default=None, name="max-age")
    """Accept only answers stored at most this many seconds ago."""


Temperature = Annotated[float, Meta(ge=0, le=2)]
UnitInterval = Annotated[float, Meta(ge=0, le=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, Meta(ge=1)]


class ChatRequest(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """A ``POST /v1/chat/completions`` body.

    Top-level fields Parley does not know are not ignored (OpenAI answers 400 for them,
    and OpenAI-compatible servers take sampling extras such as ``min_p``): the decode is
    strict, and only a body that has such fields is read again to collect them into
    ``extra`` (``decode_chat_request``), so the common body costs one typed decode.
    """

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: UnitInterval | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    stop: str | list[str] | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, float] | None = None
    # Documented OpenAI parameters, forwarded to OpenAI-format upstreams as sent (OpenAI
    # validates their values); other providers refuse them unless translated.
    store: bool | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    verbosity: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    web_search_options: dict[str, Any] | None = None
    top_k: int | None = None
    """Not OpenAI's (which refuses it): Anthropic's and Gemini's, and many compatible
    servers' (vLLM takes -1 for "off", hence no bound here)."""
    thinking: ThinkingConfig | None = None
    """Not OpenAI's: Anthropic's reasoning switch and budget (LiteLLM takes it too)."""
    anthropic_beta: list[str] | None = None
    """Anthropic beta flags (the ``anthropic-beta`` header of ``/v1/messages``), sent to
    Anthropic upstreams only."""
    protocol: str | None = None
    """The inbound API a request came through when it is not Chat Completions
    (``"messages"``); set by the API layer, never taken from a body. Adapters that cannot
    carry another protocol's blocks (cache breakpoints, thinking) leave them out when set."""
    # Per-request upstream override: refused unless an admin allowed it for the deployment
    # (SSRF guard); never forwarded upstream.
    api_base: str | None = None
    base_url: str | None = None
    cache: CacheDirective | None = None
    """Parley's own extension; the gateway removes it before any provider sees it."""
    extra: dict[str, Any] | None = None
    """Top-level fields Parley has no type for, as sent; set only by
    ``decode_chat_request`` (an ``extra`` key in a body is itself one of them). Forwarded
    where the deployment's provider takes them (``gateway/params.py``)."""

    @property
    def output_limit(self) -> int | None:
        """The client's cap on generated tokens, whichever spelling it used."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


# --- responses ----------------------------------------------------------------------------


class Usage(Struct):
    """Token counts in OpenAI's shape, which is the canonical one.

    ``prompt_tokens`` counts every input token, cached ones included (Anthropic's
    ``input_tokens`` excludes its cache reads and writes: the adapter adds them). The
    breakdowns keep what providers report: ``prompt_tokens_details.cached_tokens`` (read
    from the prompt cache: OpenAI's own key, Anthropic's ``cache_read_input_tokens``,
    Gemini's ``cachedContentTokenCount``), ``prompt_tokens_details.cache_creation_tokens``
    (written to it: Anthropic's ``cache_creation_input_tokens``) and
    ``completion_tokens_details.reasoning_tokens`` (OpenAI's, Gemini's
    ``thoughtsTokenCount``; counted inside ``completion_tokens``)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # The upstream's breakdowns (cached prompt tokens, reasoning tokens, ...), passed on as
    # sent; UNSET (never encoded) when the upstream sent none or Parley counted the tokens.
    prompt_tokens_details: dict[str, Any] | UnsetType | None = UNSET
    completion_tokens_details: dict[str, Any] | UnsetType | None = UNSET

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens read from the provider's prompt cache."""
        return _detail(self.prompt_tokens_details, "cached_tokens")

    @property
    def cache_creation_tokens(self) -> int:
        """Prompt tokens written to the provider's prompt cache."""
        return _detail(self.prompt_tokens_details, "cache_creation_tokens")

    @property
    def reasoning_tokens(self) -> int:
        return _detail(self.completion_tokens_details, "reasoning_tokens")


def _detail(details: dict[str, Any] | UnsetType | None, name: str) -> int:
    if not isinstance(details, dict):
        return 0
    value = details.get(name)
    return value if isinstance(value, int) else 0


class ResponseMessage(Struct):
    content: str | None = None
    role: str = "assistant"
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    reasoning_content: str | UnsetType | None = UNSET
    """The model's reasoning, as vLLM, llama.cpp and DeepSeek send it; UNSET (never
    encoded) otherwise, so answers without it keep OpenAI's exact shape."""
    thinking_blocks: list[ThinkingBlock] | UnsetType = UNSET
    """Anthropic's (and Bedrock's) thinking blocks with their signatures, as LiteLLM
    returns them; a client sends them back in the next turn
    (``AssistantMessage.thinking_blocks``)."""


class Choice(Struct):
    index: int
    message: ResponseMessage
    finish_reason: str | None
    logprobs: Any = None
    stop_sequence: str | UnsetType | None = UNSET
    """Which of the request's stop sequences ended the answer, when the upstream says
    (Anthropic); lets ``/v1/messages`` answer ``stop_reason: "stop_sequence"``."""


class ChatCompletion(Struct):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    object: str = "chat.completion"
    system_fingerprint: str | None = None


class FunctionDelta(Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(Struct, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class Delta(Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    """Reasoning deltas from vLLM, llama.cpp and DeepSeek, passed on (and Anthropic's
    thinking deltas)."""
    reasoning_signature: str | None = None
    """The signature that closes a thinking block (Anthropic's ``signature_delta``)."""
    redacted_reasoning: str | None = None
    """A whole ``redacted_thinking`` block's ``data``."""


class ChunkChoice(Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: Any = None
    stop_sequence: str | UnsetType | None = UNSET
    """As ``Choice.stop_sequence``, on the chunk that ends the answer."""


class ChatCompletionChunk(Struct):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    parley: dict[str, Any] | UnsetType = UNSET
    """Only on the usage chunk Parley ends a stream with: ``cost_usd`` and
    ``cached_tokens``, which a non-streamed answer carries as headers (a stream's headers
    leave before its usage is known). UNSET, never encoded, on every other chunk."""


# --- embeddings ----------------------------------------------------------------------------


class EmbeddingRequest(Struct, omit_defaults=True):
    model: Annotated[str, Meta(min_length=1)]
    # str | list[str] | list[int] | list[list[int]]; msgspec allows one array type per union,
    # so the list is checked by ``texts()``.
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = None
    user: str | None = None

    def texts(self) -> list[str]:
        """The inputs as strings; token-id inputs are refused (no tokenizer per model here)."""
        if isinstance(self.input, str):
            return [self.input]
        if not self.input:
            raise ValueError("input must not be empty")
        if all(isinstance(item, str) for item in self.input):
            return list(self.input)
        raise ValueError(
            "input must be a string or a list of strings; token arrays are not supported"
        )


class EmbeddingResult(Struct):
    """What a provider returns: vectors in input order, and usage when the upstream counts it."""

    vectors: list[list[float]]
    model: str
    prompt_tokens: int | None = None


class ModelCard(Struct):
    id: str
    created: int
    owned_by: str = "parley"
    object: str = "model"


OPENAI_ONLY_PARAMS = frozenset(
    {
        "store",
        "metadata",
        "reasoning_effort",
        "service_tier",
        "modalities",
        "audio",
        "prediction",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
        "web_search_options",
    }
)
"""Documented OpenAI parameters that only OpenAI-format upstreams take as they are."""


_chat_decoder = msgspec.json.Decoder(ChatRequest)
_UNKNOWN_TOP_LEVEL = "Object contains unknown field `"
CHAT_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(ChatRequest)) - {
    "extra",
    "protocol",
}
"""The top-level fields ``ChatRequest`` types (and a body may set)."""


def decode_chat_request(body: bytes) -> ChatRequest:
    """Decode and validate; unknown top-level fields are kept in ``extra``.

    One strict typed decode for the usual body. A body with a field Parley has no type
    for fails it at that field; only then is it read generically, the unknown fields taken
    out, and the rest validated as usual."""
    try:
        request = _chat_decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if not text.startswith(_UNKNOWN_TOP_LEVEL) or " - at `" in text:
            raise
        return _with_extra(body)
    if request.extra is not None or request.protocol is not None:
        return _with_extra(body)  # a client's own "extra" or "protocol": unknown fields too
    return request


def _with_extra(body: bytes) -> ChatRequest:
    data = msgspec.json.decode(body)
    assert isinstance(data, dict)  # the typed decode got as far as an object's field
    extra = {name: data.pop(name) for name in list(data) if name not in CHAT_FIELDS}
    request = msgspec.convert(data, ChatRequest)
    return msgspec.structs.replace(request, extra=extra)


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    return msgspec.json.decode(body, type=EmbeddingRequest)


def text_of(content: str | list[TextPart] | list[ContentPart] | None) -> str:
    """Concatenate the text of a message's content, ignoring non-text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))
