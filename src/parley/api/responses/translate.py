"""A Responses request read as Parley's canonical ``ChatRequest``.

Each input item becomes a Chat Completions message: ``message`` items by role (their
``input_text`` / ``input_image`` / ``output_text`` parts as text and image parts),
``function_call`` items join the assistant turn before them as ``tool_calls``, and
``function_call_output`` items become ``tool`` messages. A ``reasoning`` item whose
``encrypted_content`` Parley wrote (``reasoning.py``) becomes the ``thinking_blocks`` of the
assistant turn it opens (or joins), so Claude gets its signed thinking back in front of
the turn's tool use. ``instructions`` lead as a system message. What only OpenAI itself
can do (built-in tools, files by id, item references, OpenAI's own reasoning, background
runs, item and part types newer than this translation) is not an error yet: it is
collected in ``Translation.problems``, because an OpenAI deployment receives the request
as it came and honours it; the gateway refuses it with the first problem only when the
deployment it picked would have to translate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parley.api.responses.reasoning import is_parleys, unpack
from parley.errors import InvalidRequest
from parley.schema.chat import (
    AssistantMessage,
    ChatRequest,
    ContentPart,
    DeveloperMessage,
    FunctionCall,
    FunctionDef,
    ImagePart,
    ImageURL,
    JSONObjectFormat,
    JSONSchemaFormat,
    JSONSchemaSpec,
    Message,
    NamedToolChoice,
    ResponseFormat,
    StreamOptions,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceFunction,
    ToolMessage,
    UserMessage,
)
from parley.schema.responses import ResponsesRequest

_SKIPPED_ITEMS = frozenset(
    {
        # Output items of OpenAI's own tools: context another provider has no use for (and
        # cannot be sent), left out when a conversation continues elsewhere.
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_list_tools",
        "mcp_call",
        "local_shell_call",
        "local_shell_call_output",
    }
)


@dataclass(slots=True)
class Translation:
    chat: ChatRequest
    problems: list[InvalidRequest] = field(default_factory=list)
    """What a non-OpenAI deployment cannot honour, in request order."""
    builtin_tools: list[str] = field(default_factory=list)


def input_items(value: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The request's ``input`` as items: a string is one user message."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value)


def to_chat(
    request: ResponsesRequest, items: list[dict[str, Any]], *, history: int = 0
) -> Translation:
    """``items``: the conversation so far (a stored response's, when continuing: the first
    ``history`` items) and this request's input, in order."""
    problems: list[InvalidRequest] = []
    messages: list[Message] = []
    if request.instructions:
        messages.append(SystemMessage(content=request.instructions))
    for index, item in enumerate(items):
        _item(item, f"input[{index}]", messages, problems, stored=index < history)
    if not messages and not problems:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    tools, builtin = _tools(request.tools, problems)
    for name, value in (
        ("background", request.background),
        ("conversation", request.conversation),
        ("prompt", request.prompt),
    ):
        if value:
            problems.append(
                InvalidRequest(f"'{name}' is supported only by OpenAI deployments", param=name)
            )
    reasoning = request.reasoning or {}
    text = request.text or {}
    chat = ChatRequest(
        model=request.model,
        messages=messages,
        stream=request.stream,
        stream_options=StreamOptions(include_usage=True) if request.stream else None,
        temperature=request.temperature,
        top_p=request.top_p,
        max_completion_tokens=request.max_output_tokens,
        user=request.user,
        tools=tools or None,
        tool_choice=_tool_choice(request.tool_choice, problems) if tools else None,
        parallel_tool_calls=request.parallel_tool_calls if tools else None,
        response_format=_format(text.get("format")),
        logprobs=True if request.top_logprobs else None,
        top_logprobs=request.top_logprobs or None,
        reasoning_effort=_string(reasoning.get("effort"), "reasoning.effort"),
        verbosity=_string(text.get("verbosity"), "text.verbosity"),
        service_tier=request.service_tier,
        safety_identifier=request.safety_identifier,
        prompt_cache_key=request.prompt_cache_key,
    )
    return Translation(chat, problems, builtin)


def _string(value: Any, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"Invalid type for '{param}': expected a string.", param=param)


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid type for '{param}': expected an object.", param=param)
    return value


