"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

from parley.api.metrics import authorize

router = APIRouter(tags=["health"])

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when healthy, else a short reason. Storage adds its check when it lands."""


@router.get("/health/live")
async def live() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    checks: dict[str, ReadinessCheck] = request.app.state.readiness
    failures: dict[str, str] = {}
    for name, check in checks.items():
        reason = await check()
        if reason is not None:
            failures[name] = reason
    if failures or not request.app.state.started:
        return JSONResponse({"status": "unavailable", "failures": failures}, status_code=503)
    return JSONResponse({"status": "ok", "checks": sorted(checks)})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition; who may read it is ``api/metrics.py``'s decision."""
    authorize(request.app.state.settings, request.headers.get("authorization"), own_listener=False)
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
