"""The response cache's parts on their own: key normalisation, namespaces, the in-process
LRU's bounds, stream assembly and replay, the vector index and the micro-batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import numpy as np
import pytest

from parley.config.models import CacheConfig
from parley.gateway.accounting.caller import ANONYMOUS, Caller
from parley.gateway.cache.embedders import MicroBatcher, Vectors, normalised
from parley.gateway.cache.keys import parse_cache_control, plan_for, question_of
from parley.gateway.cache.replay import Assembler, replay
from parley.gateway.cache.store import CachedAnswer, MemoryLRU, ResponseCache
from parley.gateway.cache.vectors import ExactIndex
from parley.observability.metrics import Metrics
from parley.schema.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ResponseMessage,
    decode_chat_request,
)

ON = CacheConfig(enabled=True)


def chat(**body: object) -> ChatRequest:
    payload = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **body}
    return decode_chat_request(msgspec.json.encode(payload))


def digest(request: ChatRequest, caller: Caller = ANONYMOUS, config: CacheConfig = ON) -> str:
    plan = plan_for(request, "chat", caller, config, None)
    assert plan is not None
    return plan.address


def test_the_key_ignores_transport_fields_and_dict_order() -> None:
    base = digest(chat(temperature=0))
    assert digest(chat(temperature=0, user="u", stream=True)) == base
    assert digest(chat(temperature=0, stream_options={"include_usage": True})) == base
    tool_a = {"type": "function", "function": {"name": "f", "parameters": {"a": 1, "b": 2}}}
    tool_b = {"type": "function", "function": {"name": "f", "parameters": {"b": 2, "a": 1}}}
    assert digest(chat(tools=[tool_a])) == digest(chat(tools=[tool_b]))


@pytest.mark.parametrize(
    "changed",
    [
        {"temperature": 0.1},
        {"max_tokens": 5},
        {"seed": 1},
        {"stop": ["x"]},
        {"response_format": {"type": "json_object"}},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]},
    ],
)
def test_the_key_changes_with_what_changes_the_answer(changed: dict[str, object]) -> None:
    assert digest(chat(**changed)) != digest(chat())


def test_namespaces_follow_the_tenant_and_a_request_can_only_narrow_its_own() -> None:
    request = chat()
    team = digest(request, Caller(key_id="k1", team_id="t1"))
    assert team.startswith("team.t1:")
    assert digest(request, Caller(key_id="k2", team_id="t1")) == team
    assert digest(request, Caller(key_id="k1")).startswith("key.k1:")
    assert digest(request).startswith("local:")
    shared = CacheConfig(enabled=True, namespace="faq")
    assert digest(request, Caller(team_id="t1"), shared).startswith("shared.faq:")
    narrowed = chat(cache={"namespace": "docs"})
    plan = plan_for(narrowed, "chat", Caller(team_id="t1"), ON, narrowed.cache)
    assert plan is not None
    assert plan.namespace == "team.t1.sub.docs"


def test_cache_control_parsing() -> None:
    parsed = parse_cache_control("No-Cache, max-age=30, private")
    assert parsed is not None
    assert (parsed.no_cache, parsed.no_store, parsed.max_age) == (True, False, 30.0)
    assert parse_cache_control("private") is None
    with pytest.raises(ValueError, match="max-age"):
        parse_cache_control("max-age=-1")


def test_memory_lru_keeps_both_bounds_and_expires() -> None:
    lru = MemoryLRU(max_bytes=100, max_entries=3)
    for name in "abcd":
        lru.put(f"ns:g:{name}", b"x" * 10, expires_ms=1_000)
    assert len(lru) == 3
    assert lru.get("ns:g:a", 0) is None  # least recently used went first
    lru.get("ns:g:b", 0)
    lru.put("ns:g:e", b"y" * 70, expires_ms=1_000)  # over 100 bytes: c and d leave, b stays
    assert lru.bytes <= 100
    assert lru.get("ns:g:b", 0) is not None
    assert lru.get("ns:g:c", 0) is None
    assert lru.get("ns:g:e", 2_000) is None  # expired
    lru.put("ns:g:huge", b"z" * 101, expires_ms=1_000)
    assert lru.get("ns:g:huge", 0) is None


def test_memory_lru_drops_by_namespace_with_sub_namespaces_and_by_group() -> None:
    lru = MemoryLRU(max_bytes=10_000, max_entries=100)
    for address in ("team.a:g1:1", "team.a.sub.x:g1:2", "team.ab:g1:3", "team.b:g2:4"):
        lru.put(address, b"1", expires_ms=10)
    assert lru.drop("team.a", None) == 2
    assert lru.get("team.ab:g1:3", 0) is not None
    assert lru.drop(None, "g2") == 1
    assert len(lru) == 1


def _chunk(
    content: str | None = None, finish: str | None = None, **delta: object
) -> ChatCompletionChunk:
    choice: dict[str, object] = {"index": 0, "delta": {"content": content, **delta}}
    if finish:
        choice["finish_reason"] = finish
    body = {"id": "c1", "created": 1, "model": "m", "choices": [choice]}
    return msgspec.json.decode(msgspec.json.encode(body), type=ChatCompletionChunk)


def test_a_stream_assembles_only_when_every_choice_finished_and_replays_the_same_text() -> None:
    assembler = Assembler()
    assembler.add(_chunk("Hel", role="assistant"))
    assembler.add(_chunk("lo"))
    assert assembler.completion(None) is None  # no finish_reason yet: a cut stream
    assembler.add(_chunk(None, "stop"))
    completion = assembler.completion(None)
    assert completion is not None
    assert completion.choices[0].message.content == "Hello"
    chunks = replay(completion, include_usage=False)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_calls_survive_assembly() -> None:
    assembler = Assembler()
    start = {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
    assembler.add(_chunk(None, tool_calls=[start]))
    assembler.add(_chunk(None, tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}]))
    assembler.add(_chunk(None, tool_calls=[{"index": 0, "function": {"arguments": "1}"}}]))
    assembler.add(_chunk(None, "tool_calls"))
    completion = assembler.completion(None)
    assert completion is not None
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert (calls[0].id, calls[0].function.name, calls[0].function.arguments) == (
        "t1",
        "f",
        '{"a":1}',
    )


def test_exact_index_finds_the_nearest_and_forgets_removed_keys() -> None:
    rng = np.random.default_rng(7)
    vectors = normalised(rng.normal(size=(50, 8)))
    index = ExactIndex(8, capacity=4)
    for key in range(50):
        index.add(key, vectors[key : key + 1])
    assert len(index) == 50
    best = index.search(vectors[17:18], 3)
    assert best[0][0] == 17
    assert best[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in best] == sorted((s for _, s in best), reverse=True)
    index.remove(17)
    index.remove(17)  # twice is harmless
    assert 17 not in [k for k, _ in index.search(vectors[17:18], 50)]
    assert index.search(vectors[3:4], 1)[0][0] == 3  # the row moved into 17's place survived


class CountingEmbedder:
    name = "counting"
    ready = True

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        return normalised([[float(len(t)), 1.0] for t in texts])

    def close(self) -> None:
        pass


def test_the_micro_batcher_embeds_texts_that_queued_meanwhile_in_one_call() -> None:
    async def run() -> tuple[list[Vectors], list[int]]:
        embedder = CountingEmbedder()
        batcher = MicroBatcher(embedder, max_batch=64)
        vectors = await asyncio.gather(*(batcher.one("x" * n) for n in range(1, 21)))
        return vectors, embedder.calls

    vectors, calls = asyncio.run(run())
    assert calls == [1, 19]  # the first went alone at once; the rest queued behind it
    expected = normalised([[3.0, 1.0]])
    assert np.allclose(vectors[2], expected)  # each caller got its own row


def test_only_a_final_plain_user_turn_is_a_semantic_question() -> None:
    plan = plan_for(chat(), "chat", Caller(), ON, None)
    assert plan is not None
    assert question_of(plan, chat()) is not None
    with_tool = chat(
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "42"},
        ]
    )
    assert question_of(plan, with_tool) is None
    a = question_of(
        plan, chat(messages=[{"role": "system", "content": "A"}, {"role": "user", "content": "q"}])
    )
    b = question_of(
        plan, chat(messages=[{"role": "system", "content": "B"}, {"role": "user", "content": "q"}])
    )
    c = question_of(
        plan,
        chat(messages=[{"role": "system", "content": "A"}, {"role": "user", "content": "other"}]),
    )
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.context != b.context  # another system prompt: another partition
    assert a.context == c.context  # only the final turn differs: same partition


class _HeldReads:
    """A shared tier whose reads miss, but only once ``release`` is set: a slow L2 read."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def get(self, address: str) -> bytes | None:
        await self.release.wait()
        return None

    async def put(self, address: str, data: bytes, ttl_ms: int) -> None:
        return None

    async def drop(self, namespace: str | None, group: str | None) -> int:
        return 0

    async def listen(self, apply: object) -> None:
        return None


async def test_a_request_whose_l2_read_outlasts_the_flight_takes_its_answer_not_a_new_flight() -> (
    None
):
    shared = _HeldReads()
    cache = ResponseCache(
        Metrics(),
        max_bytes=1 << 20,
        max_entries=100,
        max_entry_bytes=1 << 20,
        flight_wait_s=30,
        shared=shared,
    )
    plan = plan_for(chat(), "chat", ANONYMOUS, ON, None)
    assert plan is not None
    leader = await cache.join(plan)
    assert not isinstance(leader, CachedAnswer)
    assert leader is not None
    # a second identical request misses L1 and is still reading L2 while the leader lands
    late = asyncio.create_task(cache.get(plan))
    await asyncio.sleep(0)
    answer = ChatCompletion("c", 0, "m", [Choice(0, ResponseMessage(content="hi"), "stop")])
    cache.land(leader, await cache.put(plan, answer))
    shared.release.set()
    assert await late is None  # its read began before the answer existed
    joined = await cache.join(plan)
    assert isinstance(joined, CachedAnswer)  # not a second leader, so no second upstream call
    assert joined.completion == answer