def _required_str(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{where}.{name}'.", param=where)
    if not isinstance(value, str):
        param = f"{where}.{name}"
        raise InvalidRequest(f"Invalid type for '{param}': expected a string.", param=param)
    return value


def _item(
    item: Any, where: str, messages: list[Message], problems: list[InvalidRequest], *, stored: bool
) -> None:
    item = _object(item, where)
    kind = item.get("type", "message")
    if kind == "message":
        message = _message(item, where, problems)
        last = messages[-1] if messages else None
        if isinstance(message, AssistantMessage) and _thinking_only(last):
            assert isinstance(last, AssistantMessage)
            last.content, last.refusal = message.content, message.refusal  # one turn
        else:
            messages.append(message)
    elif kind == "reasoning":
        _reasoning(item, where, messages, problems, stored=stored)
    elif kind == "function_call":
        call = ToolCall(
            id=_required_str(item, "call_id", where),
            function=FunctionCall(
                name=_required_str(item, "name", where),
                arguments=_required_str(item, "arguments", where),
            ),
        )
        last = messages[-1] if messages else None
        if isinstance(last, AssistantMessage):
            last.tool_calls = [*(last.tool_calls or []), call]
        else:
            messages.append(AssistantMessage(tool_calls=[call]))
    elif kind == "function_call_output":
        output = item.get("output")
        if output is None:
            raise InvalidRequest(f"Missing required parameter: '{where}.output'.", param=where)
        text = output if isinstance(output, str) else _parts_text(output, f"{where}.output")
        messages.append(
            ToolMessage(content=text, tool_call_id=_required_str(item, "call_id", where))
        )
    elif kind in _SKIPPED_ITEMS:
        return
    elif kind == "item_reference":
        problems.append(
            InvalidRequest(
                f"'{where}': item references are supported only by OpenAI deployments",
                param=where,
            )
        )
    else:  # a newer item type: OpenAI may know it, a translation cannot
        problems.append(
            InvalidRequest(
                f"Invalid value for '{where}.type': {kind!r} is supported only by OpenAI "
                "deployments (translated: message, function_call, function_call_output, "
                "reasoning).",
                param=f"{where}.type",
            )
        )


def _thinking_only(message: Message | None) -> bool:
    """An assistant turn opened by a reasoning item and nothing else yet."""
    return (
        isinstance(message, AssistantMessage)
        and message.content is None
        and not message.tool_calls
        and bool(message.thinking_blocks)
    )


def _reasoning(
    item: dict[str, Any],
    where: str,
    messages: list[Message],
    problems: list[InvalidRequest],
    *,
    stored: bool,
) -> None:
    """A reasoning item: Parley's own become thinking blocks on the assistant turn they
    precede (reasoning, then that turn's message and function calls, as answers list
    them). One without ``encrypted_content`` has nothing to send back and is left out, as
    before. OpenAI's own can go back to OpenAI only: a problem for a translation, unless
    Parley itself put it there from a stored response (``stored``), where it is left out
    so that a conversation continued with ``previous_response_id`` may change families."""
    content = item.get("encrypted_content")
    if content is None or content == "":
        return
    param = f"{where}.encrypted_content"
    if not isinstance(content, str):
        raise InvalidRequest(f"Invalid type for '{param}': expected a string.", param=param)
    if not is_parleys(content):
        if not stored:
            problems.append(
                InvalidRequest(
                    f"'{where}' is a reasoning item whose encrypted_content Parley did not "
                    "write (OpenAI's own, say): only an OpenAI deployment can take it back. "
                    "Leave the item out of the input to continue on this model.",
                    param=param,
                    code="invalid_encrypted_content",
                )
            )
        return
    try:
        blocks = unpack(content)
    except ValueError as exc:
        raise InvalidRequest(
            f"The encrypted_content of '{where}' cannot be read: {exc}. Send it back exactly "
            "as Parley returned it.",
            param=param,
            code="invalid_encrypted_content",
        ) from None
    last = messages[-1] if messages else None
    if isinstance(last, AssistantMessage):
        last.thinking_blocks = [*(last.thinking_blocks or []), *blocks]
    else:
        messages.append(AssistantMessage(thinking_blocks=blocks))


def _parts_text(parts: Any, where: str) -> str:
    if not isinstance(parts, list):
        raise InvalidRequest(
            f"Invalid type for '{where}': expected a string or a list of parts.", param=where
        )
    texts = []
    for index, value in enumerate(parts):
        part = _object(value, f"{where}[{index}]")
        if part.get("type") in ("input_text", "output_text", "text"):
            texts.append(_required_str(part, "text", f"{where}[{index}]"))
    return "".join(texts)


def _message(item: dict[str, Any], where: str, problems: list[InvalidRequest]) -> Message:
    role = item.get("role")
    content = item.get("content")
    if content is None:
        raise InvalidRequest(f"Missing required parameter: '{where}.content'.", param=where)
    if role in ("system", "developer"):
        text = content if isinstance(content, str) else _parts_text(content, f"{where}.content")
        cls = SystemMessage if role == "system" else DeveloperMessage
        return cls(content=text)
    if role == "assistant":
        if isinstance(content, str):
            return AssistantMessage(content=content)
        refusal = "".join(
            str(p.get("refusal", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "refusal"
        )
        return AssistantMessage(
            content=_parts_text(content, f"{where}.content") or None, refusal=refusal or None
        )
    if role != "user":
        raise InvalidRequest(
            f"Invalid value for '{where}.role': {role!r}; expected user, assistant, system or "
            "developer.",
            param=f"{where}.role",
        )
    if isinstance(content, str):
        return UserMessage(content=content)
    if not isinstance(content, list):
        param = f"{where}.content"
        raise InvalidRequest(
            f"Invalid type for '{param}': expected a string or a list of parts.", param=param
        )
    parts: list[ContentPart] = []
    for index, value in enumerate(content):
        at = f"{where}.content[{index}]"
        part = _object(value, at)
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append(TextPart(text=_required_str(part, "text", at)))
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                problems.append(
                    InvalidRequest(
                        f"'{at}': images by file_id are supported only by OpenAI deployments; "
                        "send image_url",
                        param=f"{at}.image_url",
                    )
                )
                continue
            detail = part.get("detail")
            parts.append(ImagePart(image_url=ImageURL(url=url, detail=detail)))
        elif kind == "input_file":
            problems.append(
                InvalidRequest(
                    f"'{at}': input_file is supported only by OpenAI deployments", param=at
                )
            )
        else:
            problems.append(
                InvalidRequest(
                    f"Invalid value for '{at}.type': {kind!r} is supported only by OpenAI "
                    "deployments (translated: input_text, input_image).",
                    param=f"{at}.type",
                )
            )
    return UserMessage(content=parts)


def _tools(
    tools: list[dict[str, Any]] | None, problems: list[InvalidRequest]
) -> tuple[list[Tool], list[str]]:
    out: list[Tool] = []
    builtin: list[str] = []
    for index, tool in enumerate(tools or []):
        where = f"tools[{index}]"
        kind = tool.get("type")
        if kind is None:
            raise InvalidRequest(f"Missing required parameter: '{where}.type'.", param=where)
        if kind != "function":
            builtin.append(str(kind))
            problems.append(
                InvalidRequest(
                    f"The built-in tool {kind!r} ({where}.type) runs only on OpenAI "
                    "deployments; this model's deployment cannot run it. Use function tools, "
                    "or a model group served by OpenAI.",
                    param=f"{where}.type",
                    code="unsupported_tool",
                )
            )
            continue
        name = _required_str(tool, "name", where)
        if not 1 <= len(name) <= 64:
            raise InvalidRequest(
                f"Invalid value for '{where}.name': 1 to 64 characters.", param=f"{where}.name"
            )
        parameters = tool.get("parameters")
        if parameters is not None:
            parameters = _object(parameters, f"{where}.parameters")
        strict = tool.get("strict")
        out.append(
            Tool(
                function=FunctionDef(
                    name=name,
                    description=_string(tool.get("description"), f"{where}.description"),
                    parameters=parameters,
                    strict=strict if isinstance(strict, bool) else None,
                )
            )
        )
    return out, builtin


def _tool_choice(value: Any, problems: list[InvalidRequest]) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("none", "auto", "required"):
        choice: ToolChoice = value
        return choice
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if not isinstance(name, str):
            raise InvalidRequest(
                "Missing required parameter: 'tool_choice.name'.", param="tool_choice"
            )
        return NamedToolChoice(function=ToolChoiceFunction(name=name))
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        problems.append(
            InvalidRequest(
                f"tool_choice {value['type']!r} is supported only by OpenAI deployments",
                param="tool_choice",
            )
        )
        return None
    raise InvalidRequest(
        "Invalid value for 'tool_choice': expected none, auto, required or "
        '{"type": "function", "name": ...}.',
        param="tool_choice",
    )


def _format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    fmt = _object(value, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSONObjectFormat()
    if kind == "json_schema":
        name = _required_str(fmt, "name", "text.format")
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "Missing required parameter: 'text.format.schema'.", param="text.format"
            )
        strict = fmt.get("strict")
        return JSONSchemaFormat(
            json_schema=JSONSchemaSpec(
                name=name,
                schema=schema,
                description=_string(fmt.get("description"), "text.format.description"),
                strict=strict if isinstance(strict, bool) else None,
            )
        )
    raise InvalidRequest(
        f"Invalid value for 'text.format.type': {kind!r}; expected text, json_object or "
        "json_schema.",
        param="text.format.type",
    )
