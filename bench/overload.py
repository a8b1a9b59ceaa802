"""The overload rows of ``bench.compare``: Parley at its peak, then past it.

A model group on the 500 ms upstream with ``max_concurrency: CAP`` (500: it can serve
1,000 calls/s) and a queue of ``CAP`` places waiting at most ``QUEUE_TIMEOUT`` seconds is
loaded first at ``CAP`` connections (every call admitted at once: the peak), then at
``--overload-connections`` (2,000 by default: twice what the group admits and queues
together, four times what it serves). Each row counts, from the
responses themselves (a wrk script reading each status): answers (200), refusals (503/429)
and what neither (timeouts, socket errors, other statuses); and, from Parley's /metrics
before and after, which refusals came from the group's queue and which from load shedding.

Two kinds of clients: ones that wait out ``Retry-After`` before retrying a refused call, as
the OpenAI and Anthropic SDKs do, and ones that retry at once (a hand-written loop, the worst
case). The targets (issue 20) are judged on the first: every call answered or refused fast
(no timeouts), goodput at least 90% of the peak, and no call waiting longer than the queue
timeout plus the upstream's 0.5 s (checked on the slowest call wrk saw).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

CAP = 500
QUEUE_TIMEOUT = 2.0
UPSTREAM_SECONDS = 0.5
GROUP = "bench-overload"


def group_yaml(slow_base: str) -> str:
    """The model-file entry of the overload group (on the 500 ms upstream)."""
    return (
        f"  - {{name: {GROUP}, max_concurrency: {CAP}, "
        f"queue: {{max_size: {CAP}, timeout: {QUEUE_TIMEOUT:g}}}, "
        f"deployments: [{{provider: openai_compatible, model: bench, "
        f"api_base: '{slow_base}', max_connections: 4000}}]}}\n"
    )


def _script(tmp: Path, key: str, honour: bool) -> Path:
    body = json.dumps({"model": GROUP, "messages": [{"role": "user", "content": "benchmark me"}]})
    script = tmp / f"wrk-overload-{honour}.lua"
    # ``response`` runs for every answer on the thread that sent it, and ``delay`` before
    # that thread's next request: a refusal's Retry-After becomes the next request's delay.
    script.write_text(
        f"""
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; refused = 0; other = 0; owed = {{}} end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 or status == 429 or status == 529 then
    refused = refused + 1
    local wait = tonumber(headers["Retry-After"] or headers["retry-after"] or "")
    if {"true" if honour else "false"} and wait then table.insert(owed, wait * 1000) end
  else other = other + 1 end
end
function delay()
  if #owed > 0 then return table.remove(owed, 1) end
  return 0
end
function done(summary, latency, requests)
  local o, r, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); r = r + t:get("refused"); x = x + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"ok":%d,"refused":%d,"other":%d,' ..
    '"max_us":%d,"p99":%d,"timeout":%d,"socket":%d}}\\n',
    summary.requests, summary.duration, o, r, x, latency.max, latency:percentile(99),
    e.timeout, e.connect + e.read + e.write))
end
"""
    )
    return script


@dataclass
class OverloadRun:
    label: str
    connections: int
    goodput: float
    answered: int
    refused: int
    queue_refusals: int
    shed: int
    timeouts: int
    other: int
    p99_ms: float
    worst_ms: float
    cpu_us: float | None = None


_METRIC = re.compile(
    r"^(parley_shed_requests_total|parley_admission_refusals_total)(\{[^}]*\})? (\S+)$"
)


def _refusal_counts(base: str) -> tuple[float, float]:
    """(queue refusals of the overload group, shed calls) from Parley's /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    queue = shed = 0.0
    for line in text.splitlines():
        found = _METRIC.match(line)
        if found is None:
            continue
        name, labels, value = found.groups()
        if name == "parley_shed_requests_total":
            shed += float(value)
        elif labels and f'model_group="{GROUP}"' in labels:
            queue += float(value)
    return queue, shed


def run(
    label: str,
    base: str,
    tmp: Path,
    key: str,
    *,
    connections: int,
    seconds: float,
    honour: bool,
    load_core: str,
) -> OverloadRun:
    """One row: ``connections`` wrk connections on the overload group for ``seconds``."""
    queue_before, shed_before = _refusal_counts(base)
    threads = 1 if connections < 4 else 2
    command = ["taskset", "-c", load_core, "wrk", f"-t{threads}", f"-c{connections}"]
    command += [f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    command += ["-s", str(_script(tmp, key, honour)), f"{base}/v1/chat/completions"]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    queue_after, shed_after = _refusal_counts(base)
    return OverloadRun(
        label=label,
        connections=connections,
        goodput=data["ok"] / (data["duration_us"] / 1e6),
        answered=data["ok"],
        refused=data["refused"],
        queue_refusals=round(queue_after - queue_before),
        shed=round(shed_after - shed_before),
        timeouts=data["timeout"],
        other=data["other"] + data["socket"],
        p99_ms=data["p99"] / 1000,
        worst_ms=data["max_us"] / 1000,
    )


def table(runs: list[OverloadRun]) -> tuple[list[str], list[list[object]]]:
    """Headers and rows for ``print_table``: each run against the peak (the first run)."""
    peak = runs[0].goodput
    bound_ms = (QUEUE_TIMEOUT + UPSTREAM_SECONDS) * 1000
    rows: list[list[object]] = []
    for run in runs:
        share = run.goodput / peak if peak else 0.0
        met = run.timeouts == 0 and run.other == 0 and share >= 0.9 and run.worst_ms <= bound_ms
        rows.append(
            [
                run.label,
                run.connections,
                run.goodput,
                f"{share:.0%}",
                run.answered,
                run.refused,
                run.queue_refusals,
                run.shed,
                run.timeouts,
                run.other,
                run.p99_ms,
                run.worst_ms,
                "" if run.cpu_us is None else run.cpu_us,
                "" if run is runs[0] else ("yes" if met else "NO"),
            ]
        )
    headers = [
        "clients",
        "conns",
        "goodput/s",
        "of peak",
        "answered",
        "refused",
        "by queue",
        "shed",
        "timeouts",
        "other errors",
        "p99 ms",
        f"worst ms (bound {bound_ms:.0f})",
        "CPU us/req",
        "targets met",
    ]
    return headers, rows
