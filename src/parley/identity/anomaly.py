"""Usage anomaly detection: an IsolationForest per installation, trained on its own keys'
and users' usage windows, scoring the window that just ended for each of them.

Why an IsolationForest: a leaked key or a scraper is rare and different in several ways at
once (rate, cost, addresses, regularity), and nobody labels normal traffic; the forest
needs no labels and isolates such windows in few splits. Features per window (of
``anomaly_window_minutes``): request count, tokens, cost, distinct models, error rate,
the share of minutes with traffic (a scraper is busy every minute, a person in bursts),
prompt length mean and spread (a script repeats one prompt shape), distinct client
addresses, how usual the hour of day is for this subject, and the request count relative
to the subject's own median (a quiet key turned loud).

It runs off the request path: one instance at a time (a lease in the database) reads the
aggregates from SQL, trains in a worker thread on a schedule, and scores every
``anomaly_scan_seconds``. An anomaly is stored (the admin list), audited, counted
(``parley_usage_anomalies_total``), sent to the alert webhook, and, with
``anomaly_suspend_keys``, suspends its key everywhere until an admin reviews it. A subject
with an open anomaly is not raised again until it is reviewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parley.errors import InvalidRequest, ParleyError
from parley.identity.audit import audit
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics
from parley.store import alerts as alert_store
from parley.store import anomalies as store
from parley.store import leases
from parley.store.db import Database

if TYPE_CHECKING:
    from parley.config import Settings
    from parley.gateway.accounting.alerts import BudgetAlerts
    from parley.gateway.accounting.limits import Admission
    from parley.identity.keys import KeyStore

log = get_logger(__name__)

FEATURES = (
    "log_requests",
    "log_cost",
    "relative_rate",
    "relative_cost_per_request",
    "relative_addresses",
    "relative_active_share",
    "relative_prompt_length",
    "relative_prompt_spread",
    "relative_models",
    "unusual_hour",
    "error_share",
)
"""The columns of a window's feature vector, in order. Most are relative to the subject's
own habits (its training windows' medians): a busy batch job is normal for its key, the
same load from a key that is usually quiet is not. Relative features are damped for
windows of few requests, which say little either way."""

LEASE = "usage-anomaly-scan"
_DAMPING = 20.0
"""Requests at which a window's relative features count half."""
_MEASURES = (
    "rate",
    "cost_per_request",
    "addresses",
    "active_share",
    "prompt_mean",
    "prompt_spread",
    "models",
)


def measures(row: dict[str, Any], window_minutes: int) -> dict[str, float]:
    """A window's habits from its SQL aggregate."""
    requests = max(1.0, float(row["requests"]))
    mean = float(row["prompt_mean"] or 0.0)
    square = float(row["prompt_square"] or 0.0)
    return {
        "rate": requests,
        "cost": float(row["cost_nusd"] or 0),
        "cost_per_request": float(row["cost_nusd"] or 0) / requests,
        "addresses": float(row["addresses"] or 0),
        "active_share": min(1.0, float(row["active_minutes"]) / window_minutes),
        "prompt_mean": mean,
        "prompt_spread": math.sqrt(max(0.0, square - mean * mean)) / mean if mean > 0 else 0.0,
        "models": float(row["models"]),
        "errors": float(row["errors"] or 0),
    }


@dataclass(slots=True)
class Profile:
    """What a subject's training windows say is usual for it: each measure's median, and
    its requests by hour of day (UTC)."""

    medians: dict[str, float] = field(default_factory=dict)
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)

    def hour_share(self, hour: int) -> float:
        """The share of its requests in this hour of day; a subject with no history
        gets an even share, so being new alone is not an anomaly."""
        total = sum(self.hours)
        return self.hours[hour] / total if total else 1 / 24


def profiles(rows: Sequence[dict[str, Any]], window_minutes: int) -> dict[str, Profile]:
    """Per subject, from its training windows (each with ``bucket``)."""
    window_ms = window_minutes * 60_000
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    found: dict[str, Profile] = {}
    for row in rows:
        subject = str(row["subject"])
        measured = measures(row, window_minutes)
        for name in _MEASURES:
            values[subject][name].append(measured[name])
        hour = _hour((int(row["bucket"]) + 1) * window_ms)
        found.setdefault(subject, Profile()).hours[hour] += measured["rate"]
    for subject, by_name in values.items():
        found[subject].medians = {n: statistics.median(v) for n, v in by_name.items()}
    return found


