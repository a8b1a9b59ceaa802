"""What the response cache costs and saves, measured in one run:

1. latency at concurrency 1: the upstream called directly (the baseline: Parley's Python
   fake answering after 200 ms, as a fast LLM might), then through Parley on an exact miss,
   an exact hit, a semantic miss (the extra cost of embedding and searching) and a semantic
   hit;
2. memory per 100,000 cached answers (the in-process tier) and per 100,000 indexed
   questions (the semantic index), measured with tracemalloc;
3. the in-process vector index: Parley's exact index against usearch, hnswlib and faiss
   (those installed), add time and search p50/p99, on random unit vectors (memory is left
   out: the native libraries allocate where tracemalloc cannot see).

    python -m bench.cache [--requests 200]

Needs ``parley[semantic]`` for the semantic rows. Loopback only; bounded by request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
import httpx
import numpy as np

from bench.common import print_table, process
from parley.config.models import CacheConfig
from parley.gateway.accounting.caller import Caller
from parley.gateway.cache.embedders import normalised
from parley.gateway.cache.index import MemoryIndex
from parley.gateway.cache.keys import plan_for, question_of
from parley.gateway.cache.store import CachedAnswer, MemoryLRU, encode_answer
from parley.gateway.cache.vectors import ExactIndex
from parley.schema.chat import (
    ChatCompletion,
    ChatRequest,
    Choice,
    ResponseMessage,
    Usage,
    UserMessage,
)
from parley.testing.servers import free_port

UPSTREAM_LATENCY = 0.2
JSON = {"Content-Type": "application/json"}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


async def timed(
    session: aiohttp.ClientSession,
    url: str,
    body: Callable[[], dict[str, Any]],
    n: int,
    expect: str | None,
) -> list[float]:
    latencies = []
    for _ in range(n):
        payload = json.dumps(body()).encode()
        started = time.perf_counter()
        async with session.post(url, data=payload, headers=JSON) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(await response.text())
            outcome = response.headers.get("x-parley-cache")
        latencies.append(time.perf_counter() - started)
        if expect is not None and outcome != expect:
            raise RuntimeError(f"expected {expect}, got {outcome}")
    return latencies


def latency_rows(requests: int) -> list[list[object]]:
    """Three processes on loopback, as in ``bench.overhead``: the Python fake upstream,
    ``parley serve``, and this client."""
    fake_port, parley_port = free_port(), free_port()
    model = f"bench+latency-{UPSTREAM_LATENCY}+tokens-60"
    dep = (
        f"{{provider: openai_compatible, model: '{model}', "
        f"api_base: 'http://127.0.0.1:{fake_port}/v1'}}"
    )
    with TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: exact, deployments: [{dep}], cache: {{enabled: true}}}}\n"
            f"  - {{name: semantic, deployments: [{dep}], "
            "cache: {enabled: true, semantic: true, threshold: 0.9}}\n"
        )
        parley = ["-m", "parley", "serve", "--port", str(parley_port), "--config", str(config)]
        env = {"PARLEY_LOG_LEVEL": "warning", "PARLEY_DATABASE_URL": f"sqlite:///{tmp}/p.db"}
        url = f"http://127.0.0.1:{parley_port}"
        with (
            process(["-m", "parley.testing.fake_upstream", "--port", str(fake_port)], fake_port),
            process(parley, parley_port, env=env),
        ):
            while httpx.get(f"{url}/health/ready").status_code != 200:  # the model loading
                time.sleep(0.1)
            return asyncio.run(_latencies(url, f"http://127.0.0.1:{fake_port}", model, requests))


async def _latencies(url: str, fake_url: str, model: str, requests: int) -> list[list[object]]:
    counter = iter(range(10**9))
    chat = f"{url}/v1/chat/completions"

    def ask(group: str, text: Callable[[], str]) -> Callable[[], dict[str, Any]]:
        return lambda: {"model": group, "messages": [{"role": "user", "content": text()}]}

    slow = max(20, requests // 5)
    async with aiohttp.ClientSession() as session:
        direct = await timed(
            session, f"{fake_url}/v1/chat/completions", ask(model, lambda: "x"), slow, None
        )
        scenarios = [
            ("upstream directly (baseline)", direct),
            (
                "Parley, exact miss",
                await timed(
                    session, chat, ask("exact", lambda: f"q {next(counter)}"), slow, "miss"
                ),
            ),
            (
                "Parley, exact hit",
                await timed(session, chat, ask("exact", lambda: "q 0"), requests, "hit"),
            ),
            (
                "Parley, semantic miss (embed + search)",
                await timed(
                    session,
                    chat,
                    ask("semantic", lambda: f"Tell me about topic {next(counter)}"),
                    slow,
                    "miss",
                ),
            ),
        ]
        await timed(session, chat, ask("semantic", lambda: "How do I reset my password?"), 1, None)
        hit = ask("semantic", lambda: "how do i reset my password")
        scenarios.append(
            ("Parley, semantic hit", await timed(session, chat, hit, requests, "semantic-hit"))
        )
    base = pct(direct, 50)
    return [
        [label, len(values), pct(values, 50), pct(values, 99), pct(values, 50) / base]
        for label, values in scenarios
    ]


def answer(i: int) -> ChatCompletion:
    text = ("A typical answer of a few sentences, about three hundred tokens long. " * 6)[:400]
    return ChatCompletion(
        f"chatcmpl-{i}",
        0,
        "m",
        [Choice(0, ResponseMessage(content=text), "stop")],
        usage=Usage(20, 90, 110),
    )


def memory_rows(entries: int) -> list[list[object]]:
    rows: list[list[object]] = []
    config = CacheConfig(enabled=True, semantic=True)
    caller = Caller(team_id="bench")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    lru = MemoryLRU(max_bytes=1 << 40, max_entries=entries)
    encoded = 0
    for i in range(entries):
        data = encode_answer(CachedAnswer(0, 2**62, answer(i)))
        encoded += len(data)
        lru.put(f"team.bench:chat:{i:040x}", data, 2**62)
    after = tracemalloc.get_traced_memory()[0]
    rows.append(
        [
            "exact cache (L1), 400-character answers",
            entries,
            (after - before) / 1e6,
            encoded / entries,
        ]
    )
    del lru
    vectors = normalised(np.random.default_rng(1).normal(size=(entries, 384)))
    before = tracemalloc.get_traced_memory()[0]
    semantic = MemoryIndex(max_entries=entries)
    for i in range(entries):
        request = ChatRequest(
            model="chat", messages=[UserMessage(f"How do I do thing number {i}?")]
        )
        plan = plan_for(request, "chat", caller, config, None)
        question = question_of(plan, request)
        assert question is not None
        semantic.insert(question, vectors[i : i + 1], plan.address, 2**62)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rows.append(
        [
            "semantic index (384-d float32 + entry)",
            entries,
            (after - before) / 1e6,
            semantic.nbytes / entries,
        ]
    )
    return rows


def index_rows(sizes: list[int], queries: int = 200) -> list[list[object]]:
    rows: list[list[object]] = []
    rng = np.random.default_rng(2)
    for size in sizes:
        data = normalised(rng.normal(size=(size, 384)))
        probes = data[rng.integers(0, size, queries)]
        for name, build in _indexes():
            started = time.perf_counter()
            search = build(data)
            added = time.perf_counter() - started
            latencies = []
            for probe in probes:
                t0 = time.perf_counter()
                search(probe)
                latencies.append(time.perf_counter() - t0)
            rows.append([name, size, added, pct(latencies, 50), pct(latencies, 99)])
    return rows


Search = Callable[[Any], Any]


def _indexes() -> list[tuple[str, Callable[[Any], Search]]]:
    def exact(data: Any) -> Search:
        index = ExactIndex(data.shape[1])
        for i in range(len(data)):
            index.add(i, data[i : i + 1])
        return lambda v: index.search(v, 8)

    found: list[tuple[str, Callable[[Any], Search]]] = [("parley ExactIndex", exact)]
    try:
        from usearch.index import Index  # noqa: PLC0415

        def usearch(data: Any) -> Search:
            index = Index(ndim=data.shape[1], metric="ip", dtype="f32")
            index.add(np.arange(len(data)), data)
            return lambda v: index.search(v, 8)

        found.append(("usearch HNSW", usearch))
    except ImportError:
        pass
    try:
        import hnswlib  # noqa: PLC0415

        def hnsw(data: Any) -> Search:
            index = hnswlib.Index(space="ip", dim=data.shape[1])
            index.init_index(max_elements=len(data), ef_construction=100, M=16)
            index.add_items(data, np.arange(len(data)))
            index.set_ef(64)
            return lambda v: index.knn_query(v, k=8)

        found.append(("hnswlib HNSW", hnsw))
    except ImportError:
        pass
    try:
        import faiss  # noqa: PLC0415

        def flat(data: Any) -> Search:
            index = faiss.IndexFlatIP(data.shape[1])
            index.add(data)
            return lambda v: index.search(v.reshape(1, -1), 8)

        found.append(("faiss FlatIP", flat))
    except ImportError:
        pass
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--index-sizes", type=int, nargs="+", default=[10_000, 50_000])
    args = parser.parse_args(argv)
    print("\nlatency at concurrency 1 (ms); ratio = p50 / upstream p50")
    print_table(["path", "requests", "p50", "p99", "ratio"], latency_rows(args.requests))
    print("\nmemory")
    print_table(["what", "entries", "MB", "bytes/entry (payload)"], memory_rows(args.entries))
    print("\nvector index (384-d, k=8)")
    print_table(
        ["index", "vectors", "add s", "search p50 ms", "search p99 ms"],
        index_rows(args.index_sizes),
    )


if __name__ == "__main__":
    main()
