"""Per-request stage timers (decode, detect, embed, landmarks, attributes, quality, search,
serialise).

The HTTP endpoint calls :func:`begin` before running a handler; code on the request path wraps
its work in ``with stage("detect"):``. The dict lives in a context variable, which anyio copies
into the worker thread that runs the handler, so handlers need no extra argument. Outside a
request (CLI tools, tests) :func:`stage` costs one context-variable lookup and records nothing.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar

STAGES = ("decode", "detect", "embed", "landmarks", "attributes", "quality", "search",
          "serialise")

_current: ContextVar[dict[str, float] | None] = ContextVar("openiai_stage_times", default=None)


def begin() -> dict[str, float]:
    """Start timing a request; returns the dict of seconds per stage that fills as it runs."""
    times: dict[str, float] = {}
    _current.set(times)
    return times


@contextmanager
def stage(name: str):
    times = _current.get()
    if times is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        times[name] = times.get(name, 0.0) + time.perf_counter() - started
