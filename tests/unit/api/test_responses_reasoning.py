"""Thinking blocks as Responses reasoning items (``api/responses/reasoning.py``): the
``encrypted_content`` round trip, what it refuses, how a reasoning item in ``input``
becomes the assistant turn's thinking blocks (and when it is a 400), and the reasoning item
of a JSON answer and of a stream, which must be the same."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest

from parley.api.responses.reasoning import is_parleys, pack, unpack
from parley.api.responses.render import from_completion
from parley.api.responses.translate import to_chat
from parley.errors import InvalidRequest
from parley.schema.chat import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    Delta,
    FunctionCall,
    ResponseMessage,
    ThinkingBlock,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from parley.schema.responses import ResponsesRequest
from tests.unit.api.test_responses_events import _chunk, _run

REQUEST = ResponsesRequest(model="m", input="hi")
SIGNED = ThinkingBlock("thinking", thinking="Plan: call the tool. ü ✓", signature="EqQBCkYIBRgC+/=")
REDACTED = ThinkingBlock("redacted_thinking", data="RWFyZWQ=")
OPENAI_CONTENT = "gAAAAABpF0123456789abcdef=="


def test_pack_and_unpack_round_trip_byte_for_byte() -> None:
    """Signed and redacted blocks come back equal, signatures and data byte for byte
    (``+``, ``/`` and ``=`` included), from a string that is versioned, base64url and
    unpadded: it travels in JSON and URLs unescaped."""
    packed = pack([SIGNED, REDACTED])
    assert packed.startswith("parley.v1.")
    payload = packed.removeprefix("parley.v1.")
    assert "=" not in payload
    assert "+" not in payload
    assert "/" not in payload
    assert unpack(packed) == [SIGNED, REDACTED]
    assert unpack(packed)[0].signature == "EqQBCkYIBRgC+/="
    assert is_parleys(packed)
    assert not is_parleys(OPENAI_CONTENT)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (OPENAI_CONTENT, "something other than Parley"),
        ("parley.v9." + _b64(b"[]"), "another version of Parley"),
        ("parley.v1.not base64!", "not base64url"),
        ("parley.v1." + _b64(b"{not json"), "cannot be read"),
        ("parley.v1." + _b64(b'[{"type": "summary"}]'), "cannot be read"),
        ("parley.v1." + _b64(b"[]"), "no thinking blocks"),
        ("parley.v1." + _b64(b'[{"type": "thinking", "thinking": "x"}]'), "no signature"),
        ("parley.v1." + _b64(b'[{"type": "redacted_thinking"}]'), "no data"),
    ],
)
def test_unpack_refuses_what_pack_did_not_write(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        unpack(value)


def _reasoning(content: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "edited by the client"}],
    }
    if content is not None:
        item["encrypted_content"] = content
    return item


CALL = {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"}
USER = {"role": "user", "content": "Weather?"}


def test_a_reasoning_item_becomes_the_thinking_in_front_of_its_tool_calls() -> None:
    """reasoning, function_call, function_call_output: one assistant turn whose thinking
    blocks are the packed ones (never the summary's text) and whose tool call follows."""
    items = [USER, _reasoning(pack([SIGNED, REDACTED])), CALL, OUTPUT]
    translation = to_chat(REQUEST, items)
    assert translation.problems == []
    user, turn, tool = translation.chat.messages
    assert isinstance(user, UserMessage)
    assert isinstance(tool, ToolMessage)
    assert turn == AssistantMessage(
        tool_calls=[ToolCall("toolu_1", FunctionCall("get_weather", "{}"))],
        thinking_blocks=[SIGNED, REDACTED],
    )


def test_reasoning_then_a_message_then_calls_is_one_assistant_turn() -> None:
    """As an answer's output lists them: the message's text joins the turn the reasoning
    opened, and so do the calls after it."""
    message = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
    }
    items = [USER, _reasoning(pack([SIGNED])), message, CALL, OUTPUT]
    turn = to_chat(REQUEST, items).chat.messages[1]
    assert isinstance(turn, AssistantMessage)
    assert (turn.content, turn.thinking_blocks) == ("Checking.", [SIGNED])
    assert [call.id for call in turn.tool_calls or []] == ["toolu_1"]


