"""Amazon Bedrock's Converse wire format, as the fake upstream speaks it.

Built from the Bedrock Runtime API reference (Converse, ConverseStream, their shapes and
errors). Requests are checked as Bedrock checks them (``check_converse``): the known
top-level fields only, ``messages`` alternating from a user turn, each content block one
known member, images in a known format with base64 bytes, documents in one of the nine
formats with a ``name`` of Bedrock's characters (letters, digits, single spaces, hyphens,
parentheses, square brackets; 1 to 200) that no other document of the request has and a
source of non-empty base64 ``bytes`` (or ``s3Location``, ``text``, ``content``), tool
names and schemas, ``toolUse`` / ``toolResult`` only with a ``toolConfig`` and each result
answering a call (its ``status``, when sent, ``success`` or ``error``, an error's content
not empty), and ``inferenceConfig`` holding only its four fields. ``cachePoint`` blocks
(in messages, ``system`` and ``toolConfig.tools``) hold ``type: "default"`` and at most a
``ttl`` of ``5m`` or ``1h``, and never open their list. ``reasoningContent`` is one of
``reasoningText`` (text, signature) or base64 ``redactedContent``, in assistant turns.
The fake model is a Claude: ``additionalModelRequestFields.thinking`` is checked as Claude
checks it (a budget of at least 1024, below ``maxTokens``), and with thinking enabled
every assistant turn that used a tool must open with the signed reasoning that produced
it, its signature intact, as Claude demands. A refusal is a 400 ``ValidationException``
in AWS's shape: ``{"message"}`` with the name in ``x-amzn-ErrorType``.

Answers: ``output.message.content`` blocks, ``stopReason``, ``usage`` and ``metrics``;
streams are event-stream frames (``aws.event_frame``) with the ``p`` padding field real
Bedrock adds to each event. Tool input is streamed in pieces of a few bytes, so a
translation that mishandles split JSON fails. With ``Behaviour.parallel_tools`` every
offered tool is called in one turn. With thinking enabled (or ``Behaviour.reasoning``)
the answer opens with a ``reasoningContent`` block signed with ``formats.signature_of``,
streamed as text deltas then one signature delta. Prompt caching is the Anthropic fake's:
the prompt up to the last cachePoint (tools, then system, then messages) is hashed, its
first sight reported as ``cacheWriteInputTokens``, a repeat as ``cacheReadInputTokens``
(one token a word; ``inputTokens`` the rest); without a cachePoint neither appears.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from typing import Any, ClassVar

from parley.testing.aws import corrupt, event_frame
from parley.testing.formats import Parsed, signature_of
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
_DOCUMENT_FORMATS = frozenset({"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"})
_DOCUMENT_FIELDS = frozenset({"format", "name", "source", "context", "citations"})
_DOCUMENT_SOURCES = frozenset({"bytes", "s3Location", "text", "content"})
_DOCUMENT_NAME = re.compile(r"^(?!.*  )[A-Za-z0-9 ()\[\]-]{1,200}$")
_TOOL_RESULT_FIELDS = frozenset({"toolUseId", "content", "status", "type"})
_TOOL_RESULT_STATUSES = frozenset({"success", "error"})
_CACHE_TTLS = frozenset({"5m", "1h"})
_THINKING_TYPES = frozenset({"enabled", "disabled", "adaptive"})


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
    documents: set[str] = set()
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
            if "document" in block:
                _check_document_name(block["document"]["name"], documents)
            if "cachePoint" in block:
                _check_cache_point(block["cachePoint"], where, first=block_index == 0)
    for index, block in enumerate(body.get("system") or []):
        if (
            not isinstance(block, dict)
            or len(block) != 1
            or not (block.get("text") or "cachePoint" in block)
        ):
            raise Invalid(f"system.{index}: must be one text (non-blank) or cachePoint member")
        if "cachePoint" in block:
            _check_cache_point(block["cachePoint"], f"system.{index}", first=index == 0)
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
    if thinking_enabled(body):
        _check_thinking_turns(messages)


def thinking_enabled(body: dict[str, Any]) -> bool:
    """Whether the request turns Claude's thinking on, its ``thinking`` checked as Claude
    checks it (a budget of at least 1024 tokens, below ``maxTokens``)."""
    extra = body.get("additionalModelRequestFields")
    if extra is None:
        return False
    if not isinstance(extra, dict):
        raise Invalid("additionalModelRequestFields: must be an object")
    thinking = extra.get("thinking")
    if thinking is None:
        return False
    if not isinstance(thinking, dict) or thinking.get("type") not in _THINKING_TYPES:
        raise Invalid("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
    if thinking["type"] != "enabled":
        return False
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise Invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    cap = (body.get("inferenceConfig") or {}).get("maxTokens")
    if isinstance(cap, int) and cap <= budget:
        raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    return True


def _check_cache_point(value: Any, where: str, *, first: bool) -> None:
    if first:
        raise Invalid(f"{where}: a cachePoint cannot be the first block; it marks what precedes it")
    if (
        not isinstance(value, dict)
        or value.get("type") != "default"
        or set(value) - {"type", "ttl"}
        or ("ttl" in value and value["ttl"] not in _CACHE_TTLS)
    ):
        raise Invalid(f"{where}.cachePoint: type must be default (and ttl, if set, 5m or 1h)")


def _check_thinking_turns(messages: list[dict[str, Any]]) -> None:
    """As Claude does with thinking on: an assistant turn that used a tool opens with the
    reasoning that produced it, signed, the signature unchanged."""
    for position, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        blocks = message["content"]
        for block in blocks:
            text = (block.get("reasoningContent") or {}).get("reasoningText")
            if text is not None and text.get("signature") != signature_of(text.get("text", "")):
                raise Invalid(f"messages.{position}: invalid signature in reasoning block")
        if any("toolUse" in b for b in blocks) and "reasoningContent" not in blocks[0]:
            raise Invalid(
                f"messages.{position}.content.0: Expected `thinking` or `redacted_thinking`, "
                f"but found `{next(iter(blocks[0]))}`. When `thinking` is enabled, a final "
                "`assistant` message must start with a thinking block."
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
    if kind == "document":
        _check_document(value, where)
    if kind == "reasoningContent":
        _check_reasoning(value, where, role)
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
        _check_tool_result(value, where)
        return True
    return False


def _check_tool_result(value: dict[str, Any], where: str) -> None:
    unknown = sorted(set(value) - _TOOL_RESULT_FIELDS)
    if unknown:
        raise Invalid(f"{where}.toolResult: extraneous key [{unknown[0]}] is not permitted")
    if not isinstance(value.get("content"), list):
        raise Invalid(f"{where}.toolResult.content: must be a list")
    status = value.get("status")
    if status is not None and status not in _TOOL_RESULT_STATUSES:
        raise Invalid(
            f"{where}.toolResult.status: Member must satisfy enum value set: [success, error]"
        )
    if status == "error" and not value["content"]:
        raise Invalid(f"{where}.toolResult: content cannot be empty when status is error")


def _check_document(value: Any, where: str) -> None:
    """A ``document`` block as Bedrock checks it: known fields, one of the nine formats, a
    name of the allowed characters, one source member (base64 bytes not empty)."""
    if not isinstance(value, dict) or set(value) - _DOCUMENT_FIELDS:
        raise Invalid(f"{where}.document: only format, name, source, context and citations")
    source = value.get("source")
    if not isinstance(source, dict) or len(source) != 1 or not set(source) <= _DOCUMENT_SOURCES:
        raise Invalid(f"{where}.document.source: exactly one of bytes, s3Location, text, content")
    document_format = value.get("format")
    needs_format = "bytes" in source or "s3Location" in source
    if (document_format is not None or needs_format) and document_format not in _DOCUMENT_FORMATS:
        raise Invalid(
            f"{where}.document.format: must be one of pdf, csv, doc, docx, xls, xlsx, html, txt, md"
        )
    if "bytes" in source:
        try:
            raw = base64.b64decode(source["bytes"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise Invalid(f"{where}.document.source.bytes: not base64") from exc
        if not raw:
            raise Invalid(f"{where}.document.source.bytes: must not be empty")
    name = value.get("name")
    if not isinstance(name, str) or not _DOCUMENT_NAME.match(name):
        raise Invalid(
            "The document file name can only hold letters, digits, single spaces, hyphens, "
            "parentheses and square brackets (1 to 200 of them). Rename the document and "
            "retry your request."
        )


def _check_document_name(name: str, seen: set[str]) -> None:
    if name in seen:
        raise Invalid(
            "Messages can't hold two documents of the same name. Rename the document and "
            "retry your request."
        )
    seen.add(name)


def _check_reasoning(value: Any, where: str, role: str) -> None:
    """A ``reasoningContent`` union: ``reasoningText`` (text, optional signature) or
    ``redactedContent`` (base64 bytes), only in an assistant turn."""
    if role != "assistant":
        raise Invalid(f"{where}.reasoningContent: only an assistant turn can hold reasoning")
    if not isinstance(value, dict) or len(value) != 1:
        raise Invalid(f"{where}.reasoningContent: exactly one of reasoningText, redactedContent")
    if "redactedContent" in value:
        try:
            base64.b64decode(value["redactedContent"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise Invalid(f"{where}.reasoningContent.redactedContent: not base64") from exc
        return
    text = value.get("reasoningText")
    if (
        not isinstance(text, dict)
        or not isinstance(text.get("text"), str)
        or set(text) - {"text", "signature"}
        or not isinstance(text.get("signature", ""), str)
    ):
        raise Invalid(f"{where}.reasoningContent.reasoningText: text and an optional signature")


def _check_tool_config(config: dict[str, Any]) -> None:
    tools = config.get("tools")
    if not isinstance(tools, list) or not tools:
        raise Invalid("toolConfig.tools: must be a non-empty list")
    names = set()
    for index, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if spec is None:
            if isinstance(tool, dict) and set(tool) == {"cachePoint"}:
                _check_cache_point(
                    tool["cachePoint"], f"toolConfig.tools.{index}", first=index == 0
                )
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
            thinking=thinking_enabled(body),
        )
        parsed = Parsed(conv, path_model or "", False, True)
        parsed.cache_key, parsed.cache_words = _cache_prefix(body)
        return parsed

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
        """Words as tokens; thinking counts as output (Bedrock reports no reasoning count),
        the cached prefix apart from ``inputTokens`` and inside ``totalTokens``."""
        prompt = parsed.conversation.prompt_words
        completion = max(1, len(answer.words)) + count_words(answer.reasoning or "")
        usage = {
            "inputTokens": prompt - parsed.cache_words,
            "outputTokens": completion,
            "totalTokens": prompt + completion,
        }
        if parsed.cache_key is not None:
            cached = parsed.cache_words
            usage["cacheReadInputTokens"] = cached if parsed.cache_hit else 0
            usage["cacheWriteInputTokens"] = 0 if parsed.cache_hit else cached
        return usage

    @staticmethod
    def _reasoning(answer: Answer) -> dict[str, Any] | None:
        if answer.reasoning is None:
            return None
        text = {"text": answer.reasoning, "signature": signature_of(answer.reasoning)}
        return {"reasoningText": text}

    def complete(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        calls = self._calls(parsed, answer)
        content: list[dict[str, Any]] = []
        if (reasoning := self._reasoning(answer)) is not None:
            content.append({"reasoningContent": reasoning})
        if calls:
            content += [{"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in calls]
        else:
            content.append({"text": answer.text or ""})
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

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return self._event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})

    def frames(self, parsed: Parsed, answer: Answer) -> list[bytes]:
        frames = [self._event("messageStart", {"role": "assistant"})]
        first = 0  # the content block index of the answer's first text or tool call
        if (reasoning := self._reasoning(answer)) is not None:
            signed = reasoning["reasoningText"]
            frames += [
                self._block_delta(0, {"reasoningContent": {"text": word}})
                for word in Answer(signed["text"]).words
            ]
            signature = {"reasoningContent": {"signature": signed["signature"]}}
            frames.append(self._block_delta(0, signature))
            frames.append(self._event("contentBlockStop", {"contentBlockIndex": 0}))
            first = 1
        calls = self._calls(parsed, answer)
        for index, (call_id, name, args) in enumerate(calls, start=first):
            start = {"toolUse": {"toolUseId": call_id, "name": name}}
            frames.append(
                self._event("contentBlockStart", {"contentBlockIndex": index, "start": start})
            )
            input_json = tool_input_json(args)
            for at in range(0, len(input_json), TOOL_INPUT_PIECE):
                piece = {"toolUse": {"input": input_json[at : at + TOOL_INPUT_PIECE]}}
                frames.append(self._block_delta(index, piece))
            frames.append(self._event("contentBlockStop", {"contentBlockIndex": index}))
        if not calls:
            frames += [self._block_delta(first, {"text": word}) for word in answer.words]
            frames.append(self._event("contentBlockStop", {"contentBlockIndex": first}))
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


def _cache_prefix(body: dict[str, Any]) -> tuple[str | None, int]:
    """The prompt up to its last cachePoint (tools, then system, then messages: the order
    Claude caches a prefix in), hashed, and its words: the tokens the fake reports as
    written to or read from the cache. (None, 0) without a cachePoint."""
    parts: list[Any] = list((body.get("toolConfig") or {}).get("tools") or [])
    parts += body.get("system") or []
    for message in body["messages"]:
        parts += message["content"]
    key: str | None = None
    words = cached = 0
    for at, part in enumerate(parts):
        words += count_words(str(part["text"])) if "text" in part else 0
        if "cachePoint" in part:
            key = hashlib.sha256(json.dumps(parts[: at + 1], sort_keys=True).encode()).hexdigest()
            cached = words
    return key, cached
