"""Micro-batching: faces from concurrent requests in one recognizer call (issue 15 item 2).

``OPENIAI_MICRO_BATCH_MS`` > 0 turns it on. The first request to arrive with crops becomes the
batch's leader: it waits up to that long for other requests' crops (or until ``max_batch``
crops are waiting), then takes an inference slot and runs them all in one ``embed`` call, and
hands each request its rows. Requests that arrive while a batch runs gather into the next one.
With it off (the default) each request embeds its own faces, as before: on this 2-core CPU
with one onnxruntime thread per run, two requests already embed side by side, and measured
batching did not raise CompareFace or SearchPersons throughput (README, "Fast inference").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np


class _Batch:
    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []
        self.closed = False
        self.done = threading.Event()
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class MicroBatcher:
    """Collects crops for one model; :meth:`embed` returns the caller's rows."""

    def __init__(self, run: Callable[[list[np.ndarray]], np.ndarray], slot: AbstractContextManager,
                 max_wait_s: float = 0.002, max_batch: int = 16) -> None:
        self._run = run
        self._slot = slot
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self._lock = threading.Condition()
        self._open: _Batch | None = None
        self.calls = 0  # model calls made (for tests and the benchmark)
        self.crops = 0

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        with self._lock:
            batch = self._open
            leader = batch is None
            if leader:
                batch = self._open = _Batch()
            start = len(batch.crops)
            batch.crops.extend(crops)
            if len(batch.crops) >= self.max_batch:
                self._lock.notify_all()
        if leader:
            deadline = time.monotonic() + self.max_wait_s
            with self._lock:
                while len(batch.crops) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._lock.wait(left)
                batch.closed = True
                self._open = None  # later arrivals start the next batch
            try:
                with self._slot:
                    batch.result = np.asarray(self._run(batch.crops), np.float32)
                self.calls += 1
                self.crops += len(batch.crops)
            except BaseException as exc:  # every waiting request gets the error
                batch.error = exc
            finally:
                batch.done.set()
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.result[start:start + len(crops)]
