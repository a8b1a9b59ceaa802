"""The exact response cache, through the HTTP API, against the in-process tier alone and
with the shared Redis tier: hits, what the key ignores and what it does not, tenant
namespaces, single flight, streams, per-request controls, invalidation and size caps."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import postgres_database, redis_url, sqlite_url
from tests.e2e.test_access import ADMIN
from tests.polling import eventually

QUESTION = [{"role": "user", "content": "what is a cache?"}]


def group(fake: FakeUpstream, model: str = "gpt-4o-mini", **cache: Any) -> dict[str, Any]:
    return {
        "name": "chat",
        "deployments": [
            {"provider": "openai_compatible", "model": model, "api_base": f"{fake.url}/v1"}
        ],
        "cache": {"enabled": True, **cache},
    }


class Parley:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        self.teams: dict[str, str] = {}

    def chat(
        self,
        key: str = ADMIN,
        *,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> httpx.Response:
        payload = {"model": "chat", "messages": QUESTION, **body}
        return self.http.post(
            "/v1/chat/completions",
            json=payload,
            headers={"authorization": f"Bearer {key}", **(headers or {})},
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, path, headers={"authorization": f"Bearer {ADMIN}"}, **kwargs
        )

    def team_key(self, name: str) -> str:
        """A new team with one API key; the team's id is kept in ``teams[key]``."""
        team = self.admin("POST", "/admin/teams", json={"name": name}).json()
        created = self.admin("POST", "/admin/keys", json={"team_id": team["id"]})
        assert created.status_code == 201, created.text
        key = str(created.json()["key"])
        self.teams[key] = str(team["id"])
        return key


