"""What OpenAI's Chat Completions API refuses, so the fake refuses it too.

The fake used to read whatever it was sent, which is how a request without
``tools[].type`` passed every test and failed against the real API ("Missing required
parameter: 'tools[0].type'."). ``check_chat`` walks a request body the way the API
reference describes it (required fields present, types and discriminator values right,
no unknown top-level parameter) and raises ``Rejected`` with the API's own error shape:
``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``.

It checks the shapes Parley sends, not every corner of the reference (audio output,
``functions``, moderation policies are accepted as opaque objects).
"""

from __future__ import annotations

from typing import Any

# The documented request parameters of POST /v1/chat/completions.
CHAT_PARAMETERS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "metadata",
        "modalities",
        "model",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
# Azure OpenAI takes the same body, plus its "on your data" extension.
AZURE_CHAT_PARAMETERS = CHAT_PARAMETERS | {"data_sources", "user_security_context"}

_PART_TYPES = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_FORMATS = ("text", "json_object", "json_schema")
_TOOL_TYPES = ("function", "custom")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
_VERBOSITY = ("low", "medium", "high")

# (parameter, accepted Python types, how the API names the type)
_SCALARS: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("model", (str,), "a string"),
    ("stream", (bool,), "a boolean"),
    ("store", (bool,), "a boolean"),
    ("logprobs", (bool,), "a boolean"),
    ("parallel_tool_calls", (bool,), "a boolean"),
    ("temperature", (int, float), "a decimal"),
    ("top_p", (int, float), "a decimal"),
    ("presence_penalty", (int, float), "a decimal"),
    ("frequency_penalty", (int, float), "a decimal"),
    ("n", (int,), "an integer"),
    ("seed", (int,), "an integer"),
    ("max_tokens", (int,), "an integer"),
    ("max_completion_tokens", (int,), "an integer"),
    ("top_logprobs", (int,), "an integer"),
    ("user", (str,), "a string"),
    ("prompt_cache_key", (str,), "a string"),
    ("safety_identifier", (str,), "a string"),
    ("metadata", (dict,), "an object"),
    ("logit_bias", (dict,), "an object"),
    ("stream_options", (dict,), "an object"),
    ("prediction", (dict,), "an object"),
    ("web_search_options", (dict,), "an object"),
    ("modalities", (list,), "an array"),
    ("tools", (list,), "an array"),
)


