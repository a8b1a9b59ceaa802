"""An Anthropic Messages request, as Parley's canonical ``ChatRequest``.

Nothing Anthropic upstreams take is lost on the way (``providers/anthropic.py`` builds the
same blocks back): cache breakpoints ride on the canonical parts, tools and tool results,
thinking blocks with their signatures on the assistant message, ``thinking`` and the
``anthropic-beta`` flags on the request. Turns are split as Chat Completions wants them:
a user turn's ``tool_result`` blocks become ``tool`` messages ahead of the turn's other
content (Anthropic puts them first too), an assistant turn's ``tool_use`` blocks become
its ``tool_calls``. What no canonical field can carry is refused with a 400 naming it.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from parley.errors import InvalidRequest
from parley.schema.chat import (
    AssistantMessage,
    ChatRequest,
    ContentPart,
    FileData,
    FilePart,
    FunctionCall,
    FunctionDef,
    ImagePart,
    ImageURL,
    Message,
    NamedToolChoice,
    StreamOptions,
    SystemMessage,
    TextPart,
    ThinkingBlock,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceFunction,
    ToolMessage,
    UserMessage,
)
from parley.schema.messages import (
    Base64Source,
    Block,
    CountTokensRequest,
    DocumentBlock,
    FileSource,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlockIn,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceParam,
    ToolChoiceTool,
    ToolParam,
    ToolResultBlock,
    ToolUseBlock,
)

_STREAM_USAGE = StreamOptions(include_usage=True)


def to_chat_request(
    request: MessagesRequest, beta: list[str] | None, extra: dict[str, Any] | None = None
) -> ChatRequest:
    """The canonical request for ``request``; ``beta`` is the ``anthropic-beta`` header's
    flags, ``extra`` the body's fields Parley has no type for."""
    choice, parallel = _tool_choice(request.tool_choice)
    return ChatRequest(
        model=request.model,
        messages=_messages(request.system, request.messages),
        stream=request.stream,
        stream_options=_STREAM_USAGE if request.stream else None,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        stop=request.stop_sequences or None,
        user=request.metadata.user_id if request.metadata else None,
        tools=_tools(request.tools),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        thinking=request.thinking,
        anthropic_beta=beta,
        protocol="messages",
        extra=extra or None,
    )


def count_request(request: CountTokensRequest) -> ChatRequest:
    """A count_tokens body as a canonical request, for the token counter."""
    return ChatRequest(
        model=request.model,
        messages=_messages(request.system, request.messages),
        tools=_tools(request.tools),
        protocol="messages",
    )


def beta_flags(header: str | None) -> list[str] | None:
    if not header:
        return None
    flags = [flag.strip() for flag in header.split(",") if flag.strip()]
    return flags or None


def _messages(system: str | list[TextBlock] | None, turns: list[MessageParam]) -> list[Message]:
    messages: list[Message] = []
    if isinstance(system, str):
        if system:
            messages.append(SystemMessage(content=system))
    elif system:
        messages.append(SystemMessage(content=[_text(block) for block in system]))
    for index, turn in enumerate(turns):
        where = f"messages[{index}].content"
        if turn.role == "user":
            messages += _user_turn(turn.content, where)
        else:
            messages.append(_assistant_turn(turn.content, where))
    return messages


def _text(block: TextBlock) -> TextPart:
    return TextPart(block.text, cache_control=block.cache_control)


def _user_turn(content: str | list[Block], where: str) -> list[Message]:
    if isinstance(content, str):
        return [UserMessage(content=content)]
    messages: list[Message] = []
    parts: list[ContentPart] = []
    for position, block in enumerate(content):
        at = f"{where}[{position}]"
        if isinstance(block, ToolResultBlock):
            messages.append(_tool_result(block, at))
        elif isinstance(block, TextBlock):
            parts.append(_text(block))
        elif isinstance(block, ImageBlock):
            parts.append(_image(block, at))
        elif isinstance(block, DocumentBlock):
            parts.append(_document(block, at))
        else:
            raise InvalidRequest(f"a user turn cannot hold a {_kind(block)} block", param=at)
    if parts:
        messages.append(UserMessage(content=parts))
    return messages


