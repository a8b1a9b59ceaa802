"""Bedrock prompt caching and Claude thinking, both ways: breakpoints as ``cachePoint``
blocks where Bedrock wants them, ``thinking`` in ``additionalModelRequestFields``, earlier
reasoning sent back signed ahead of its tool use; answers and streams keeping signatures
and redacted reasoning whole (a signature split across events included); and the fake
refusing what Bedrock and Claude refuse, so the e2e tests can trust it."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from parley.errors import UpstreamProtocolError
from parley.gateway.cache.replay import Assembler
from parley.providers.bedrock import BedrockProvider, claude_thinking_allowed
from parley.providers.bedrock_convert import bedrock_to_parley_completion, to_converse
from parley.providers.factory import build_provider
from parley.providers.http import UpstreamPool
from parley.schema.chat import ThinkingBlock
from parley.testing.bedrock import Invalid, check_converse
from parley.testing.formats import signature_of
from parley.testing.servers import BEDROCK_CREDENTIALS, models_from
from tests.unit.providers.test_bedrock import PNG, TOOL, event, request, translate

POINT = {"cachePoint": {"type": "default"}}
EPHEMERAL = {"type": "ephemeral"}
THOUGHT = "Thinking about: Oslo"
SIGNED = {"type": "thinking", "thinking": THOUGHT, "signature": signature_of(THOUGHT)}
REDACTED = base64.b64encode(b"\x00opaque reasoning\xff").decode()
THINKING = {"type": "enabled", "budget_tokens": 2048}


def _call(call_id: str = "c1") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }


# --- caching: the request ------------------------------------------------------------------


def test_each_breakpoint_becomes_a_cache_point_after_the_block_it_marks() -> None:
    body = to_converse(
        request(
            messages=[
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "You are careful."},
                        {"type": "text", "text": "The long document.", "cache_control": EPHEMERAL},
                        {"type": "text", "text": "Answer briefly."},
                    ],
                },
                {"role": "developer", "content": "Metric units."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look", "cache_control": EPHEMERAL},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG}"},
                            "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        },
                    ],
                },
                {"role": "assistant", "tool_calls": [_call("c1"), _call("c2")]},
                {
                    "role": "tool",
                    "tool_call_id": "c1",
                    "content": "sunny",
                    "cache_control": EPHEMERAL,
                },
                {
                    "role": "tool",
                    "tool_call_id": "c2",
                    "content": [{"type": "text", "text": "rain", "cache_control": EPHEMERAL}],
                },
            ],
            tools=[{**TOOL, "cache_control": EPHEMERAL}, {**TOOL, "function": {"name": "later"}}],
        )
    )
    assert body["system"] == [
        {"text": "You are careful."},
        {"text": "The long document."},
        POINT,
        {"text": "Answer briefly."},
        {"text": "Metric units."},
    ]
    assert body["messages"][0]["content"] == [
        {"text": "look"},
        POINT,
        {"image": {"format": "png", "source": {"bytes": PNG}}},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
    ]
    results = body["messages"][2]["content"]
    assert [next(iter(block)) for block in results] == [
        "toolResult",
        "cachePoint",
        "toolResult",
        "cachePoint",
    ]
    assert results[2]["toolResult"]["content"] == [{"text": "rain"}]
    tools = body["toolConfig"]["tools"]
    assert [next(iter(tool)) for tool in tools] == ["toolSpec", "cachePoint", "toolSpec"]
    assert tools[1] == POINT
    check_converse(body)  # placed where Bedrock accepts cache points


def test_without_breakpoints_nothing_changes_and_no_cache_point_is_sent() -> None:
    body = to_converse(
        request(
            messages=[
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            tools=[TOOL],
        )
    )
    assert body["system"] == [{"text": "ab"}]  # one block per message, as before
    assert "cachePoint" not in str(body)


def test_a_breakpoint_with_nothing_before_it_is_left_out() -> None:
    """Bedrock refuses a cachePoint that opens a list: an empty system part marks nothing."""
    body = to_converse(
        request(
            messages=[
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "", "cache_control": EPHEMERAL}],
                },
                {"role": "user", "content": "hi"},
            ]
        )
    )
    assert "system" not in body
    check_converse(body)


@pytest.mark.parametrize(
    ("where", "body"),
    [
        (
            "messages.0.content.0",
            {"messages": [{"role": "user", "content": [POINT, {"text": "hi"}]}]},
        ),
        (
            "system.0",
            {
                "system": [POINT, {"text": "s"}],
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            },
        ),
        (
            "toolConfig.tools.0",
            {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "toolConfig": {
                    "tools": [POINT, {"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]
                },
            },
        ),
        (
            "cachePoint",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"text": "hi"}, {"cachePoint": {"type": "ephemeral"}}],
                    }
                ]
            },
        ),
        (
            "cachePoint",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"text": "hi"}, {"cachePoint": {"type": "default", "x": 1}}],
                    }
                ]
            },
        ),
        (
            "cachePoint",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"text": "hi"},
                            {"cachePoint": {"type": "default", "ttl": "10m"}},
                        ],
                    }
                ]
            },
        ),
    ],
)
def test_the_fake_refuses_cache_points_bedrock_refuses(where: str, body: dict[str, Any]) -> None:
    with pytest.raises(Invalid, match=where.replace(".", r"\.")):
        check_converse(body)


# --- thinking: the request -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "thinking", "max_tokens"),
    [
        ({"thinking": THINKING}, THINKING, 4096),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 8000}},
            {"type": "enabled", "budget_tokens": 8000},
            12096,
        ),
        ({"thinking": THINKING, "max_tokens": 3000}, THINKING, 3000),
        ({"thinking": {"type": "disabled"}}, {"type": "disabled"}, None),
        ({"reasoning_effort": "high"}, {"type": "enabled", "budget_tokens": 16384}, 16384 + 4096),
        (
            {"reasoning_effort": "medium", "max_tokens": 3000},
            {"type": "enabled", "budget_tokens": 2999},
            3000,
        ),
        ({"reasoning_effort": "low", "max_tokens": 1000}, None, 1000),
        ({"reasoning_effort": "minimal"}, None, None),
        ({}, None, None),
    ],
)
def test_thinking_goes_in_additional_model_request_fields(
    fields: dict[str, Any], thinking: Any, max_tokens: int | None
) -> None:
    """The Anthropic adapter's table (providers/thinking.py), Claude's object as Bedrock
    hands it on; a cap is sent only where the client set one or a budget needs one."""
    body = to_converse(request(messages=[{"role": "user", "content": "x"}], **fields))
    assert (body.get("additionalModelRequestFields") or {}).get("thinking") == thinking
    assert (body.get("inferenceConfig") or {}).get("maxTokens") == max_tokens
    check_converse(body)


def test_thinking_blocks_go_back_as_reasoning_content_ahead_of_the_tool_use() -> None:
    unsigned = {"type": "thinking", "thinking": "a Gemini thought"}
    redacted = {"type": "redacted_thinking", "data": REDACTED}
    body = to_converse(
        request(
            messages=[
                {"role": "user", "content": "Oslo"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [_call()],
                    "thinking_blocks": [SIGNED, redacted, unsigned],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "cold"},
            ],
            tools=[TOOL],
            thinking=THINKING,
        )
    )
    assert body["messages"][1]["content"] == [
        {
            "reasoningContent": {
                "reasoningText": {"text": THOUGHT, "signature": signature_of(THOUGHT)}
            }
        },
        {"reasoningContent": {"redactedContent": REDACTED}},  # the base64 as it came
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "c1", "name": "get_weather", "input": {}}},
    ]  # the unsigned thought is left out: nothing could verify it
    check_converse(body)


def test_the_fake_refuses_a_tool_turn_without_its_signed_reasoning() -> None:
    history = [
        {"role": "user", "content": [{"text": "Oslo"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "c1", "name": "f", "input": {}}}],
        },
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "c1", "content": [{"text": "cold"}]}}],
        },
    ]
    body: dict[str, Any] = {
        "messages": history,
        "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]},
        "additionalModelRequestFields": {"thinking": THINKING},
    }
    with pytest.raises(Invalid, match="must start with a thinking block"):
        check_converse(body)
    tampered = {"reasoningText": {"text": THOUGHT, "signature": "sig-forged"}}
    history[1]["content"].insert(0, {"reasoningContent": tampered})  # type: ignore[attr-defined]
    with pytest.raises(Invalid, match="invalid signature"):
        check_converse(body)
    tampered["reasoningText"]["signature"] = signature_of(THOUGHT)
    check_converse(body)
    check_converse({**body, "additionalModelRequestFields": {}})  # no thinking: no demand


@pytest.mark.parametrize(
    ("thinking", "inference", "words"),
    [
        ({"type": "enabled", "budget_tokens": 512}, {}, "greater than or equal to 1024"),
        (THINKING, {"maxTokens": 2048}, "must be greater than"),
        ({"type": "sometimes"}, {}, "thinking.type"),
    ],
)
def test_the_fake_checks_thinking_as_claude_does(
    thinking: dict[str, Any], inference: dict[str, Any], words: str
) -> None:
    body = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": inference,
        "additionalModelRequestFields": {"thinking": thinking},
    }
    with pytest.raises(Invalid, match=words):
        check_converse(body)


def _provider(model: str) -> BedrockProvider:
    groups = [
        {
            "name": "b",
            "deployments": [{"provider": "bedrock", "model": model, **BEDROCK_CREDENTIALS}],
        }
    ]
    provider = build_provider(models_from(groups).groups[0].deployments[0], UpstreamPool())
    assert isinstance(provider, BedrockProvider)
    return provider


@pytest.mark.parametrize(
    ("model", "takes_it"),
    [
        ("anthropic.claude-3-7-sonnet-20250219-v1:0", True),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", True),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            True,
        ),
        ("amazon.nova-pro-v1:0", False),
        ("us.meta.llama3-3-70b-instruct-v1:0", False),
        ("arn:aws:bedrock:us-east-1::foundation-model/mistral.mistral-large-2402-v1:0", False),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
            False,
        ),
    ],
)
def test_only_claude_models_take_thinking(model: str, takes_it: bool) -> None:
    """Elsewhere Claude's object would be an unknown field: refused, or dropped with
    drop_params, like any parameter a provider cannot honour."""
    assert claude_thinking_allowed(model) is takes_it
    unsupported = _provider(model).unsupported_params
    assert ("thinking" in unsupported) is not takes_it
    assert ("reasoning_effort" in unsupported) is not takes_it
    assert "top_k" in unsupported


# --- thinking: the answer ------------------------------------------------------------------


def test_the_answer_keeps_signatures_and_redacted_reasoning() -> None:
    data = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "reasoningContent": {
                            "reasoningText": {"text": THOUGHT, "signature": "sig-1"}
                        }
                    },
                    {"reasoningContent": {"redactedContent": REDACTED}},
                    {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 3, "outputTokens": 9},
    }
    message = bedrock_to_parley_completion(data, "m", json_mode=False).choices[0].message
    assert message.thinking_blocks == [
        ThinkingBlock("thinking", thinking=THOUGHT, signature="sig-1"),
        ThinkingBlock("redacted_thinking", data=REDACTED),
    ]
    assert message.reasoning_content == THOUGHT
    # What a client sends back is what Bedrock sent: the next turn carries it unchanged.
    again = to_converse(
        request(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [msgspec.to_builtins(c) for c in message.tool_calls or []],
                    "thinking_blocks": msgspec.to_builtins(message.thinking_blocks),
                },
                {"role": "tool", "tool_call_id": "t1", "content": "ok"},
            ]
        )
    )
    assert again["messages"][1]["content"][:2] == data["output"]["message"]["content"][:2]  # type: ignore[index]


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


SIGNATURE = signature_of(THOUGHT)
REDACTED_BYTES = b"\x00first half|second half\xff"


METADATA = event(
    "metadata",
    {
        "usage": {
            "inputTokens": 4,
            "outputTokens": 7,
            "totalTokens": 61,
            "cacheReadInputTokens": 30,
            "cacheWriteInputTokens": 20,
        },
        "metrics": {"latencyMs": 1},
    },
)


def thinking_stream(*, reasoning_stops: bool = True) -> list[bytes]:
    """Signed reasoning (the signature in three events), redacted reasoning (in two, each
    its own base64), a tool call, cache usage; ``reasoning_stops=False`` leaves out the
    reasoning blocks' ``contentBlockStop``."""
    stop = [event("contentBlockStop", {"contentBlockIndex": i}) for i in (0, 1)]
    start = {"toolUse": {"toolUseId": "a", "name": "f"}}
    return [
        event("messageStart", {"role": "assistant"}),
        *[_delta(0, {"reasoningContent": {"text": w}}) for w in ("Thinking ", "about: ", "Oslo")],
        *[
            _delta(0, {"reasoningContent": {"signature": piece}})
            for piece in (SIGNATURE[:5], SIGNATURE[5:20], SIGNATURE[20:])
        ],
        *(stop[:1] if reasoning_stops else []),
        *[
            _delta(1, {"reasoningContent": {"redactedContent": base64.b64encode(piece).decode()}})
            for piece in (REDACTED_BYTES[:11], REDACTED_BYTES[11:])
        ],
        *(stop[1:] if reasoning_stops else []),
        event("contentBlockStart", {"contentBlockIndex": 2, "start": start}),
        _delta(2, {"toolUse": {"input": '{"city":"Oslo"}'}}),
        event("contentBlockStop", {"contentBlockIndex": 2}),
        event("messageStop", {"stopReason": "tool_use"}),
        METADATA,
    ]


