"""Prometheus metrics, one registry per app instance (tests build several apps per process).

With several worker processes (``parley serve --workers N``) the CLI points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start: each worker's
values then live in files there, and ``/metrics``, whichever worker answers, aggregates
all of them (counters and histograms summed, gauges summed over live workers).

A single process also reports its own memory, CPU and open files (``process_*``, Linux
``/proc``), which the memory alert and the dashboards read. With several workers those are
left out: the answering worker's figures would pass for the whole server's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from parley.config.loader import Deployment
from parley.errors import ParleyError

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        ProcessCollector(registry=self.registry)
        self.http_requests = Counter(
            "parley_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "parley_http_request_seconds",
            "Time to response headers",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.overhead_seconds = Histogram(
            "parley_overhead_seconds",
            "Time spent in Parley, excluding upstream calls",
            ["route"],
            buckets=_OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "parley_upstream_requests",
            "Calls to upstream deployments",
            ["deployment", "provider", "outcome"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "parley_upstream_seconds",
            "Upstream time to response headers",
            ["deployment", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "parley_tokens",
            "Tokens processed",
            ["model_group", "deployment", "kind"],
            registry=self.registry,
        )

        self.cost = Counter(
            "parley_cost_usd",
            "Spend charged to callers, USD",
            ["model_group"],
            registry=self.registry,
        )
        self.limit_refusals = Counter(
            "parley_limit_refusals",
            "Requests refused by a limit (kind: rpm, tpm, parallel, budget, revoked)",
            ["kind", "scope"],
            registry=self.registry,
        )
        self.soft_budget_exceeded = Counter(
            "parley_soft_budget_exceeded",
            "Requests admitted past a soft budget",
            ["scope"],
            registry=self.registry,
        )
        self.usage_records = Counter(
            "parley_usage_records",
            "Usage records by outcome (queued, written, dropped)",
            ["outcome"],
            registry=self.registry,
        )
        self.usage_anomalies = Counter(
            "parley_usage_anomalies",
            "Usage windows scored as anomalies (scope: key or user; action: alert or suspend)",
            ["scope", "action"],
            registry=self.registry,
        )
        self.usage_backlog = Gauge(
            "parley_usage_backlog",
            "Usage records queued and not yet written (with Redis: the shared stream's)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self.db_pool = Gauge(
            "parley_db_pool_connections",
            "Primary database connections held by this process (state: in_use, idle)",
            ["state"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.redis_pool = Gauge(
            "parley_redis_pool_connections",
            "Redis connections held by this process (state: in_use, idle)",
            ["state"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.websockets = Gauge(
            "parley_websocket_connections",
            "WebSockets (/api/ws) open on this process",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.active_users = Gauge(
            "parley_active_users",
            "Users with at least one WebSocket open on this process (a user connected to "
            "two instances counts on each)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.outbox_backlog = Gauge(
            "parley_outbox_backlog",
            "Rows waiting in a shared outbox (kind: events, for the bus; mail, for SMTP)",
            ["kind"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.bus_lag = Gauge(
            "parley_bus_lag_seconds",
            "Age of the oldest stored conversation event not yet on the bus (0: none waiting)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self.db_reads = Counter(
            "parley_db_lag_tolerant_reads",
            "Lag-tolerant reads (lists, search, usage reports) by where they went",
            ["target"],  # primary, or a replica's host:port
            registry=self.registry,
        )
        self.db_replica_up = Gauge(
            "parley_db_replica_up",
            "1 while a read replica is in rotation (reachable, in recovery, within the lag bound)",
            ["replica"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.db_replica_lag = Gauge(
            "parley_db_replica_lag_seconds",
            "A read replica's lag behind the primary at its last check",
            ["replica"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self.queue_depth = Gauge(
            "parley_queue_depth",
            "Requests waiting for a model group's concurrency slot",
            ["model_group"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.queue_wait = Histogram(
            "parley_queue_wait_seconds",
            "Time waited for a concurrency slot (admitted or not)",
            ["model_group"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.admission_refusals = Counter(
            "parley_admission_refusals",
            "Requests refused by admission control (queue_full, queue_timeout)",
            ["model_group", "reason"],
            registry=self.registry,
        )
        self.shed_requests = Counter(
            "parley_shed_requests",
            "Model calls refused at once because the event loop lagged (PARLEY_SHED_LOOP_LAG_MS)",
            registry=self.registry,
        )
        self.retries = Counter(
            "parley_retries",
            "Attempts after the first within a model group",
            ["model_group"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "parley_fallbacks",
            "Moves from one model group to a fallback group, by reason",
            ["from_group", "to_group", "reason"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "parley_breaker_transitions",
            "Circuit breaker state changes",
            ["deployment", "to_state"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "parley_deployment_in_flight",
            "Calls in flight per deployment",
            ["deployment"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.ttft_seconds = Histogram(
            "parley_time_to_first_token_seconds",
            "Time to the first token (streams) or to the response (non-streaming)",
            ["model_group"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "parley_errors",
            "Requests that ended in an error, by error code",
            ["model_group", "code"],
            registry=self.registry,
        )

        self.tier_decisions = Counter(
            "parley_tier_decisions",
            "Tiered routing decisions",
            ["model", "tier"],
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "parley_cache_lookups",
            "Response cache outcomes per request (hit, semantic-hit, miss, bypass)",
            ["model_group", "outcome"],
            registry=self.registry,
        )
        self.cache_stores = Counter(
            "parley_cache_stores",
            "Answers offered to the response cache, by what became of them",
            ["outcome"],
            registry=self.registry,
        )
        self.experiment_requests = Counter(
            "parley_experiment_requests",
            "Requests per experiment variant",
            ["experiment", "variant"],
            registry=self.registry,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the hot path asks for the same few children
        on every request, and prometheus_client's lookup takes a lock and builds a key."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            if len(self._children) > 10_000:  # label sets are bounded; this is a backstop
                self._children.clear()
            found = self._children[key] = metric.labels(*labels)
        return found

    @contextlib.contextmanager
    def upstream_call(self, deployment: Deployment) -> Iterator[None]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except ParleyError as exc:
            outcome = str(exc.status_code)
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            self.child(self.upstream_requests, deployment.label, deployment.provider, outcome).inc()
            self.child(self.upstream_seconds, deployment.label, deployment.provider).observe(
                time.perf_counter() - started
            )

    def record_tokens(self, group: str, deployment: str, prompt: int, completion: int) -> None:
        self.child(self.tokens, group, deployment, "prompt").inc(prompt)
        self.child(self.tokens, group, deployment, "completion").inc(completion)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
            return generate_latest(registry)
        return generate_latest(self.registry)
