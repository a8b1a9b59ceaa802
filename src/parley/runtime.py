"""Interpreter tuning for a long-running server process.

CPython's cycle collector scans every tracked container object in a generation. After
start-up a Parley process holds ~140,000 long-lived objects (FastAPI, pydantic, SQLAlchemy,
the model registry) that will never become garbage, yet each full collection walked them
all: under 256 concurrent requests the overhead benchmark saw full collections of 120-150 ms
and 2.5 s of collection per 25 s of load. Freezing the start-up heap takes those objects out
of every future collection, and a larger first-generation threshold lets short-lived
request objects die by reference counting before a collection promotes them.

Before that, while ``parley serve`` imports and builds the app, the collector is off: the
~300 young collections it ran over the import-time heap (which is all kept) cost ~0.2 s of
a ~2 s start-up on a loaded two-core machine, for nothing to collect.
"""

from __future__ import annotations

import gc


def pause_collector() -> None:
    """Turn the cycle collector off until ``settle_heap`` or ``resume_collector``
    (``parley serve``'s start-up)."""
    gc.disable()


def resume_collector() -> None:
    """The collector on again: for a process that pauses it and then serves no app of its
    own (``parley serve --workers``' supervisor: its workers are fresh interpreters)."""
    gc.enable()


def settle_heap(gen0_threshold: int) -> None:
    """Freeze what start-up built and raise the first-generation threshold.

    Call once, after start-up and before serving. ``0`` leaves the collector as the
    interpreter configured it (the test suite does, since it builds and drops many apps in
    one process and a frozen cycle is never collected). Either way the collector is on
    afterwards (``pause_collector`` turned it off for the start-up).
    """
    if gen0_threshold > 0:
        gc.collect()
        gc.freeze()
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
    resume_collector()