@pytest.mark.parametrize("piece", [1, 7, 100_000])
async def test_a_streamed_signature_comes_whole_however_many_events_carried_it(piece: int) -> None:
    chunks = await translate(thinking_stream(), piece)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.reasoning_content or "" for d in deltas) == THOUGHT
    signatures = [d.reasoning_signature for d in deltas if d.reasoning_signature is not None]
    assert signatures == [SIGNATURE]  # one delta, byte-equal to what was signed
    redacted = [d.redacted_reasoning for d in deltas if d.redacted_reasoning is not None]
    assert [base64.b64decode(r) for r in redacted] == [REDACTED_BYTES]
    kinds = [
        "signature" if d.reasoning_signature else "redacted" if d.redacted_reasoning else "call"
        for d in deltas
        if d.reasoning_signature or d.redacted_reasoning or d.tool_calls
    ]
    assert kinds[:3] == ["signature", "redacted", "call"]  # each before what follows it
    # Downstream, the stream assembles into the blocks a client sends back.
    assembler = Assembler()
    for chunk in chunks:
        assembler.add(chunk)
    completion = assembler.completion(chunks[-1].usage)
    assert completion is not None
    assert completion.choices[0].message.thinking_blocks == [
        ThinkingBlock("thinking", thinking=THOUGHT, signature=SIGNATURE),
        ThinkingBlock("redacted_thinking", data=base64.b64encode(REDACTED_BYTES).decode()),
    ]


async def test_the_stream_usage_counts_cache_reads_and_writes() -> None:
    usage = (await translate(thinking_stream()))[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (54, 7, 61)
    assert usage.prompt_tokens_details == {"cached_tokens": 30, "cache_creation_tokens": 20}


async def test_a_reasoning_block_the_stream_never_stopped_still_gets_its_signature() -> None:
    frames = thinking_stream(reasoning_stops=False)
    deltas = [c.choices[0].delta for c in await translate(frames) if c.choices]
    assert [d.reasoning_signature for d in deltas if d.reasoning_signature] == [SIGNATURE]
    assert sum(d.redacted_reasoning is not None for d in deltas) == 1


async def test_redacted_content_that_is_not_base64_is_a_protocol_error() -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        _delta(0, {"reasoningContent": {"redactedContent": "not base64!"}}),
    ]
    with pytest.raises(UpstreamProtocolError, match="malformed contentBlockDelta"):
        await translate(frames)