class Rejected(Exception):
    """A request the real API answers with 400; ``body`` is its error envelope."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.body: dict[str, Any] = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }


def check_chat(body: dict[str, Any], *, azure: bool = False) -> None:
    """Raise ``Rejected`` for the first thing the API would refuse in this body."""
    allowed = AZURE_CHAT_PARAMETERS if azure else CHAT_PARAMETERS
    for name in body:
        if name not in allowed:
            raise Rejected(f"Unrecognized request argument supplied: {name}")
    if not azure:
        _required(body, "model", "")
    _required(body, "messages", "")
    for name, types, label in _SCALARS:
        value = body.get(name)
        if value is not None and (
            not isinstance(value, types) or (bool not in types and isinstance(value, bool))
        ):
            _wrong_type(name, label, value)
    messages = body["messages"]
    if not isinstance(messages, list):
        _wrong_type("messages", "an array", messages)
    if not messages:
        raise Rejected(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            "messages",
            "empty_array",
        )
    for index, message in enumerate(messages):
        _message(message, f"messages[{index}]")
    for index, tool in enumerate(body.get("tools") or ()):
        _tool(tool, f"tools[{index}]")
    _tool_choice(body.get("tool_choice"))
    _response_format(body.get("response_format"))
    if body.get("stream_options") is not None and not body.get("stream"):
        raise Rejected(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    _one_of(body, "reasoning_effort", _EFFORTS, "reasoning_effort")
    _one_of(body, "service_tier", _TIERS, "service_tier")
    _one_of(body, "verbosity", _VERBOSITY, "verbosity")


def _required(obj: dict[str, Any], name: str, where: str) -> Any:
    if obj.get(name) is None:
        param = f"{where}.{name}" if where else name
        raise Rejected(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    return obj[name]


def _wrong_type(param: str, label: str, value: Any) -> None:
    got = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a decimal",
        list: "an array",
        dict: "an object",
    }.get(type(value), "null")
    raise Rejected(
        f"Invalid type for '{param}': expected {label}, but got {got} instead.",
        param,
        "invalid_type",
    )


def _one_of(obj: dict[str, Any], name: str, values: tuple[str, ...], param: str) -> None:
    value = obj.get(name)
    if value is not None and value not in values:
        supported = ", ".join(f"'{v}'" for v in values)
        raise Rejected(
            f"Invalid value: '{value}'. Supported values are: {supported}.",
            param,
            "invalid_value",
        )


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _wrong_type(param, "an object", value)
    return value  # type: ignore[no-any-return]  # _wrong_type raised otherwise


def _message(value: Any, where: str) -> None:
    message = _object(value, where)
    role = _required(message, "role", where)
    _one_of(message, "role", _ROLES, f"{where}.role")
    content = message.get("content")
    if role == "assistant":
        if content is None and not message.get("tool_calls") and not message.get("function_call"):
            raise Rejected(
                f"Missing required parameter: '{where}.content'.",
                f"{where}.content",
                "missing_required_parameter",
            )
        for index, call in enumerate(message.get("tool_calls") or ()):
            _tool_call(call, f"{where}.tool_calls[{index}]")
    elif role != "function":
        _required(message, "content", where)
    if role == "tool":
        _required(message, "tool_call_id", where)
    if isinstance(content, list):
        for index, part in enumerate(content):
            _part(part, f"{where}.content[{index}]", _PART_TYPES.get(role, ("text",)))
    elif content is not None and not isinstance(content, str):
        _wrong_type(f"{where}.content", "a string or an array", content)


def _part(value: Any, where: str, kinds: tuple[str, ...]) -> None:
    part = _object(value, where)
    kind = _required(part, "type", where)
    _one_of(part, "type", kinds, f"{where}.type")
    if kind in ("text", "refusal"):
        if not isinstance(_required(part, kind, where), str):
            _wrong_type(f"{where}.{kind}", "a string", part[kind])
    elif kind == "image_url":
        image = _object(_required(part, "image_url", where), f"{where}.image_url")
        _required(image, "url", f"{where}.image_url")


def _tool_call(value: Any, where: str) -> None:
    call = _object(value, where)
    _required(call, "id", where)
    _required(call, "type", where)
    _one_of(call, "type", ("function",), f"{where}.type")
    function = _object(_required(call, "function", where), f"{where}.function")
    _required(function, "name", f"{where}.function")
    arguments = _required(function, "arguments", f"{where}.function")
    if not isinstance(arguments, str):
        _wrong_type(f"{where}.function.arguments", "a string", arguments)


def _tool(value: Any, where: str) -> None:
    tool = _object(value, where)
    kind = _required(tool, "type", where)
    _one_of(tool, "type", _TOOL_TYPES, f"{where}.type")
    if kind == "function":
        function = _object(_required(tool, "function", where), f"{where}.function")
        _required(function, "name", f"{where}.function")


def _tool_choice(value: Any) -> None:
    if value is None or isinstance(value, str):
        if isinstance(value, str):
            _one_of(
                {"tool_choice": value}, "tool_choice", ("none", "auto", "required"), "tool_choice"
            )
        return
    choice = _object(value, "tool_choice")
    kind = _required(choice, "type", "tool_choice")
    _one_of(choice, "type", ("function", "allowed_tools", "custom"), "tool_choice.type")
    if kind == "function":
        function = _object(_required(choice, "function", "tool_choice"), "tool_choice.function")
        _required(function, "name", "tool_choice.function")


def _response_format(value: Any) -> None:
    if value is None:
        return
    fmt = _object(value, "response_format")
    kind = _required(fmt, "type", "response_format")
    _one_of(fmt, "type", _FORMATS, "response_format.type")
    if kind == "json_schema":
        spec = _object(
            _required(fmt, "json_schema", "response_format"), "response_format.json_schema"
        )
        _required(spec, "name", "response_format.json_schema")
