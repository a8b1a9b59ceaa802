"""Chat Completions answers told as Responses objects: the envelope (echoing the request's
settings, as OpenAI's does), output items, status and usage.

Reasoning that came as thinking blocks (Anthropic, Claude on Bedrock) is a ``reasoning``
item with a summary and ``encrypted_content`` (``reasoning.py``); reasoning that came as
text alone (``reasoning_content``: vLLM, llama.cpp, DeepSeek, Gemini) is one with a
``reasoning_text`` part in its ``content`` (raw reasoning text, in OpenAI's reference).

``finish_reason`` maps to ``status``: ``length`` is ``incomplete`` with
``incomplete_details.reason = "max_output_tokens"``, ``content_filter`` is ``incomplete``
with reason ``content_filter``; anything else is ``completed``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from parley.api.responses.reasoning import summaries, thinking_item
from parley.schema.chat import ChatCompletion, Usage
from parley.schema.responses import ResponsesRequest

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class _RandomPool:
    """OS randomness drawn 4 KiB at a time, handed out 16 bytes per id. A response takes
    three or more ids, and one ``getrandom`` call each (uuid4: a syscall plus an object)
    showed as 9% of a loaded gateway's time; these bytes still come from the OS's
    CSPRNG. Only the event loop's thread draws from it."""

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0
        os.register_at_fork(after_in_child=self.forget)  # a worker must not reuse them

    def forget(self) -> None:
        self._bytes, self._at = b"", 0

    def hex16(self) -> str:
        if self._at >= len(self._bytes):
            self._bytes, self._at = os.urandom(4096), 0
        start = self._at
        self._at += 16
        return self._bytes[start : self._at].hex()


_random = _RandomPool()


def new_id(prefix: str) -> str:
    """``prefix_`` and 128 random bits in hex, as a uuid4's."""
    return f"{prefix}_{_random.hex16()}"


def envelope(
    request: ResponsesRequest, response_id: str, *, store: bool, created_at: int | None = None
) -> dict[str, Any]:
    """A response object before its output: status ``in_progress``, no usage."""
    text: dict[str, Any] = {"format": {"type": "text"}}
    if request.text:
        text = {"format": {"type": "text"}, **request.text}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": (
            True if request.parallel_tool_calls is None else request.parallel_tool_calls
        ),
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": (request.reasoning or {}).get("effort"),
            "summary": (request.reasoning or {}).get("summary"),
        },
        "store": store,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": text,
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation or "disabled",
        "usage": None,
        "user": request.user,
        "metadata": request.metadata or {},
    }


def usage_of(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    prompt = usage.prompt_tokens_details if isinstance(usage.prompt_tokens_details, dict) else {}
    completion = (
        usage.completion_tokens_details if isinstance(usage.completion_tokens_details, dict) else {}
    )
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": int(prompt.get("cached_tokens") or 0)},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": int(completion.get("reasoning_tokens") or 0)},
        "total_tokens": usage.total_tokens,
    }


def finish(response: dict[str, Any], finish_reason: str | None) -> None:
    """Set status and incomplete_details from the Chat Completions finish reason."""
    reason = _INCOMPLETE.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }


def message_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def from_completion(
    request: ResponsesRequest, completion: ChatCompletion, response_id: str, *, store: bool
) -> dict[str, Any]:
    response = envelope(request, response_id, store=store)
    choice = completion.choices[0] if completion.choices else None
    finish(response, choice.finish_reason if choice else None)
    item_status = "incomplete" if response["status"] == "incomplete" else "completed"
    output: list[dict[str, Any]] = response["output"]
    if choice is not None:
        message = choice.message
        blocks = message.thinking_blocks
        if isinstance(blocks, list) and blocks:  # Claude's: a summary, the blocks kept
            output.append(thinking_item(new_id("rs"), summaries(blocks), blocks, "completed"))
        elif isinstance(message.reasoning_content, str) and message.reasoning_content:
            output.append(reasoning_item(new_id("rs"), message.reasoning_content))
        content: list[dict[str, Any]] = []
        if message.content:
            content.append(text_part(message.content))
        if message.refusal:
            content.append({"type": "refusal", "refusal": message.refusal})
        if content or not message.tool_calls:
            output.append(message_item(new_id("msg"), item_status, content or [text_part("")]))
        for call in message.tool_calls or []:
            output.append(
                call_item(
                    new_id("fc"), call.id, call.function.name, call.function.arguments, "completed"
                )
            )
    response["usage"] = usage_of(completion.usage)
    return response