def vector(
    row: dict[str, Any], profile: Profile | None, window_minutes: int, end_ms: int
) -> list[float]:
    """A window's features (``FEATURES`` order) from its SQL aggregate."""
    now = measures(row, window_minutes)
    usual = profile.medians if profile is not None and profile.medians else now
    weight = now["rate"] / (now["rate"] + _DAMPING)

    def ratio(name: str) -> float:
        return weight * math.log((now[name] + 1) / (usual[name] + 1))

    def difference(name: str) -> float:
        return weight * (now[name] - usual[name])

    share = (profile or Profile()).hour_share(_hour(end_ms))
    return [
        math.log1p(now["rate"]),
        math.log1p(now["cost"] / 1e6),  # thousandths of a dollar
        ratio("rate"),
        ratio("cost_per_request"),
        ratio("addresses"),
        difference("active_share"),
        ratio("prompt_mean"),
        difference("prompt_spread"),
        difference("models"),
        weight * min(0.0, math.log(share * 24 + 0.1)),
        now["errors"] / (now["rate"] + 10),
    ]


def _hour(ms: int) -> int:
    return int(ms // 3_600_000) % 24


@dataclass(slots=True)
class Model:
    """One scope's trained forest and the profiles its features were computed with."""

    forest: Any
    profiles: dict[str, Profile]
    windows: int
    trained_ms: int

    def scores(self, matrix: list[list[float]]) -> list[float]:
        """Anomaly scores in (0, 1]: about 0.5 for ordinary windows, towards 1 for
        windows the forest isolates in few splits (scikit-learn's ``-score_samples``)."""
        return [-float(s) for s in self.forest.score_samples(matrix)]


def train(matrix: list[list[float]], *, seed: int = 0) -> Any:
    """Fit the forest (CPU-bound: run in a worker thread). scikit-learn is imported here:
    it is an optional dependency (``parley[anomaly]``) and costs start-up time."""
    try:
        from sklearn.ensemble import IsolationForest  # noqa: PLC0415
    except ImportError as exc:
        raise InvalidRequest(
            "anomaly detection needs scikit-learn: install parley[anomaly]"
        ) from exc
    forest = IsolationForest(n_estimators=200, max_samples=min(256, len(matrix)), random_state=seed)
    forest.fit(matrix)
    return forest


@dataclass(frozen=True, slots=True)
class Scored:
    """One subject's window, scored."""

    subject: str
    score: float
    row: dict[str, Any]
    features: list[float]


@dataclass(frozen=True, slots=True)
class Found:
    """An anomaly raised by a scan."""

    id: str
    scope: str
    subject: str
    score: float
    suspended: bool


class AnomalyDetector:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        *,
        admission: Admission | None,
        keys: KeyStore,
        alerts: BudgetAlerts | None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._admission = admission
        self._keys = keys
        self._alerts = alerts
        self._window_ms = settings.anomaly_window_minutes * 60_000
        self._models: dict[str, Model] = {}
        self._holder = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="parley-anomaly-scan")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            with contextlib.suppress(ParleyError):
                await leases.release(self._db, LEASE, self._holder)

    async def _run(self) -> None:
        period = self._settings.anomaly_scan_seconds
        while True:
            # The first round waits too: training reads days of usage, not for start-up.
            await asyncio.sleep(period)
            try:
                now = int(time.time() * 1000)
                ttl = int(period * 3000)  # three missed rounds: another instance takes over
                if await leases.hold(self._db, LEASE, self._holder, ttl_ms=ttl, now_ms=now):
                    await self.scan()
                else:
                    self._models.clear()  # another instance scans; retrain if it comes back
            except ParleyError as exc:
                log.warning("usage anomaly scan failed; will retry", error=exc.message)
            except Exception:  # the loop must outlive a bug; its traceback is wanted
                log.exception("usage anomaly scan failed unexpectedly")

    def model(self, scope: str) -> Model | None:
        """The scope's trained model on this instance (None before training)."""
        return self._models.get(scope)

    async def scan(self, *, now_ms: int | None = None, retrain: bool = False) -> list[Found]:
        """Score the window ending ``now_ms`` for every key and user active in it,
        training first where the model is missing, stale or ``retrain`` asks."""
        async with self._lock:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            found: list[Found] = []
            for scope in store.SCOPES:
                found += await self._scan_scope(scope, now, retrain)
            return found

    async def _scan_scope(self, scope: str, now: int, retrain: bool) -> list[Found]:
        scored = await self.score(scope, now, retrain=retrain)
        if not scored:
            return []
        already = await store.open_subjects(self._db, scope)
        since = now - self._window_ms
        found: list[Found] = []
        for window in scored:
            if window.score < self._settings.anomaly_threshold or window.subject in already:
                continue
            row, features = window.row, window.features
            detail = {
                "requests": int(row["requests"]),
                "tokens": int(row["tokens"] or 0),
                "cost_usd": int(row["cost_nusd"] or 0) / 1e9,
                "models": int(row["models"]),
                "errors": int(row["errors"] or 0),
                "addresses": int(row["addresses"] or 0),
                "vector": dict(zip(FEATURES, (round(f, 4) for f in features), strict=True)),
            }
            found.append(
                await self._raise(scope, window.subject, (since, now), window.score, detail)
            )
        return found

    async def score(self, scope: str, now: int, *, retrain: bool = False) -> list[Scored]:
        """Every subject active in the window ending ``now``, with its score; nothing
        while training lacks history. Raises nothing, stores nothing (``bench/anomaly.py``
        measures detection with it)."""
        model = self._models.get(scope)
        stale = self._settings.anomaly_retrain_hours * 3_600_000
        if retrain or model is None or now - model.trained_ms >= stale:
            model = await self._train(scope, now)
        if model is None:
            return []
        rows = await store.trailing(self._db, scope, now - self._window_ms, now)
        if not rows:
            return []
        minutes = self._settings.anomaly_window_minutes
        matrix = [vector(r, model.profiles.get(str(r["subject"])), minutes, now) for r in rows]
        scores = await asyncio.to_thread(model.scores, matrix)
        return [
            Scored(str(r["subject"]), score, r, features)
            for r, features, score in zip(rows, matrix, scores, strict=True)
        ]

    async def _train(self, scope: str, now: int) -> Model | None:
        since = now - int(self._settings.anomaly_training_days * 86_400_000)
        # Whole windows only, ending before the one being scored began.
        until = (now - self._window_ms) // self._window_ms * self._window_ms
        rows = await store.windows(self._db, scope, since, until, self._window_ms)
        if len(rows) < self._settings.anomaly_min_windows:
            log.info(
                "usage anomaly detection is waiting for history",
                scope=scope,
                windows=len(rows),
                needed=self._settings.anomaly_min_windows,
            )
            self._models.pop(scope, None)
            return None
        known = profiles(rows, self._settings.anomaly_window_minutes)
        minutes = self._settings.anomaly_window_minutes
        matrix = [
            vector(r, known[str(r["subject"])], minutes, (int(r["bucket"]) + 1) * self._window_ms)
            for r in rows
        ]
        forest = await asyncio.to_thread(train, matrix)
        model = Model(forest, known, len(rows), now)
        self._models[scope] = model
        log.info("usage anomaly model trained", scope=scope, windows=len(rows))
        return model

    async def _raise(
        self,
        scope: str,
        subject: str,
        window: tuple[int, int],
        score: float,
        detail: dict[str, Any],
    ) -> Found:
        """Store, suspend (if configured), count, audit, log and send one anomaly."""
        since, now = window
        suspend = scope == "key" and self._settings.anomaly_suspend_keys
        ident = uuid.uuid4().hex
        row = {
            "id": ident,
            "scope": scope,
            "subject": subject,
            "window_start_ms": since,
            "window_end_ms": now,
            "score": score,
            "features": detail,
            "suspended": suspend,
            "status": "open",
            "created_ms": now,
        }
        await store.record(self._db, row, suspend_key=suspend)
        if suspend:
            if self._admission is not None:
                await self._admission.suspend_key(subject)
            self._keys.forget(subject)
        self._metrics.usage_anomalies.labels(scope, "suspend" if suspend else "alert").inc()
        summary = {"id": ident, "scope": scope, "score": round(score, 4), "suspended": suspend}
        await audit(
            self._db,
            actor="anomaly-detection",
            action="usage.anomaly",
            target=subject,
            detail=summary,
        )
        log.warning("usage anomaly", subject=subject, **summary)
        await self._webhook(row)
        return Found(ident, scope, subject, score, suspend)

    async def _webhook(self, row: dict[str, Any]) -> None:
        if self._alerts is None or not self._alerts.enabled:
            return
        ident, since, now = f"anomaly:{row['id']}", row["window_start_ms"], row["window_end_ms"]
        body = {
            "id": ident,
            "type": "usage.anomaly",
            "scope": row["scope"],
            "subject": row["subject"],
            "window_start": since,
            "window_end": now,
            "score": round(row["score"], 4),
            "suspended": row["suspended"],
            "features": row["features"],
            "created": now,
        }
        event = alert_store.AlertEvent(
            ident,
            row["scope"],
            row["subject"],
            f"{since}-{now}",
            row["score"],
            0,
            0,
            now,
            payload=json.dumps(body, separators=(",", ":")),
        )
        try:
            await self._alerts.queue(event)
        except ParleyError as exc:  # the anomaly is stored and audited: the list has it
            log.warning("could not queue the anomaly webhook", id=ident, error=exc.message)

    async def review(
        self, ident: str, *, decision: str, by: str, note: str | None, ip: str | None
    ) -> dict[str, Any]:
        """An admin's verdict: ``dismissed`` (a false alarm: the key works again on every
        instance) or ``confirmed`` (the key stays suspended; revoke it to end it)."""
        now = int(time.time() * 1000)
        row = await store.review(self._db, ident, decision=decision, by=by, note=note, now_ms=now)
        if row["lifted"]:
            if self._admission is not None:
                await self._admission.lift_suspension(row["subject"])
            self._keys.forget(row["subject"])
        await audit(
            self._db,
            actor=by,
            action=f"usage.anomaly.{decision}",
            target=row["subject"],
            ip=ip,
            detail={"id": ident, "lifted": row["lifted"]},
        )
        return row
