"""A bounded background load for chaos tests: a few client threads sending chat requests
until told to stop, each request with its own id, every outcome kept and tallied."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    request_id: str
    status: int | None
    """None: the request failed without an HTTP answer (connection refused or reset)."""
    retry_after: str | None
    seconds: float


@dataclass
class Load:
    """``threads`` clients posting to ``url`` with ``key`` until ``stop`` (or ``limit``
    requests in all), a short pause between requests so a test stays bounded."""

    url: str
    key: str
    model: str
    threads: int = 4
    limit: int = 4000
    timeout: float = 20.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    def __enter__(self) -> Load:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)

    def _next_id(self, worker: int) -> str | None:
        with self._lock:
            if self._count >= self.limit:
                return None
            self._count += 1
            return f"chaos-{worker}-{self._count}"

    def _run(self, worker: int) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        body = {"model": self.model, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=self.url, timeout=self.timeout) as http:
            while not self._stop.is_set():
                request_id = self._next_id(worker)
                if request_id is None:
                    return
                started = time.monotonic()
                try:
                    response = http.post(
                        "/v1/chat/completions",
                        json=body,
                        headers={**headers, "x-request-id": request_id},
                    )
                    outcome = Outcome(
                        request_id,
                        response.status_code,
                        response.headers.get("retry-after"),
                        time.monotonic() - started,
                    )
                except httpx.TransportError:
                    outcome = Outcome(request_id, None, None, time.monotonic() - started)
                with self._lock:
                    self.outcomes.append(outcome)
                time.sleep(0.01)

    def answered(self) -> set[str]:
        return {o.request_id for o in self.outcomes if o.status == 200}

    def summary(self) -> str:
        """What was sent, answered, refused and failed, printed by each scenario."""
        counts = collections.Counter(
            "answered"
            if o.status == 200
            else "refused"
            if o.status in (429, 503)
            else "no answer"
            if o.status is None
            else f"HTTP {o.status}"
            for o in self.outcomes
        )
        slowest = max((o.seconds for o in self.outcomes), default=0.0)
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        return f"sent {len(self.outcomes)}: {parts}; slowest {slowest:.2f} s"

    def during(self, since: int) -> list[Outcome]:
        """Outcomes recorded after the first ``since`` (a mark taken with ``len``)."""
        with self._lock:
            return list(self.outcomes[since:])

    def mark(self) -> int:
        with self._lock:
            return len(self.outcomes)