def test_reasoning_without_encrypted_content_is_left_out() -> None:
    translation = to_chat(REQUEST, [USER, _reasoning(None), CALL, OUTPUT])
    assert translation.problems == []
    turn = translation.chat.messages[1]
    assert isinstance(turn, AssistantMessage)
    assert turn.thinking_blocks is None


def test_openai_reasoning_in_the_input_is_a_problem_for_a_translation() -> None:
    """A problem, not an error: an OpenAI deployment is sent it untouched; any other is
    refused with a 400 naming the item (OpenAI's code for content it cannot verify)."""
    translation = to_chat(REQUEST, [USER, _reasoning(OPENAI_CONTENT), CALL, OUTPUT])
    [problem] = translation.problems
    assert problem.status_code == 400
    assert problem.to_body() == {
        "error": {
            "message": problem.message,
            "type": "invalid_request_error",
            "param": "input[1].encrypted_content",
            "code": "invalid_encrypted_content",
        }
    }
    assert "'input[1]'" in problem.message
    assert "OpenAI deployment" in problem.message


def test_openai_reasoning_from_a_stored_response_is_left_out() -> None:
    """Put there by previous_response_id (Parley's own store), it is dropped, so a
    conversation begun on OpenAI may continue on another family."""
    items = [USER, _reasoning(OPENAI_CONTENT), CALL, OUTPUT]
    translation = to_chat(REQUEST, items, history=3)
    assert translation.problems == []
    turn = translation.chat.messages[1]
    assert isinstance(turn, AssistantMessage)
    assert turn.thinking_blocks is None


@pytest.mark.parametrize("history", [0, 3])
def test_a_damaged_parley_reasoning_item_is_an_error_on_any_deployment(history: int) -> None:
    damaged = pack([SIGNED])[:-4] + "!!!!"
    with pytest.raises(InvalidRequest) as caught:
        to_chat(REQUEST, [USER, _reasoning(damaged), CALL, OUTPUT], history=history)
    assert caught.value.param == "input[1].encrypted_content"
    assert caught.value.code == "invalid_encrypted_content"
    assert "not base64url" in caught.value.message


def _completion(blocks: list[ThinkingBlock]) -> ChatCompletion:
    message = ResponseMessage(
        tool_calls=[ToolCall("toolu_1", FunctionCall("get_weather", "{}"))],
        reasoning_content="".join(b.thinking or "" for b in blocks),
        thinking_blocks=blocks,
    )
    return ChatCompletion("c", 0, "m", [Choice(0, message, "tool_calls")])


UNSIGNED = ThinkingBlock("thinking", thinking="A thought with no signature.", signature="")


def test_a_json_answer_leads_with_the_thinking_as_summary_and_encrypted_content() -> None:
    """Each block's text is a summary part; the signed and redacted blocks are packed,
    and text without a signature (summary only) is not: Claude would refuse it."""
    blocks = [SIGNED, REDACTED, UNSIGNED]
    response = from_completion(REQUEST, _completion(blocks), "resp_1", store=False)
    reasoning, call = response["output"]
    assert call["type"] == "function_call"
    assert reasoning["type"] == "reasoning"
    assert reasoning["summary"] == [
        {"type": "summary_text", "text": SIGNED.thinking},
        {"type": "summary_text", "text": UNSIGNED.thinking},
    ]
    assert "content" not in reasoning
    assert unpack(reasoning["encrypted_content"]) == [SIGNED, REDACTED]
    json.dumps(response)  # plain JSON all through


def test_unsigned_thinking_alone_has_no_encrypted_content() -> None:
    reasoning = from_completion(REQUEST, _completion([UNSIGNED]), "r", store=False)["output"][0]
    assert "encrypted_content" not in reasoning
    assert reasoning["summary"] == [{"type": "summary_text", "text": UNSIGNED.thinking}]


