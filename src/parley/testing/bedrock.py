"""Amazon Bedrock's Converse wire format, as the fake upstream speaks it.

Built from the Bedrock Runtime API reference (Converse, ConverseStream, their shapes and
errors). Requests are checked as Bedrock checks them (``check_converse``): the known
top-level fields only, ``messages`` alternating from a user turn, each content block one
known member, images in a known format with base64 bytes, tool names and schemas,
``toolUse`` / ``toolResult`` only with a ``toolConfig`` and each result answering a call,
and ``inferenceConfig`` holding only its four fields. A refusal is a 400
``ValidationException`` in AWS's shape: ``{"message"}`` with the name in
``x-amzn-ErrorType``.

Answers: ``output.message.content`` blocks, ``stopReason``, ``usage`` and ``metrics``;
streams are event-stream frames (``aws.event_frame``) with the ``p`` padding field real
Bedrock adds to each event. Tool input is streamed in pieces of a few bytes, so a
translation that mishandles split JSON fails. With ``Behaviour.parallel_tools`` every
offered tool is called in one turn.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from typing import Any, ClassVar

from parley.testing.aws import corrupt, event_frame
from parley.testing.formats import Parsed
from parley.testing.scenario import Answer, Conversation, count_words, example_for

STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
TOOL_INPUT_PIECE = 5
"""Bytes of tool-input JSON per streamed delta."""

_TOP_LEVEL = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "promptVariables",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
    }
)
_CONTENT = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "audio",
        "toolUse",
        "toolResult",
        "guardContent",
        "cachePoint",
        "reasoningContent",
        "citationsContent",
        "searchResult",
    }
)
_INFERENCE = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})


class Invalid(ValueError):
    """What Bedrock would answer 400 ValidationException for."""


def check_converse(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - _TOP_LEVEL)
    if unknown:
        raise Invalid(f"Malformed input request: extraneous key [{unknown[0]}] is not permitted")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("The messages field is required and must not be empty.")
    calls: set[str] = set()
    has_tool_blocks = False
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{index}.role: must be user or assistant")
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            raise Invalid(
                "A conversation must start with a user message and alternate between user "
                "and assistant roles. Try again with a conversation that alternates."
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise Invalid(f"messages.{index}.content: must be a non-empty list")
        for block_index, block in enumerate(content):
            where = f"messages.{index}.content.{block_index}"
            has_tool_blocks |= _check_block(block, where, role, calls)
    for index, block in enumerate(body.get("system") or []):
        if (
            not isinstance(block, dict)
            or len(block) != 1
            or not (block.get("text") or "cachePoint" in block)
        ):
            raise Invalid(f"system.{index}: must be one text (non-blank) or cachePoint member")
    inference = body.get("inferenceConfig") or {}
    unknown = sorted(set(inference) - _INFERENCE)
    if unknown:
        raise Invalid(f"inferenceConfig: extraneous key [{unknown[0]}] is not permitted")
    if "maxTokens" in inference and (
        not isinstance(inference["maxTokens"], int) or inference["maxTokens"] < 1
    ):
        raise Invalid("inferenceConfig.maxTokens: must be at least 1")
    config = body.get("toolConfig")
    if config is not None:
        _check_tool_config(config)
    elif has_tool_blocks:
        raise Invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )


def _check_block(block: Any, where: str, role: str, calls: set[str]) -> bool:
    """Check one content block; True when it is a toolUse or toolResult."""
    if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in _CONTENT:
        raise Invalid(f"{where}: a content block has exactly one known member")
    kind, value = next(iter(block.items()))
    if kind == "text" and (not isinstance(value, str) or not value.strip()):
        raise Invalid(f"{where}.text: The text field in the ContentBlock object is blank.")
    if kind == "image":
        if value.get("format") not in _IMAGE_FORMATS:
            raise Invalid(f"{where}.image.format: must be one of png, jpeg, gif, webp")
        source = value.get("source") or {}
        if "bytes" in source:
            try:
                base64.b64decode(source["bytes"], validate=True)
            except (binascii.Error, TypeError) as exc:
                raise Invalid(f"{where}.image.source.bytes: not base64") from exc
        elif "s3Location" not in source:
            raise Invalid(f"{where}.image.source: bytes or s3Location is required")
    if kind == "toolUse":
        if role != "assistant" or not {"toolUseId", "name", "input"} <= set(value):
            raise Invalid(f"{where}.toolUse: toolUseId, name and input, in an assistant turn")
        calls.add(value["toolUseId"])
        return True
    if kind == "toolResult":
        if role != "user" or value.get("toolUseId") not in calls:
            raise Invalid(
                f"{where}.toolResult: the toolUseId does not match a toolUse of a previous turn"
            )
        if not isinstance(value.get("content"), list):
            raise Invalid(f"{where}.toolResult.content: must be a list")
        return True
    return False


def _check_tool_config(config: dict[str, Any]) -> None:
    tools = config.get("tools")
    if not isinstance(tools, list) or not tools:
        raise Invalid("toolConfig.tools: must be a non-empty list")
    names = set()
    for index, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if spec is None:
            if isinstance(tool, dict) and "cachePoint" in tool:
                continue
            raise Invalid(f"toolConfig.tools.{index}: toolSpec is required")
        if not _TOOL_NAME.match(str(spec.get("name", ""))):
            raise Invalid(f"toolConfig.tools.{index}.toolSpec.name: must match [a-zA-Z0-9_-]+")
        if "description" in spec and not spec["description"]:
            raise Invalid(f"toolConfig.tools.{index}.toolSpec.description: must not be empty")
        if not isinstance((spec.get("inputSchema") or {}).get("json"), dict):
            raise Invalid(f"toolConfig.tools.{index}.toolSpec.inputSchema.json: must be an object")
        names.add(spec["name"])
    choice = config.get("toolChoice")
    if choice is not None:
        if (
            not isinstance(choice, dict)
            or len(choice) != 1
            or next(iter(choice)) not in ("auto", "any", "tool")
        ):
            raise Invalid("toolConfig.toolChoice: exactly one of auto, any, tool")
        if "tool" in choice and choice["tool"].get("name") not in names:
            raise Invalid("toolConfig.toolChoice.tool.name: names no declared tool")


def _text_of(blocks: list[dict[str, Any]]) -> str:
    return "".join(str(b["text"]) for b in blocks if "text" in b)


def _pad() -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[: 1 + uuid.uuid4().int % 40]


class BedrockFormat:
    stream_content_type = STREAM_CONTENT_TYPE
    _ERRORS: ClassVar[dict[int, str]] = {
        400: "ValidationException",
        401: "UnrecognizedClientException",
        403: "AccessDeniedException",
        404: "ResourceNotFoundException",
        408: "ModelTimeoutException",
        424: "ModelErrorException",
        429: "ThrottlingException",
        500: "InternalServerException",
        503: "ServiceUnavailableException",
    }

    def read(self, body: dict[str, Any], path_model: str | None) -> Parsed:
        try:
            check_converse(body)
        except Invalid:
            raise
        except (AttributeError, KeyError, TypeError) as exc:
            raise Invalid(f"Malformed input request: {exc}") from exc
        messages = body["messages"]
        last = messages[-1]["content"]
        results = [b["toolResult"] for b in last if "toolResult" in b]
        tool_result = None
        if results:
            content = results[-1]["content"]
            tool_result = _text_of(content) or json.dumps(content[0].get("json")) if content else ""
        user_text = next(
            (
                _text_of(m["content"])
                for m in reversed(messages)
                if m["role"] == "user" and _text_of(m["content"])
            ),
            "",
        )
        config = body.get("toolConfig") or {}
        tools = [
            {"name": t["toolSpec"]["name"], "schema": t["toolSpec"]["inputSchema"]["json"]}
            for t in config.get("tools") or []
            if "toolSpec" in t
        ]
        choice = config.get("toolChoice") or {}
        conv = Conversation(
            last_user_text=user_text,
            prompt_words=sum(count_words(_text_of(m["content"])) for m in messages)
            + count_words(_text_of(body.get("system") or [])),
            tools=tools,
            forced_tool=(choice.get("tool") or {}).get("name"),
            tool_result=tool_result,
            json_schema=None,
            json_mode=False,
        )
        return Parsed(conv, path_model or "", False, True)

    def _calls(self, parsed: Parsed, answer: Answer) -> list[tuple[str, str, dict[str, Any]]]:
        """(toolUseId, name, input) for each call the answer makes."""
        if not answer.tool_name:
            return []
        calls = [(answer.tool_name, answer.tool_args or {})]
        if parsed.parallel_tools:
            text = parsed.conversation.last_user_text
            calls += [
                (tool["name"], example_for(tool["schema"], text))
                for tool in parsed.conversation.tools
                if tool["name"] != answer.tool_name
            ]
        return [("tooluse_" + uuid.uuid4().hex[:22], name, args) for name, args in calls]

    def _usage(self, parsed: Parsed, answer: Answer) -> dict[str, int]:
        prompt = parsed.conversation.prompt_words
        completion = max(1, len(answer.words))
        return {
            "inputTokens": prompt,
            "outputTokens": completion,
            "totalTokens": prompt + completion,
        }

    def complete(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        calls = self._calls(parsed, answer)
        if calls:
            content: list[dict[str, Any]] = [
                {"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in calls
            ]
        else:
            content = [{"text": answer.text or ""}]
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use" if calls else "end_turn",
            "usage": self._usage(parsed, answer),
            "metrics": {"latencyMs": 12},
        }

    @staticmethod
    def _event(kind: str, payload: dict[str, Any]) -> bytes:
        body = json.dumps({**payload, "p": _pad()}, separators=(",", ":")).encode()
        headers = {
            ":event-type": kind,
            ":content-type": "application/json",
            ":message-type": "event",
        }
        return event_frame(headers, body)

    def frames(self, parsed: Parsed, answer: Answer) -> list[bytes]:
        frames = [self._event("messageStart", {"role": "assistant"})]
        calls = self._calls(parsed, answer)
        for index, (call_id, name, args) in enumerate(calls):
            start = {"toolUse": {"toolUseId": call_id, "name": name}}
            frames.append(
                self._event("contentBlockStart", {"contentBlockIndex": index, "start": start})
            )
            text = tool_input_json(args)
            for at in range(0, len(text), TOOL_INPUT_PIECE):
                piece = {"toolUse": {"input": text[at : at + TOOL_INPUT_PIECE]}}
                frames.append(
                    self._event("contentBlockDelta", {"contentBlockIndex": index, "delta": piece})
                )
            frames.append(self._event("contentBlockStop", {"contentBlockIndex": index}))
        if not calls:
            for word in answer.words:
                frames.append(
                    self._event(
                        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}}
                    )
                )
            frames.append(self._event("contentBlockStop", {"contentBlockIndex": 0}))
        frames.append(
            self._event("messageStop", {"stopReason": "tool_use" if calls else "end_turn"})
        )
        frames.append(
            self._event(
                "metadata", {"usage": self._usage(parsed, answer), "metrics": {"latencyMs": 12}}
            )
        )
        return frames

    def error_type(self, status: int) -> str:
        return self._ERRORS.get(
            status, "InternalServerException" if status >= 500 else "ValidationException"
        )

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {"message": message}

    def error_headers(self, status: int, error: str | None = None) -> dict[str, str]:
        name = error or self.error_type(status)
        return {
            "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": str(uuid.uuid4()),
        }

    def error_frame(self, message: str) -> bytes:
        headers = {
            ":exception-type": "modelStreamErrorException",
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        payload = {"message": message, "originalStatusCode": 529, "originalMessage": message}
        return event_frame(headers, json.dumps(payload).encode())

    def malformed_frame(self) -> bytes:
        return corrupt(
            self._event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
        )


def tool_input_json(args: dict[str, Any]) -> str:
    """The exact JSON text the fake streams as a call's input (tests compare to it)."""
    return json.dumps(args, separators=(",", ":"))
