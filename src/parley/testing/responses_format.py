"""OpenAI's Responses API (``POST /v1/responses``), as the fake upstream speaks it.

Built from OpenAI's published reference: input as a string or items (``message``,
``function_call``, ``function_call_output``), flat function tools, ``text.format``, the
Response object (``output`` items, ``usage`` with ``input_tokens`` / ``output_tokens``)
and the streaming event sequence with its ``sequence_number``. Built-in tools
(``web_search`` and the like) are accepted, as the real API accepts them, and recorded in
``fake.calls`` for tests to see that they arrived; the fake's answers never use them.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, ClassVar

from parley.testing.formats import Parsed
from parley.testing.openai_rules import Rejected
from parley.testing.scenario import Answer, Conversation, count_words


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _pieces(text: str, count: int = 5) -> list[str]:
    """Arguments split into ``count`` deltas (fewer for short text), as OpenAI streams."""
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def check_responses(body: dict[str, Any]) -> None:
    """What the real API refuses first: a missing model or input, a Chat Completions
    body sent here, a tool without its type, a function tool without its name."""

    def refuse(message: str, param: str | None) -> None:
        raise Rejected(message, param)

    if "messages" in body:
        refuse("Unrecognized request argument supplied: messages", None)
    if not body.get("model"):
        refuse("Missing required parameter: 'model'.", "model")
    if body.get("input") is None and body.get("previous_response_id") is None:
        refuse("Missing required parameter: 'input'.", "input")
    for index, tool in enumerate(body.get("tools") or []):
        if "type" not in tool:
            refuse(f"Missing required parameter: 'tools[{index}].type'.", f"tools[{index}].type")
        if tool["type"] == "function" and not tool.get("name"):
            refuse(f"Missing required parameter: 'tools[{index}].name'.", f"tools[{index}].name")


class ResponsesFormat:
    _TYPES: ClassVar[dict[int, str]] = {429: "rate_limit_exceeded"}

    def read(self, body: dict[str, Any], path_model: str | None) -> Parsed:
        raw = body.get("input")
        items: list[dict[str, Any]] = (
            [{"type": "message", "role": "user", "content": raw}]
            if isinstance(raw, str)
            else list(raw or [])
        )
        messages = [i for i in items if i.get("type", "message") == "message"]
        users = [m for m in messages if m.get("role") == "user"]
        last = items[-1] if items else {}
        tool_result = None
        if last.get("type") == "function_call_output":
            tool_result = _text(last.get("output"))
        tools = [
            {"name": t["name"], "schema": t.get("parameters")}
            for t in body.get("tools") or []
            if t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        forced = (
            choice.get("name")
            if isinstance(choice, dict) and choice.get("type") == "function"
            else None
        )
        fmt = (body.get("text") or {}).get("format") or {}
        words = sum(count_words(_text(m.get("content"))) for m in messages)
        words += count_words(body.get("instructions") or "")
        conv = Conversation(
            last_user_text=_text(users[-1]["content"]) if users else "",
            prompt_words=words,
            tools=tools,
            forced_tool=forced,
            tool_result=tool_result,
            json_schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
            json_mode=fmt.get("type") in ("json_object", "json_schema"),
            tools_disabled=choice == "none",
        )
        parsed = Parsed(conv, path_model or body["model"], bool(body.get("stream")), True)
        self._body = body
        return parsed

    def _usage(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        reasoning = count_words(answer.reasoning or "")
        output = max(1, len(answer.words)) + reasoning
        prompt = parsed.conversation.prompt_words
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + output,
        }

    def _envelope(self, parsed: Parsed, status: str) -> dict[str, Any]:
        body = self._body
        return {
            "id": _id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": parsed.model,
            "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": None,
            "user": None,
            "metadata": body.get("metadata") or {},
        }

    @staticmethod
    def _output(answer: Answer, ids: dict[str, str]) -> list[dict[str, Any]]:
        output: list[dict[str, Any]] = []
        if answer.reasoning is not None:
            output.append(
                {
                    "type": "reasoning",
                    "id": ids["rs"],
                    "summary": [{"type": "summary_text", "text": answer.reasoning}],
                }
            )
        if answer.tool_name:
            output.append(
                {
                    "type": "function_call",
                    "id": ids["fc"],
                    "call_id": ids["call"],
                    "name": answer.tool_name,
                    "arguments": json.dumps(answer.tool_args),
                    "status": "completed",
                }
            )
        else:
            output.append(
                {
                    "type": "message",
                    "id": ids["msg"],
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_text",
                            "text": answer.text or "",
                            "annotations": [],
                            "logprobs": [],
                        }
                    ],
                }
            )
        return output

    @staticmethod
    def _ids() -> dict[str, str]:
        return {p: _id(p) for p in ("rs", "fc", "call", "msg")}

    def complete(self, parsed: Parsed, answer: Answer) -> dict[str, Any]:
        response = self._envelope(parsed, "completed")
        response["output"] = self._output(answer, self._ids())
        response["usage"] = self._usage(parsed, answer)
        return response

    def frames(self, parsed: Parsed, answer: Answer) -> list[bytes]:
        ids = self._ids()
        response = self._envelope(parsed, "in_progress")
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": dict(response)},
            {"type": "response.in_progress", "response": dict(response)},
        ]
        final = self._output(answer, ids)
        for index, item in enumerate(final):
            events += self._item_events(index, item)
        response.update(status="completed", output=final, usage=self._usage(parsed, answer))
        events.append({"type": "response.completed", "response": response})
        return [_frame(event, n) for n, event in enumerate(events)]

    @staticmethod
    def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item["type"]
        if kind == "reasoning":
            return [
                {"type": "response.output_item.added", "output_index": index, "item": item},
                {"type": "response.output_item.done", "output_index": index, "item": item},
            ]
        if kind == "function_call":
            added = {**item, "arguments": "", "status": "in_progress"}
            events: list[dict[str, Any]] = [
                {"type": "response.output_item.added", "output_index": index, "item": added}
            ]
            events += [
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": piece,
                }
                for piece in _pieces(item["arguments"])
            ]
            events += [
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "name": item["name"],
                    "arguments": item["arguments"],
                },
                {"type": "response.output_item.done", "output_index": index, "item": item},
            ]
            return events
        part = item["content"][0]
        text = part["text"]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        empty_part = {**part, "text": ""}
        events = [
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "content": []},
            },
            {"type": "response.content_part.added", **where, "part": empty_part},
        ]
        events += [
            {"type": "response.output_text.delta", **where, "delta": word, "logprobs": []}
            for word in Answer(text).words
        ]
        events += [
            {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **where, "part": part},
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
        return events

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {
            "error": {
                "message": message,
                "type": self._TYPES.get(
                    status, "invalid_request_error" if status < 500 else "server_error"
                ),
                "param": None,
                "code": None,
            }
        }

    def error_frame(self, message: str) -> bytes:
        return _frame(
            {"type": "error", "code": "server_error", "message": message, "param": None}, 0
        )


def _frame(event: dict[str, Any], sequence: int) -> bytes:
    event = {**event, "sequence_number": sequence}
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
