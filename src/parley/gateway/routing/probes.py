"""Active health checks: deployments with ``health_check`` set are probed in the
background with a one-token completion, and each result feeds their circuit breaker as a
real call would. A failing idle deployment is opened before a user's request finds it; an
open one, once its cooldown has passed, is probed through a half-open slot and closes on
success without waiting for a user to be its test. Passive health (real traffic) applies
either way; probes are off by default because each one is a (tiny) billed call.
"""

from __future__ import annotations

import asyncio

from parley.config.loader import Deployment
from parley.errors import ParleyError
from parley.gateway.registry import ModelRegistry
from parley.gateway.routing.health import DeploymentHealth, HealthBook
from parley.observability.logging import get_logger
from parley.providers.base import Provider
from parley.schema.chat import ChatRequest, UserMessage

log = get_logger(__name__)
PROBE = ChatRequest(model="", messages=[UserMessage("ping")], max_tokens=1)


async def probe_forever(registry: ModelRegistry, health: HealthBook) -> None:
    """Every configured deployment's probe loop (returns at once when none is)."""
    probed = [d for group in registry.groups for d in group.deployments if d.health_check]
    await asyncio.gather(*(_loop(d, registry.provider(d), health.of(d)) for d in probed))


async def _loop(deployment: Deployment, provider: Provider, health: DeploymentHealth) -> None:
    assert deployment.health_check is not None
    config = deployment.health_check
    while True:
        await asyncio.sleep(config.interval)
        if not health.breaker.acquire():
            continue  # open and cooling down: nothing a probe would change yet
        ok = await probe(provider, config.timeout)
        health.breaker.record(ok)
        health.probed(ok)
        if not ok:
            log.warning("health check failed", deployment=deployment.label)


async def probe(provider: Provider, limit_s: float) -> bool:
    try:
        async with asyncio.timeout(limit_s):
            await provider.complete(PROBE)
    except (ParleyError, TimeoutError, OSError):
        return False
    return True
