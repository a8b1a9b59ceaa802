"""Claude's thinking through ``/v1/responses``, driven by the official ``openai`` SDK: a
function-tool loop with ``reasoning.effort`` against the Anthropic fake and Claude on the
Bedrock fake, each of which refuses (as the real ones do) a tool-use turn sent back
without its signed thinking block. The thinking comes out as a ``reasoning`` item whose
``encrypted_content`` carries the signature; the second turn succeeds only if that item,
sent back, reaches the upstream with the signature byte for byte. Three ways a client
continues: stateless (``store: false``, the answer's output appended to the next input, as
OpenAI documents), stateful (``previous_response_id``) and streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from parley.api.responses.reasoning import unpack
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.formats import signature_of
from tests.conftest import ParleyFactory
from tests.e2e.test_responses import WEATHER

CLAUDE = ["anthropic", "bedrock"]
QUESTION = "Weather in Oslo?"
THOUGHT = f"Thinking about: {QUESTION}"
"""The fake's thinking text for the first turn; ``signature_of(THOUGHT)`` its signature."""


@pytest.fixture
def client(parley: ParleyFactory) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=parley() + "/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def _ask(client: openai.OpenAI, family: str, **kwargs: Any) -> Any:
    return client.responses.create(
        model=family, tools=[WEATHER], reasoning={"effort": "low"}, **kwargs
    )


def _thinking_sent_back(fake: FakeUpstream, family: str) -> tuple[str, str]:
    """(text, signature) of the thinking block opening the assistant turn the upstream
    got on the last call (Bedrock: its ``reasoningContent``)."""
    body = fake.calls_to(family)[-1].body
    turn = body["messages"][1]
    assert turn["role"] == "assistant"
    first = turn["content"][0]
    if family == "bedrock":
        signed = first["reasoningContent"]["reasoningText"]
        return signed["text"], signed["signature"]
    assert first["type"] == "thinking"
    return first["thinking"], first["signature"]


def _check_first_turn(first: Any) -> Any:
    """The reasoning item leads, with the thinking as its summary and the signed block in
    its encrypted_content; the function call follows. Returns the call."""
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    reasoning = first.output[0]
    assert [(s.type, s.text) for s in reasoning.summary] == [("summary_text", THOUGHT)]
    blocks = unpack(reasoning.encrypted_content)
    assert [(b.type, b.thinking, b.signature) for b in blocks] == [
        ("thinking", THOUGHT, signature_of(THOUGHT))  # as the fake signed it on turn 1
    ]
    return first.output[1]


def _check_second_turn(second: Any, fake: FakeUpstream, family: str) -> None:
    assert second.status == "completed"
    assert second.output_text == "The tool returned: sunny, 21C"
    assert _thinking_sent_back(fake, family) == (THOUGHT, signature_of(THOUGHT))


@pytest.mark.parametrize("family", CLAUDE)
def test_stateless_tool_loop_sends_the_signed_thinking_back(
    client: openai.OpenAI, fake: FakeUpstream, family: str
) -> None:
    """store false: the client appends ``response.output`` as it came and the tool's
    output, and the second turn reaches Claude with the first turn's signature intact."""
    question: list[Any] = [{"role": "user", "content": QUESTION}]
    first = _ask(client, family, input=question, store=False)
    call = _check_first_turn(first)
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}
    second = _ask(client, family, input=[*question, *first.output, output], store=False)
    _check_second_turn(second, fake, family)


@pytest.mark.parametrize("family", CLAUDE)
def test_previous_response_id_keeps_the_signed_thinking(
    client: openai.OpenAI, fake: FakeUpstream, family: str
) -> None:
    """The stored response keeps its reasoning item, so continuing with
    ``previous_response_id`` and only the tool's output works through Claude."""
    first = _ask(client, family, input=QUESTION, store=True)
    call = _check_first_turn(first)
    assert client.responses.retrieve(first.id).output[0].model_dump() == (
        first.output[0].model_dump()
    )
    output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}
    second = _ask(client, family, input=[output], previous_response_id=first.id)
    _check_second_turn(second, fake, family)


@pytest.mark.parametrize("family", CLAUDE)
def test_streamed_tool_loop_sends_the_signed_thinking_back(
    client: openai.OpenAI, fake: FakeUpstream, family: str
) -> None:
    """Streamed, the reasoning item is added, its summary streamed as
    reasoning_summary_text deltas, and done with the encrypted_content the final response
    carries; sent back, it works as the JSON answer's does."""
    question: list[Any] = [{"role": "user", "content": QUESTION}]
    events = list(_ask(client, family, input=question, store=False, stream=True))
    kinds = [event.type for event in events]
    first = events[-1].response
    assert kinds[-1] == "response.completed"
    added = next(e for e in events if e.type == "response.output_item.added")
    assert (added.output_index, added.item.type) == (0, "reasoning")
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index(
        "response.reasoning_summary_text.delta"
    )
    deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == THOUGHT
    done = next(e for e in events if e.type == "response.output_item.done")
    assert done.item.model_dump() == first.output[0].model_dump()
    call = _check_first_turn(first)
    assert json.loads(call.arguments)["city"] == QUESTION
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}
    with client.responses.stream(
        model=family,
        tools=[WEATHER],
        reasoning={"effort": "low"},
        input=[*question, *first.output, output],
        store=False,
    ) as stream:
        second = stream.get_final_response()
    _check_second_turn(second, fake, family)


def test_openai_reasoning_is_a_400_for_claude_and_goes_through_to_openai(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    """A reasoning item Parley did not write (OpenAI's encrypted content) cannot reach
    Claude: a 400 in OpenAI's error shape naming the item. An OpenAI deployment is sent
    it untouched."""
    item: Any = {
        "type": "reasoning",
        "id": "rs_openai",
        "summary": [],
        "encrypted_content": "gAAAAABpF0openai-only-content==",
    }
    items: Any = [{"role": "user", "content": "hi"}, item, {"role": "user", "content": "again"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="anthropic", input=items, store=False)
    error: Any = caught.value.body
    assert caught.value.status_code == 400
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_encrypted_content",
        "input[1].encrypted_content",
    )
    assert "'input[1]'" in error["message"]
    assert not fake.calls_to("anthropic")  # refused before any upstream call
    client.responses.create(model="openai", input=items, store=False)
    assert fake.calls_to("openai")[-1].body["input"][1] == item


def test_claude_reasoning_is_left_out_of_what_openai_is_sent(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    """A loop begun on Claude and continued on an OpenAI deployment (stateless, then with
    previous_response_id): OpenAI could not decrypt Parley's reasoning, so it is not sent;
    the call and its output are."""
    question: list[Any] = [{"role": "user", "content": QUESTION}]
    first = _ask(client, "anthropic", input=question, store=True)
    call = _check_first_turn(first)
    output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}
    stateless = _ask(client, "openai", input=[*question, *first.output, output], store=False)
    stateful = _ask(client, "openai", input=[output], previous_response_id=first.id)
    for response in (stateless, stateful):
        assert response.status == "completed"
    for sent in fake.calls_to("openai"):
        kinds = [item.get("type", "message") for item in sent.body["input"]]
        assert kinds == ["message", "function_call", "function_call_output"]
