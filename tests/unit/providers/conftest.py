"""The provider transport's tests run on asyncio's own loop and on uvloop, which ``parley
serve`` uses: their transports differ in details (uvloop's are not registered as
``asyncio.Transport`` subclasses, for one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
