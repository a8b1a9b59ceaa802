"""Each provider's documented wire format, as the fake upstream speaks it.

A format reads a request body into a provider-neutral ``Conversation`` and renders an
``Answer`` as a complete response, as a list of SSE frames, or as an error envelope.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from parley.testing.scenario import Answer, Conversation, count_words


@dataclass(slots=True)
class Parsed:
    conversation: Conversation
    model: str
    stream: bool
    include_usage: bool
    n: int = 1
    sparse: bool = False
    """Leave out id, created, model and choices' index (OpenAI format)."""
    parallel_tools: bool = False
    """Call every offered tool, not only the first (Bedrock format)."""
    cache_key: str | None = None
    """Anthropic format: the prompt up to its last ``cache_control`` breakpoint, hashed;
    the fake remembers which it saw (a later request with it reads from the cache)."""
    cache_words: int = 0
    cache_hit: bool = False


def _frame(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _split_args(args: dict[str, Any], fine: bool = False) -> list[str]:
    """The arguments' JSON in pieces, as upstreams stream them: two halves, or (``fine``)
    three characters at a time."""
    text = json.dumps(args, separators=(",", ":"))
    if fine:
        return [text[i : i + 3] for i in range(0, len(text), 3)]
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


def signature_of(thinking: str) -> str:
    """The fake's signature over a thinking block's text (the real one is opaque too)."""
    return "sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


class WireFormat(Protocol):
    def read(self, body: dict[str, Any], path_model: str | None) -> Parsed: ...
    def complete(self, parsed: Parsed, answer: Answer) -> dict[str, Any]: ...
    def frames(self, parsed: Parsed, answer: Answer) -> list[bytes]: ...
    def error(self, status: int, message: str) -> dict[str, Any]: ...
    def error_frame(self, message: str) -> bytes: ...


class OpenAIFormat:
    _TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_exceeded",
    }

    def read(self, body: dict[str, Any], path_model: str | None) -> Parsed:
        messages = body["messages"]
        last_user = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
        tool_result = _text(messages[-1].get("content")) if messages[-1]["role"] == "tool" else None
        tools = [
            {"name": t["function"]["name"], "schema": t["function"].get("parameters")}
            for t in body.get("tools") or []
        ]
        choice = body.get("tool_choice")
        forced = choice["function"]["name"] if isinstance(choice, dict) else None
        fmt = body.get("response_format") or {}
        schema = (
            (fmt.get("json_schema") or {}).get("schema")
            if fmt.get("type") == "json_schema"
            else None
        )
        conv = Conversation(
            last_user_text=_text(last_user["content"]),
            prompt_words=sum(count_words(_text(m.get("content"))) for m in messages),
            tools=tools,
            forced_tool=forced,
            tool_result=tool_result,
            json_schema=schema,
            json_mode=fmt.get("type") in ("json_object", "json_schema"),
            tools_disabled=choice == "none",
        )
        return Parsed(
            conv,
            path_model or body["model"],
            bool(body.get("stream")),
            bool((body.get("stream_options") or {}).get("include_usage")),
            int(body.get("n") or 1),
        )

    def _usage(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        reasoning = count_words(answer.reasoning or "")
        completion = max(1, len(answer.words)) + reasoning
        prompt = parsed.conversation.prompt_words
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            # As OpenAI sends them.
            "prompt_tokens_details": {"cached_tokens": answer.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _thin(parsed: Parsed, payload: dict[str, Any]) -> dict[str, Any]:
        """What a sparse compatible server sends: no id, created, model or index."""
        if not parsed.sparse:
            return payload
        for name in ("id", "created", "model"):
            payload.pop(name, None)
        for choice in payload.get("choices") or ():
            choice.pop("index", None)
        return payload

    def complete(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.reasoning is not None:
            message["reasoning_content"] = answer.reasoning
        finish = "stop"
        if answer.tool_name:
            message["tool_calls"] = [
                {
                    "id": "call_" + uuid.uuid4().hex[:24],
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for name, args in answer.calls
            ]
            finish = "tool_calls"
        reply = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": parsed.model,
            "choices": [
                {"index": i, "message": dict(message), "logprobs": None, "finish_reason": finish}
                for i in range(parsed.n)
            ],
            "usage": self._usage(parsed, answer),
            "system_fingerprint": "fp_fake",
        }
        return self._thin(parsed, reply)

    def frames(self, parsed: Parsed, answer: Answer) -> list[bytes]:
        base = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": parsed.model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if parsed.include_usage:
                payload["usage"] = None
            return _frame(self._thin(parsed, payload))

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if answer.reasoning is not None:
            frames += [
                chunk({"reasoning_content": word}) for word in Answer(answer.reasoning).words
            ]
        if answer.tool_name:
            # Every call starts, then their argument pieces interleave (one call: in order).
            pieces: list[tuple[int, str]] = []
            for index, (name, args) in enumerate(answer.calls):
                start = {
                    "index": index,
                    "id": "call_" + uuid.uuid4().hex[:24],
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                frames.append(chunk({"tool_calls": [start]}))
                pieces += [
                    (position * 100 + index, piece)
                    for position, piece in enumerate(_split_args(args, answer.fine_args))
                ]
            for order, piece in sorted(pieces):
                call = {"index": order % 100, "function": {"arguments": piece}}
                frames.append(chunk({"tool_calls": [call]}))
            frames.append(chunk({}, "tool_calls"))
        else:
            frames += [chunk({"content": piece}) for piece in answer.deltas]
            frames.append(chunk({}, "stop"))
        if parsed.include_usage:
            usage = {**base, "choices": [], "usage": self._usage(parsed, answer)}
            frames.append(_frame(self._thin(parsed, usage)))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def error(self, status: int, message: str) -> dict[str, Any]:
        error_type = self._TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        code = "invalid_api_key" if status == 401 else None
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}

    def error_frame(self, message: str) -> bytes:
        return _frame(self.error(500, message))


class AnthropicFormat:
    _TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }

    def read(self, body: dict[str, Any], path_model: str | None) -> Parsed:
        if "max_tokens" not in body:
            raise ValueError("max_tokens: Field required")
        messages = body["messages"]
        last = messages[-1]
        tool_result = None
        last_user_text = ""
        for message in reversed(messages):
            if message["role"] != "user":
                continue
            blocks = message["content"]
            if isinstance(blocks, str):
                last_user_text = blocks
                break
            results = [b for b in blocks if b.get("type") == "tool_result"]
            if results and message is last:
                tool_result = _text(results[-1].get("content"))
            texts = [b["text"] for b in blocks if b.get("type") == "text"]
            if texts:
                last_user_text = "".join(texts)
                break
        thinking = (body.get("thinking") or {}).get("type") == "enabled"
        if thinking:
            _check_thinking_turns(messages)
        tools = [
            {"name": t["name"], "schema": t.get("input_schema")} for t in body.get("tools") or []
        ]
        choice = body.get("tool_choice") or {}
        conv = Conversation(
            last_user_text=last_user_text,
            prompt_words=sum(count_words(_text(m["content"])) for m in messages)
            + count_words(_text(body.get("system", ""))),
            tools=tools,
            forced_tool=choice.get("name") if choice.get("type") == "tool" else None,
            tool_result=tool_result,
            json_schema=None,
            json_mode=False,
            tools_disabled=choice.get("type") == "none",
            thinking=thinking,
        )
        parsed = Parsed(conv, body["model"], bool(body.get("stream")), True)
        parsed.cache_key, parsed.cache_words = _cache_prefix(body)
        return parsed

    def _usage(self, parsed: Parsed, answer: Answer) -> dict[str, int]:
        cached = parsed.cache_words
        return {
            "input_tokens": parsed.conversation.prompt_words - cached,
            "cache_creation_input_tokens": 0 if parsed.cache_hit else cached,
            "cache_read_input_tokens": cached if parsed.cache_hit else 0,
            "output_tokens": self._output_tokens(answer),
        }

    @staticmethod
    def _output_tokens(answer: Answer) -> int:
        return max(1, len(answer.words)) + count_words(answer.reasoning or "")

    def _blocks(self, answer: Answer) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if answer.reasoning is not None:
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": answer.reasoning,
                    "signature": signature_of(answer.reasoning),
                }
            )
        if answer.tool_name:
            blocks += [
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.uuid4().hex[:24],
                    "name": name,
                    "input": args,
                }
                for name, args in answer.calls
            ]
        else:
            blocks.append({"type": "text", "text": answer.text})
        return blocks

    def complete(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        return {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": parsed.model,
            "content": self._blocks(answer),
            "stop_reason": "tool_use" if answer.tool_name else "end_turn",
            "stop_sequence": None,
            "usage": self._usage(parsed, answer),
        }

    def frames(self, parsed: Parsed, answer: Answer) -> list[bytes]:
        usage = self._usage(parsed, answer)
        message: dict[str, Any] = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": parsed.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        frames = [_frame({"type": "message_start", "message": message}, "message_start")]
        for index, block in enumerate(self._blocks(answer)):
            start, deltas = self._streamed(block, answer.fine_args, answer.delta_chars)
            frames.append(
                _frame(
                    {"type": "content_block_start", "index": index, "content_block": start},
                    "content_block_start",
                )
            )
            if index == 0:
                frames.append(_frame({"type": "ping"}, "ping"))
            frames += [
                _frame(
                    {"type": "content_block_delta", "index": index, "delta": d},
                    "content_block_delta",
                )
                for d in deltas
            ]
            frames.append(
                _frame({"type": "content_block_stop", "index": index}, "content_block_stop")
            )
        frames.append(
            _frame(
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": "tool_use" if answer.tool_name else "end_turn",
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
                "message_delta",
            )
        )
        frames.append(_frame({"type": "message_stop"}, "message_stop"))
        return frames

    @staticmethod
    def _streamed(
        block: dict[str, Any], fine: bool, delta_chars: int | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A block as its start event and its deltas."""
        if block["type"] == "thinking":
            words = Answer(block["thinking"]).words
            deltas = [{"type": "thinking_delta", "thinking": w} for w in words]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
            return {"type": "thinking", "thinking": "", "signature": ""}, deltas
        if block["type"] == "tool_use":
            pieces = _split_args(block["input"], fine)
            return {**block, "input": {}}, [
                {"type": "input_json_delta", "partial_json": p} for p in pieces
            ]
        pieces = Answer(block["text"], delta_chars=delta_chars).deltas
        return {"type": "text", "text": ""}, [{"type": "text_delta", "text": w} for w in pieces]

    def error(self, status: int, message: str) -> dict[str, Any]:
        error_type = self._TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": error_type, "message": message}}

    def error_frame(self, message: str) -> bytes:
        return _frame(self.error(529, message), "error")


def _check_thinking_turns(messages: list[dict[str, Any]]) -> None:
    """As Anthropic does with thinking on: an assistant turn that used a tool must start
    with the thinking block that produced it, its signature intact."""
    for position, message in enumerate(messages):
        blocks = message["content"]
        if message["role"] != "assistant" or isinstance(blocks, str):
            continue
        for block in blocks:
            if block.get("type") == "thinking" and block.get("signature") != signature_of(
                block.get("thinking", "")
            ):
                raise ValueError(f"messages.{position}: invalid signature in thinking block")
        uses_tool = any(b.get("type") == "tool_use" for b in blocks)
        if uses_tool and blocks[0].get("type") not in ("thinking", "redacted_thinking"):
            raise ValueError(
                f"messages.{position}.content.0.type: Expected `thinking` or "
                "`redacted_thinking`, but found `" + str(blocks[0].get("type")) + "`. When "
                "`thinking` is enabled, a final `assistant` message must start with a "
                "thinking block."
            )


def _cache_prefix(body: dict[str, Any]) -> tuple[str | None, int]:
    """The prompt up to its last cache breakpoint (tools, then system, then messages, as
    Anthropic orders the prefix): its hash and its words (the tokens the fake reports)."""
    seen: list[Any] = []
    words = 0
    key: str | None = None
    cached = 0
    system = body.get("system")
    parts: list[Any] = list(body.get("tools") or [])
    parts += system if isinstance(system, list) else ([system] if system else [])
    for message in body["messages"]:
        content = message["content"]
        parts += content if isinstance(content, list) else [content]
    for part in parts:
        seen.append(part)
        if isinstance(part, str):
            words += count_words(part)
        elif part.get("type") == "text":  # the words prompt_words counts, no others
            words += count_words(part.get("text", ""))
        if isinstance(part, dict) and part.get("cache_control"):
            key = hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()
            cached = words
    return key, cached


class GeminiFormat:
    _STATUS: ClassVar[dict[int, str]] = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }

    def read(self, body: dict[str, Any], path_model: str | None) -> Parsed:
        contents = body["contents"]
        last = contents[-1]
        tool_result = None
        responses = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
        if responses:
            response = responses[-1].get("response")
            tool_result = (
                response.get("result")
                if isinstance(response, dict) and "result" in response
                else json.dumps(response)
            )
        user_text = ""
        for content in reversed(contents):
            texts = [p["text"] for p in content["parts"] if "text" in p]
            if content.get("role", "user") == "user" and texts:
                user_text = "".join(texts)
                break
        tools = [
            {"name": d["name"], "schema": d.get("parameters")}
            for t in body.get("tools") or []
            for d in t.get("functionDeclarations", [])
        ]
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        allowed = calling.get("allowedFunctionNames") or []
        config = body.get("generationConfig") or {}
        json_mode = config.get("responseMimeType") == "application/json"
        conv = Conversation(
            last_user_text=user_text,
            prompt_words=sum(count_words(p.get("text", "")) for c in contents for p in c["parts"]),
            tools=tools,
            forced_tool=allowed[0] if calling.get("mode") == "ANY" and allowed else None,
            tool_result=str(tool_result) if tool_result is not None else None,
            json_schema=config.get("responseJsonSchema") or config.get("responseSchema"),
            json_mode=json_mode,
            tools_disabled=calling.get("mode") == "NONE",
            thinking=bool((config.get("thinkingConfig") or {}).get("includeThoughts")),
        )
        return Parsed(conv, path_model or "", False, True, int(config.get("candidateCount") or 1))

    def _usage(self, parsed: Parsed, answer: Answer) -> dict[str, int]:
        completion = max(1, len(answer.words))
        thoughts = count_words(answer.reasoning or "")
        prompt = parsed.conversation.prompt_words
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion + thoughts,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if answer.cached:
            usage["cachedContentTokenCount"] = answer.cached
        return usage

    def _parts(self, answer: Answer) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if answer.reasoning is not None:
            parts.append({"text": answer.reasoning, "thought": True})
        if answer.tool_name:
            parts += [{"functionCall": {"name": n, "args": a}} for n, a in answer.calls]
        else:
            parts.append({"text": answer.text})
        return parts

    def complete(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": self._parts(answer)},
                    "finishReason": "STOP",
                    "index": i,
                }
                for i in range(parsed.n)
            ],
            "usageMetadata": self._usage(parsed, answer),
            "modelVersion": parsed.model,
            "responseId": uuid.uuid4().hex[:20],
        }

    def frames(self, parsed: Parsed, answer: Answer) -> list[bytes]:
        response_id = uuid.uuid4().hex[:20]

        def frame(parts: list[dict[str, Any]], last: bool) -> bytes:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            payload: dict[str, Any] = {
                "candidates": [candidate],
                "modelVersion": parsed.model,
                "responseId": response_id,
            }
            if last:
                candidate["finishReason"] = "STOP"
                payload["usageMetadata"] = self._usage(parsed, answer)
            return _frame(payload)

        frames = []
        if answer.reasoning is not None:
            frames.append(frame([{"text": answer.reasoning, "thought": True}], False))
        if answer.tool_name:
            calls = [{"functionCall": {"name": n, "args": a}} for n, a in answer.calls]
            return [*frames, frame(calls, True)]
        pieces = answer.deltas or [""]
        return frames + [frame([{"text": w}], i == len(pieces) - 1) for i, w in enumerate(pieces)]

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": self._STATUS.get(status, "INTERNAL"),
            }
        }

    def error_frame(self, message: str) -> bytes:
        return _frame(self.error(503, message))