def test_streamed_thinking_is_summary_parts_and_ends_as_the_json_answers_item() -> None:
    """Two signed blocks streamed in pieces, then a redacted one: one reasoning item,
    summary index 0 then 1, added without encrypted_content and done with the same item a
    JSON answer has (the cache replays a block whole, signature in the same delta)."""
    first, second = "Look up ", "the weather."
    chunks = [
        _chunk(Delta(role="assistant", content="")),
        _chunk(Delta(reasoning_content=first[:5])),
        _chunk(Delta(reasoning_content=first[5:])),
        _chunk(Delta(reasoning_signature="sig-one+/=")),
        _chunk(Delta(reasoning_content=second, reasoning_signature="sig-two")),
        _chunk(Delta(redacted_reasoning="RWFyZWQ=")),
        _chunk(Delta(content="Sunny.")),
        _chunk(Delta(), "stop"),
    ]
    events, finished = _run(chunks, thinking_blocks=True)  # Anthropic's, Bedrock's
    types = [e["type"] for e in events]
    reasoning_events = [
        (e["type"].removeprefix("response."), e.get("summary_index"))
        for e in events
        if e.get("output_index") == 0
    ]
    assert reasoning_events == [
        ("output_item.added", None),
        ("reasoning_summary_part.added", 0),
        ("reasoning_summary_text.delta", 0),
        ("reasoning_summary_text.delta", 0),
        ("reasoning_summary_text.done", 0),
        ("reasoning_summary_part.done", 0),
        ("reasoning_summary_part.added", 1),
        ("reasoning_summary_text.delta", 1),
        ("reasoning_summary_text.done", 1),
        ("reasoning_summary_part.done", 1),
        ("output_item.done", None),
    ]
    assert "response.reasoning_text.delta" not in types
    added = events[types.index("response.output_item.added")]["item"]
    assert added == {"type": "reasoning", "id": added["id"], "summary": [], "status": "in_progress"}
    done = events[types.index("response.output_item.done")]["item"]
    blocks = [
        ThinkingBlock("thinking", thinking=first, signature="sig-one+/="),
        ThinkingBlock("thinking", thinking=second, signature="sig-two"),
        REDACTED,
    ]
    expected = from_completion(REQUEST, _completion(blocks), "r", store=False)["output"][0]
    assert done == {**expected, "id": added["id"]}
    final = events[-1]["response"]
    assert final["output"][0] == done
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    assert finished == [final]


def test_a_replayed_block_is_told_by_its_signature() -> None:
    """A cached answer (any deployment) replays each block whole, its signature in the
    same delta: that is enough to stream it as a summary with encrypted_content."""
    replayed = Delta(reasoning_content="whole", reasoning_signature="sig-w")
    events, _ = _run([_chunk(replayed), _chunk(Delta(content="ok")), _chunk(Delta(), "stop")])
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    assert done["summary"] == [{"type": "summary_text", "text": "whole"}]
    assert unpack(done["encrypted_content"]) == [
        ThinkingBlock("thinking", thinking="whole", signature="sig-w")
    ]


def test_reasoning_text_without_signatures_still_streams_as_reasoning_text() -> None:
    """vLLM's, DeepSeek's, Gemini's reasoning_content (no thinking blocks): the
    reasoning_text part it always was, no summary, no encrypted_content."""
    events, _ = _run([_chunk(Delta(reasoning_content="hmm")), _chunk(Delta(), "stop")])
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    assert done["content"] == [{"type": "reasoning_text", "text": "hmm"}]
    assert done["summary"] == []
    assert "encrypted_content" not in done


def test_the_packed_json_is_the_canonical_blocks() -> None:
    """The payload is the blocks as Parley's schema encodes them, nothing else, so a
    later version can read it (and this one can read a later one's v1)."""
    payload = pack([SIGNED]).removeprefix("parley.v1.")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert json.loads(raw) == [msgspec.to_builtins(SIGNED)]