Start = Callable[..., Parley]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Settings for the cache's backends: ``memory``; ``redis`` (the shared exact tier,
    semantic questions shared through a Redis stream); ``pgvector`` (PostgreSQL holds the
    semantic index, Redis the exact tier)."""
    if request.param == "memory":
        yield {}
        return
    gen = redis_url()
    settings: dict[str, Any] = {"redis_url": next(gen)}
    if request.param == "pgvector":
        pg = postgres_database(migrated=True)
        settings |= {"database_url": next(pg), "cache_semantic_index": "pgvector"}
        yield settings
        with pytest.raises(StopIteration):
            next(pg)
    else:
        yield settings
    with pytest.raises(StopIteration):
        next(gen)


@pytest.fixture
def start(backend: dict[str, Any], loop_thread: LoopThread, tmp_path: Path) -> Iterator[Start]:
    """``start(groups, **settings)``: a Parley instance; several share the database and
    (with the redis backend) the shared cache tier."""
    stack = contextlib.ExitStack()

    def run(groups: list[dict[str, Any]], **settings: Any) -> Parley:
        merged = {
            "database_url": sqlite_url(tmp_path),
            "admin_key": ADMIN,
            **backend,
            **settings,
        }
        app = create_app(Settings(**merged), models=models_from(groups))
        parley = Parley(stack.enter_context(serve_in_thread(loop_thread, app)))
        stack.callback(parley.http.close)
        return parley

    with stack:
        yield run


def upstream_calls(fake: FakeUpstream) -> int:
    return len(fake.calls)


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def sse_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.text.rstrip().endswith("data: [DONE]")
    parts = []
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def test_second_identical_request_is_a_hit_with_the_same_answer(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake)])
    first, second = parley.chat(), parley.chat()
    assert first.headers["x-parley-cache"] == "miss"
    assert second.headers["x-parley-cache"] == "hit"
    assert second.headers["x-parley-deployment"] == "cache"
    assert content(second) == content(first)
    assert upstream_calls(fake) == 1


def test_hit_rates_are_the_fleets_from_the_usage_rollups(start: Start, fake: FakeUpstream) -> None:
    """Two instances on one database: lookups on either count in the rates both report
    (per group, exact and semantic apart), not one process's counters; a bypass is not
    a lookup."""
    a = start([group(fake)], usage_flush_seconds=0.05)
    b = start([group(fake)], usage_flush_seconds=0.05)
    outcomes = [a.chat().headers["x-parley-cache"]]
    outcomes += [b.chat().headers["x-parley-cache"] for _ in range(2)]
    outcomes.append(a.chat(cache={"no-cache": True}).headers["x-parley-cache"])
    hits = outcomes.count("hit")
    assert outcomes[0] == "miss"
    assert outcomes[-1] == "bypass"
    assert hits >= 1  # b hits a's answer through Redis, or its own second one

    def rates(parley: Parley) -> dict[str, Any]:
        answer = parley.admin("GET", "/admin/cache/hit-rates", params={"window": "hour"})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    eventually(lambda: rates(a)["totals"]["lookups"] == 3)
    for parley in (a, b):
        (chat,) = rates(parley)["data"]
        assert chat["model_group"] == "chat"
        assert (chat["lookups"], chat["hits"], chat["semantic_hits"]) == (3, hits, 0)
        assert chat["exact_hit_rate"] == pytest.approx(hits / 3)
        assert chat["semantic_hit_rate"] == 0
    bad = a.admin("GET", "/admin/cache/hit-rates", params={"window": "year"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "window"


def test_the_key_ignores_user_and_stream_but_not_what_changes_the_answer(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake)])
    parley.chat(temperature=0)
    assert parley.chat(temperature=0, user="someone-else").headers["x-parley-cache"] == "hit"
    streamed = parley.chat(temperature=0, stream=True, stream_options={"include_usage": True})
    assert streamed.headers["x-parley-cache"] == "hit"
    for changed in ({"temperature": 0.5}, {"temperature": 0, "max_tokens": 7}, {"seed": 3}):
        assert parley.chat(**changed).headers["x-parley-cache"] == "miss", changed
    assert upstream_calls(fake) == 4


def test_no_hit_crosses_teams(start: Start, fake: FakeUpstream) -> None:
    parley = start([group(fake)])
    red, blue = parley.team_key("red"), parley.team_key("blue")
    assert parley.chat(red).headers["x-parley-cache"] == "miss"
    assert parley.chat(blue).headers["x-parley-cache"] == "miss"
    assert parley.chat(red).headers["x-parley-cache"] == "hit"
    assert parley.chat(blue).headers["x-parley-cache"] == "hit"
    assert upstream_calls(fake) == 2
    # a request's own namespace narrows its team's; it never reaches another team's
    narrowed = parley.chat(blue, cache={"namespace": "faq"})
    assert narrowed.headers["x-parley-cache"] == "miss"
    assert upstream_calls(fake) == 3


def test_a_shared_namespace_configured_by_an_admin_is_shared(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake, namespace="faq")])
    red, blue = parley.team_key("red"), parley.team_key("blue")
    parley.chat(red)
    assert parley.chat(blue).headers["x-parley-cache"] == "hit"
    assert upstream_calls(fake) == 1


def test_single_flight_makes_one_upstream_call_for_fifty_concurrent_requests(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake, model="gpt-4o-mini+latency-0.5")])
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: parley.chat(), range(50)))
    assert [a.status_code for a in answers] == [200] * 50
    assert upstream_calls(fake) == 1
    outcomes = [a.headers["x-parley-cache"] for a in answers]
    assert outcomes.count("miss") == 1
    assert outcomes.count("hit") == 49
    assert len({content(a) for a in answers}) == 1


def test_a_cached_answer_is_served_to_a_stream_and_a_stream_is_stored_when_complete(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake)])
    streamed = parley.chat(stream=True)
    assert streamed.headers["x-parley-cache"] == "miss"
    text = sse_text(streamed)
    assert text
    replayed = parley.chat(stream=True)
    assert replayed.headers["x-parley-cache"] == "hit"
    assert sse_text(replayed) == text
    assert content(parley.chat()) == text
    assert upstream_calls(fake) == 1


def test_a_stream_cut_midway_is_never_cached(start: Start, fake: FakeUpstream) -> None:
    parley = start([group(fake, model="gpt-4o-mini+tokens-40+stream-cut-4")])
    cut = parley.chat(stream=True)
    assert '"error"' in cut.text
    assert not cut.text.rstrip().endswith("[DONE]")
    again = parley.chat(stream=True)
    assert again.headers["x-parley-cache"] == "miss"
    assert upstream_calls(fake) == 2


def test_no_store_stores_nothing_and_no_cache_reads_nothing(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake)])
    assert parley.chat(headers={"cache-control": "no-store"}).headers["x-parley-cache"] == "miss"
    assert parley.chat(cache={"no-store": True}).headers["x-parley-cache"] == "miss"
    assert upstream_calls(fake) == 2
    assert parley.chat().headers["x-parley-cache"] == "miss"  # now stored
    bypass = parley.chat(headers={"cache-control": "no-cache"})
    assert bypass.headers["x-parley-cache"] == "bypass"
    assert parley.chat(cache={"no-cache": True}).headers["x-parley-cache"] == "bypass"
    assert parley.chat().headers["x-parley-cache"] == "hit"
    assert upstream_calls(fake) == 5


def test_max_age_refuses_older_answers(start: Start, fake: FakeUpstream) -> None:
    parley = start([group(fake)])
    parley.chat()
    assert parley.chat(headers={"cache-control": "max-age=60"}).headers["x-parley-cache"] == "hit"
    # an answer stored at least a millisecond ago is older than max-age=0
    assert parley.chat(headers={"cache-control": "max-age=0"}).headers["x-parley-cache"] == "miss"
    bad = parley.chat(headers={"cache-control": "max-age=soon"})
    assert bad.status_code == 400
    assert "max-age" in bad.json()["error"]["message"]


def test_the_cache_object_never_reaches_the_provider(start: Start, fake: FakeUpstream) -> None:
    parley = start([group(fake)])
    parley.chat(cache={"ttl": 60, "namespace": "docs"})
    assert "cache" not in fake.calls[-1].body
    refused = parley.chat(cache={"namespace": "not allowed!"})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "cache.namespace"


def test_hot_temperatures_are_not_cached_when_the_group_says_so(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake, max_temperature=0.2)])
    assert parley.chat(temperature=0.9).headers["x-parley-cache"] == "bypass"
    assert parley.chat(temperature=0.9).headers["x-parley-cache"] == "bypass"
    parley.chat(temperature=0)
    assert parley.chat(temperature=0).headers["x-parley-cache"] == "hit"
    assert upstream_calls(fake) == 3


def test_answers_over_the_size_cap_are_not_stored(start: Start, fake: FakeUpstream) -> None:
    parley = start([group(fake, model="gpt-4o-mini+tokens-200")], cache_max_entry_bytes=200)
    parley.chat()
    assert parley.chat().headers["x-parley-cache"] == "miss"
    assert upstream_calls(fake) == 2


def test_groups_without_a_cache_say_nothing(start: Start, fake: FakeUpstream) -> None:
    plain = {**group(fake), "cache": {"enabled": False}}
    parley = start([plain])
    parley.chat()
    answer = parley.chat()
    assert "x-parley-cache" not in answer.headers
    assert upstream_calls(fake) == 2


def test_invalidation_by_namespace_and_by_group(start: Start, fake: FakeUpstream) -> None:
    parley = start([group(fake)])
    red, blue = parley.team_key("red"), parley.team_key("blue")
    parley.chat(red)
    parley.chat(blue)
    dropped = parley.admin("DELETE", "/admin/cache", params={"team_id": parley.teams[red]})
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["dropped"] >= 1
    assert parley.chat(red).headers["x-parley-cache"] == "miss"
    assert parley.chat(blue).headers["x-parley-cache"] == "hit"
    parley.admin("DELETE", "/admin/cache", params={"model": "chat"})
    assert parley.chat(blue).headers["x-parley-cache"] == "miss"
    assert parley.chat(red).headers["x-parley-cache"] == "miss"
    unknown = parley.admin("DELETE", "/admin/cache", params={"model": "nope"})
    assert unknown.status_code == 404
    assert parley.admin("DELETE", "/admin/cache").status_code == 400


# --- several instances: the shared tier -------------------------------------------------


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_a_second_instance_sees_the_first_instances_entries(
    start: Start, fake: FakeUpstream
) -> None:
    a, b = start([group(fake)]), start([group(fake)])
    answer = a.chat()
    hit = b.chat()
    assert hit.headers["x-parley-cache"] == "hit"
    assert content(hit) == content(answer)
    assert upstream_calls(fake) == 1


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_invalidation_reaches_every_instance(start: Start, fake: FakeUpstream) -> None:
    a, b = start([group(fake)]), start([group(fake)])
    a.chat()
    assert b.chat().headers["x-parley-cache"] == "hit"  # now in b's memory tier too
    assert a.admin("DELETE", "/admin/cache", params={"model": "chat"}).status_code == 200
    eventually(lambda: b.chat(cache={"no-store": True}).headers["x-parley-cache"] == "miss")


# --- the semantic layer, through the API -------------------------------------------------


def wait_ready(parley: Parley) -> None:
    """The local embedding model loads in the background; readiness says when it has."""
    eventually(lambda: parley.http.get("/health/ready").status_code == 200, attempts=600)


def ask(
    parley: Parley, text: str, system: str | None = None, key: str = ADMIN, **body: Any
) -> httpx.Response:
    messages = [{"role": "system", "content": system}] if system else []
    return parley.chat(key, messages=[*messages, {"role": "user", "content": text}], **body)


PROBE = {"cache": {"no-store": True}}
"""Polling another instance must not store (and index) answers of its own."""


@pytest.mark.parametrize("backend", ["memory", "redis", "pgvector"], indirect=True)
def test_a_paraphrase_is_a_semantic_hit_within_its_context_only(
    start: Start, fake: FakeUpstream
) -> None:
    parley = start([group(fake, semantic=True, threshold=0.8)])
    wait_ready(parley)
    first = ask(parley, "How do I reset my password?", system="Be brief.")
    assert first.headers["x-parley-cache"] == "miss"
    again = ask(parley, "how can I reset my password", system="Be brief.")
    assert again.headers["x-parley-cache"] == "semantic-hit"
    assert 0.8 <= float(again.headers["x-parley-cache-similarity"]) < 1.0
    assert content(again) == content(first)
    assert upstream_calls(fake) == 1
    # another system prompt, a trap, another team: all go upstream
    assert (
        ask(parley, "how can I reset my password", system="Be verbose.").headers["x-parley-cache"]
        == "miss"
    )
    assert (
        ask(parley, "How do I not reset my password?", system="Be brief.").headers["x-parley-cache"]
        == "miss"
    )
    other = parley.team_key("other")
    assert (
        ask(parley, "how can I reset my password", "Be brief.", key=other).headers["x-parley-cache"]
        == "miss"
    )
    assert upstream_calls(fake) == 4

    def semantic() -> tuple[int, int, int] | None:
        rows = parley.admin("GET", "/admin/cache/hit-rates").json()["data"]
        if not rows:  # usage records are written in the background: none may be there yet
            return None
        (chat,) = rows
        return chat["lookups"], chat["hits"], chat["semantic_hits"]

    eventually(lambda: semantic() == (5, 0, 1))  # the hit rates tell the two kinds apart


@pytest.mark.parametrize("backend", ["redis", "pgvector"], indirect=True)
def test_a_second_instance_answers_paraphrases_of_what_the_first_answered(
    start: Start, fake: FakeUpstream
) -> None:
    a = start([group(fake, semantic=True, threshold=0.8)])
    wait_ready(a)
    ask(a, "How do I reset my password?")
    b = start([group(fake, semantic=True, threshold=0.8)])  # started later: reads the log
    wait_ready(b)
    eventually(
        lambda: ask(b, "how can I reset my password").headers["x-parley-cache"] == "semantic-hit"
    )
    assert upstream_calls(fake) == 1
    ask(b, "What is the capital of France?")
    eventually(
        lambda: (
            ask(a, "What's the capital city of France?").headers["x-parley-cache"] == "semantic-hit"
        )
    )
    assert upstream_calls(fake) == 2
