"""``/admin/anomalies``: what usage anomaly detection raised, a scan on demand, and the
review that lifts (or keeps) a key's suspension. Global admins only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.admin import actor, require_global
from parley.api.deps import client_ip, int_param, json_body, json_response, services
from parley.errors import Conflict, InvalidRequest
from parley.identity.anomaly import AnomalyDetector
from parley.identity.schemas import AnomalyReview, AnomalyScan, validated
from parley.store.anomalies import list_anomalies

router = APIRouter(prefix="/admin", tags=["admin"])

_STATUSES = ("open", "dismissed", "confirmed")


def _detector(request: Request) -> AnomalyDetector:
    detector = services(request).anomalies
    if detector is None:
        raise Conflict(
            "usage anomaly detection is off: set PARLEY_ANOMALY_ENABLED=true",
            code="anomaly_detection_off",
        )
    return detector


@router.get("/anomalies")
async def anomalies(request: Request) -> Response:
    """Newest first: each anomaly's subject (a key or user id), window, score, the
    features it was scored on, whether its key was suspended, and its review."""
    require_global(await actor(request))
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in _STATUSES:
        raise InvalidRequest("status must be open, dismissed or confirmed", param="status")
    limit = int_param(q.get("limit"), "limit", 100, 1, 1000)
    offset = int_param(q.get("offset"), "offset", 0, 0, 10**9)
    rows = await list_anomalies(services(request).db, status, limit, offset)
    return json_response({"object": "list", "data": rows})


@router.post("/anomalies/scan")
async def scan(request: Request) -> Response:
    """Score the window ending now (what the schedule does every
    ``PARLEY_ANOMALY_SCAN_SECONDS``), training first if needed or asked; answers the
    anomalies it raised."""
    who = await actor(request)
    require_global(who)
    options = validated(AnomalyScan, await json_body(request))
    found = await _detector(request).scan(retrain=options.retrain)
    data = [
        {
            "id": f.id,
            "scope": f.scope,
            "subject": f.subject,
            "score": f.score,
            "suspended": f.suspended,
        }
        for f in found
    ]
    return json_response({"object": "list", "data": data})


@router.post("/anomalies/{anomaly_id}/review")
async def review(anomaly_id: str, request: Request) -> Response:
    """Close an open anomaly: ``dismissed`` lifts its key's suspension on every instance,
    ``confirmed`` keeps the key suspended (revoke it to end it). Audited."""
    who = await actor(request)
    require_global(who)
    body = validated(AnomalyReview, await json_body(request))
    row = await _detector(request).review(
        anomaly_id, decision=body.decision, by=who.id, note=body.note, ip=client_ip(request)
    )
    return json_response(row)
