"""Interpreter tuning for a long-running server process.

CPython's cycle collector scans every tracked container object in a generation. After
start-up a Parley process holds ~140,000 long-lived objects (FastAPI, pydantic, SQLAlchemy,
the model registry) that will never become garbage, yet each full collection walked them
all: under 256 concurrent requests the overhead benchmark saw full collections of 120-150 ms
and 2.5 s of collection per 25 s of load. Freezing the start-up heap takes those objects out
of every future collection, and a larger first-generation threshold lets short-lived
request objects die by reference counting before a collection promotes them.
"""

from __future__ import annotations

import gc


def settle_heap(gen0_threshold: int) -> None:
    """Freeze what start-up built and raise the first-generation threshold.

    Call once, after start-up and before serving. ``0`` leaves the collector as the
    interpreter configured it (the test suite does, since it builds and drops many apps in
    one process and a frozen cycle is never collected).
    """
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
