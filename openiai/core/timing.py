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
    _open.set([])
    return times


# The stages open in this request, innermost last: a stage opened inside another (a JPEG
# decoded on demand during detection) pauses the outer one, so no second is counted twice.
_open: ContextVar[list | None] = ContextVar("openiai_open_stages", default=None)


@contextmanager
def stage(name: str):
    times = _current.get()
    if times is None:
        yield
        return
    stack = _open.get()
    if stack is None:
        stack = []
        _open.set(stack)
    started = time.perf_counter()
    if stack:
        outer = stack[-1]
        times[outer[0]] = times.get(outer[0], 0.0) + started - outer[1]
    entry = [name, started]
    stack.append(entry)
    try:
        yield
    finally:
        now = time.perf_counter()
        times[name] = times.get(name, 0.0) + now - entry[1]
        if stack and stack[-1] is entry:
            stack.pop()
            if stack:
                stack[-1][1] = now


@contextmanager
def timed(timings: dict[str, float] | None, name: str):
    """Add the block's wall seconds to ``timings[name]`` (nothing when ``timings`` is None):
    the per-model split ``openiai bench attributes`` prints, apart from the request stages."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
