"""Semantic cache quality on labelled question pairs (QQP format: ``text_a``, ``text_b``,
``label`` = 1 when they ask the same thing).

Every ``text_a`` is stored as a cached prompt through Parley's own cache objects (the plan,
the exact cache, the semantic index, the local embedder behind its micro-batcher, the
agreement check), then every ``text_b`` is asked. Two scorings, both printed:

* ``labels`` (the data README's): a hit on a duplicate pair (``label`` 1) is correct, a hit
  on any other pair is wrong.
* ``labels+same`` (the headline): as ``labels``, except that a hit on a stored question
  with the very same text as the one asked is correct whatever the pair's label. QQP
  reuses questions across pairs: "What are the best ways to lose weight?" is stored from
  one pair and asked in another whose own partner is labelled 0, and answering it from
  its identical twin is exactly right.

The ``own`` column counts the strictest reading: hits that returned the answer stored for
the pair's own ``text_a`` on a duplicate pair.

Precision = correct / hits; recall = hits on duplicate pairs / duplicates (the same under
both scorings, so identical-text hits never inflate it).

    python bench/semantic_cache_eval.py --data ../shared/data/qqp-dev.jsonl

Needs ``parley[semantic]``. Prints a table per threshold, with and without the agreement
check, lookup latency, and ends with ``default threshold T: precision P recall R``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from parley.config.models import CacheConfig
from parley.gateway.accounting.caller import Caller
from parley.gateway.cache.embedders import LocalEmbedder, MicroBatcher
from parley.gateway.cache.index import MemoryIndex
from parley.gateway.cache.keys import Question, plan_for, question_of
from parley.gateway.cache.semantic import SemanticCache
from parley.gateway.cache.store import ResponseCache
from parley.observability.metrics import Metrics
from parley.schema.chat import ChatCompletion, ChatRequest, Choice, ResponseMessage, UserMessage

LATENCY_SAMPLE = 500
THRESHOLDS = [0.80, 0.85, 0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]
CONFIG = CacheConfig(enabled=True, semantic=True, ttl=86400)
CALLER = Caller(team_id="eval")


def load(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def request(text: str) -> ChatRequest:
    return ChatRequest(model="chat", messages=[UserMessage(text)], temperature=0)


def answer(tag: str) -> ChatCompletion:
    return ChatCompletion(tag, 0, "eval", [Choice(0, ResponseMessage(content=tag), "stop")])


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


async def run(pairs: list[dict[str, Any]], default: float) -> list[str]:
    local = LocalEmbedder()
    await local.wait_ready()
    batcher = MicroBatcher(local)
    index = MemoryIndex(max_entries=len(pairs) + 1)
    semantic = SemanticCache({"local": batcher}, index)
    cache = ResponseCache(
        Metrics(),
        max_bytes=1 << 30,
        max_entries=len(pairs) + 1,
        max_entry_bytes=1 << 20,
        flight_wait_s=0,
        semantic=semantic,
    )
    started = time.perf_counter()
    stored_at: list[str] = []
    text_at: dict[str, str] = {}
    texts_a = [p["text_a"] for p in pairs]
    vectors_a = await local.embed(texts_a)
    for i, text in enumerate(texts_a):
        req = request(text)
        plan = plan_for(req, "chat", CALLER, CONFIG, None)
        question = question_of(plan, req)
        assert question is not None
        await cache.put(plan, answer(plan.address))
        await semantic.remember(question, vectors_a[i : i + 1], plan.address, 2**62)
        stored_at.append(plan.address)
        text_at[plan.address] = text
    load_s = time.perf_counter() - started

    questions: list[Question] = []
    for pair in pairs:
        req = request(pair["text_b"])
        plan = plan_for(req, "chat", CALLER, CONFIG, None)
        question = question_of(plan, req)
        assert question is not None
        questions.append(question)
    # Latency: the first LATENCY_SAMPLE questions one at a time, as requests arrive (embed
    # through the micro-batcher, search, fetch the answer); the rest embedded in bulk.
    latencies: list[float] = []
    vectors_b = []
    for question in questions[:LATENCY_SAMPLE]:
        t0 = time.perf_counter()
        vector = await semantic.vector("local", question.text)
        assert vector is not None
        match = await semantic.nearest(question, vector, default, 0)
        if match is not None:
            await cache.at(match.address)
        latencies.append((time.perf_counter() - t0) * 1000)
        vectors_b.append(vector)
    bulk = await local.embed([q.text for q in questions[LATENCY_SAMPLE:]])
    vectors_b.extend(bulk[i : i + 1] for i in range(len(bulk)))

    duplicates = sum(1 for p in pairs if p["label"] == 1)
    lines = [
        f"pairs {len(pairs)}, duplicates {duplicates}; stored {len(semantic)} questions "
        f"in {load_s:.1f} s; lookup (embed + search + fetch, {len(latencies)} asked one at "
        "a time) p50 "
        f"{percentile(latencies, 50):.2f} ms, p99 {percentile(latencies, 99):.2f} ms",
        "",
        "| threshold | check | hits | hit rate | labels: precision | recall "
        "| labels+same: precision | own |",
        "|---|---|---|---|---|---|---|---|",
    ]
    results: dict[tuple[float, bool], tuple[float, float]] = {}
    for threshold in THRESHOLDS:
        for checked in (False, True):
            hits = correct = same = own = 0
            for i, pair in enumerate(pairs):
                if checked:
                    match = await semantic.nearest(questions[i], vectors_b[i], threshold, 0)
                    address = match.address if match else None
                else:
                    top = await index.search(questions[i], vectors_b[i], 1)
                    address = top[0].address if top and top[0].similarity >= threshold else None
                if address is None:
                    continue
                hits += 1
                correct += pair["label"] == 1
                same += pair["label"] == 1 or _same(text_at[address], pair["text_b"])
                own += pair["label"] == 1 and address == stored_at[i]
            precision = correct / hits if hits else 1.0
            recall = correct / duplicates if duplicates else 0.0
            same_precision = same / hits if hits else 1.0
            results[(threshold, checked)] = (same_precision, recall)
            lines.append(
                f"| {threshold:.2f} | {'agreement' if checked else 'none'} | {hits} | "
                f"{hits / len(pairs):.3f} | {precision:.3f} | {recall:.3f} | "
                f"{same_precision:.3f} | {own} |"
            )
    precision, recall = results[(default, True)]
    lines.append("")
    lines.append(f"default threshold {default:.2f}: precision {precision:.3f} recall {recall:.3f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL: text_a, text_b, label")
    parser.add_argument(
        "--threshold",
        type=float,
        default=CacheConfig().threshold,
        help="the threshold the last line reports (default: Parley's default)",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pairs")
    args = parser.parse_args(argv)
    pairs = load(args.data)[: args.limit]
    if args.threshold not in THRESHOLDS:
        THRESHOLDS.append(args.threshold)
        THRESHOLDS.sort()
    lines = asyncio.run(run(pairs, args.threshold))
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