def _kind(block: Block) -> str:
    return str(type(block).__struct_config__.tag)


def _image(block: ImageBlock, at: str) -> ImagePart:
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    elif isinstance(source, FileSource):
        raise InvalidRequest("images by file_id are not supported", param=f"{at}.source")
    else:
        url = source.url
    return ImagePart(ImageURL(url), cache_control=block.cache_control)


def _document(block: DocumentBlock, at: str) -> FilePart:
    source = block.source
    if isinstance(source, Base64Source):
        file = FileData(file_data=f"data:{source.media_type};base64,{source.data}")
    elif isinstance(source, PlainTextSource):
        encoded = base64.b64encode(source.data.encode()).decode()
        file = FileData(file_data=f"data:text/plain;base64,{encoded}")
    elif isinstance(source, FileSource):
        file = FileData(file_id=source.file_id)
    else:
        file = FileData(url=source.url)
    if block.citations:
        raise InvalidRequest("document citations are not supported", param=f"{at}.citations")
    return FilePart(
        file, cache_control=block.cache_control, title=block.title, context=block.context
    )


def _tool_result(block: ToolResultBlock, at: str) -> ToolMessage:
    content: str | list[TextPart]
    if block.content is None:
        content = ""
    elif isinstance(block.content, str):
        content = block.content
    else:
        content = []
        for position, item in enumerate(block.content):
            if not isinstance(item, TextBlock):
                raise InvalidRequest(
                    "images inside a tool_result are not supported; send them in a text or "
                    "image block of the user turn",
                    param=f"{at}.content[{position}]",
                )
            content.append(_text(item))
    return ToolMessage(
        content=content,
        tool_call_id=block.tool_use_id,
        is_error=block.is_error,
        cache_control=block.cache_control,
    )


def _assistant_turn(content: str | list[Block], where: str) -> AssistantMessage:
    if isinstance(content, str):
        return AssistantMessage(content=content)
    texts: list[TextPart] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = []
    for position, block in enumerate(content):
        if isinstance(block, TextBlock):
            texts.append(_text(block))
        elif isinstance(block, ToolUseBlock):
            arguments = msgspec.json.encode(block.input).decode()
            calls.append(ToolCall(block.id, FunctionCall(block.name, arguments)))
        elif isinstance(block, ThinkingBlockIn):
            thinking.append(
                ThinkingBlock("thinking", thinking=block.thinking, signature=block.signature)
            )
        elif isinstance(block, RedactedThinkingBlock):
            thinking.append(ThinkingBlock("redacted_thinking", data=block.data))
        else:
            raise InvalidRequest(
                f"an assistant turn cannot hold a {_kind(block)} block",
                param=f"{where}[{position}]",
            )
    return AssistantMessage(
        content=texts or None, tool_calls=calls or None, thinking_blocks=thinking or None
    )


def _tools(tools: list[ToolParam] | None) -> list[Tool] | None:
    if not tools:
        return None
    out: list[Tool] = []
    for index, tool in enumerate(tools):
        if tool.input_schema is None or tool.type not in (None, "custom"):
            raise InvalidRequest(
                f"tool {tool.name!r}: Anthropic's server tools ({tool.type}) are not supported; "
                "declare a client tool with input_schema",
                param=f"tools[{index}]",
            )
        function = FunctionDef(tool.name, tool.description, tool.input_schema)
        out.append(Tool(function, cache_control=tool.cache_control))
    return out


def _tool_choice(choice: ToolChoiceParam | None) -> tuple[ToolChoice | None, bool | None]:
    if choice is None:
        return None, None
    parallel = False if getattr(choice, "disable_parallel_tool_use", None) else None
    if isinstance(choice, ToolChoiceAuto):
        return "auto", parallel
    if isinstance(choice, ToolChoiceAny):
        return "required", parallel
    if isinstance(choice, ToolChoiceTool):
        return NamedToolChoice(ToolChoiceFunction(choice.name)), parallel
    assert isinstance(choice, ToolChoiceNone)
    return "none", None
