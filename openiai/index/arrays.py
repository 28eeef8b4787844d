"""Compact numpy containers for the per-collection maps (a Python dict costs ~100 B an entry).

``Grow``: an append-only typed array with amortised doubling. ``IntMap``: int64 -> int64, kept
as sorted key / value arrays plus a small dict of recent inserts merged in batches; lookups
are vectorised ``searchsorted``. ``RWLock``: many readers or one writer, writers first.
"""

from __future__ import annotations

import threading

import numpy as np


class Grow:
    __slots__ = ("_buf", "n")

    def __init__(self, dtype, data: np.ndarray | None = None) -> None:
        if data is None:
            self._buf = np.zeros(16, dtype=dtype)
            self.n = 0
        else:
            self._buf = np.array(data, dtype=dtype)
            self.n = len(self._buf)

    @property
    def a(self) -> np.ndarray:
        """View of the live part (no copy)."""
        return self._buf[: self.n]

    def __len__(self) -> int:
        return self.n

    def extend(self, values) -> int:
        """Append; returns the index of the first appended element."""
        values = np.asarray(values, dtype=self._buf.dtype).reshape(-1)
        start, end = self.n, self.n + len(values)
        if end > len(self._buf):
            cap = max(end, int(len(self._buf) * 1.5) + 16)
            buf = np.zeros(cap, dtype=self._buf.dtype)
            buf[: self.n] = self._buf[: self.n]
            self._buf = buf
        self._buf[start:end] = values
        self.n = end
        return start

    def compact(self, keep: np.ndarray) -> None:
        self._buf = np.ascontiguousarray(self.a[keep])
        self.n = len(self._buf)


class IntMap:
    """int64 -> int64 (values >= 0). Missing keys read as -1."""

    MERGE_AT = 4096

    def __init__(self, keys: np.ndarray | None = None, vals: np.ndarray | None = None) -> None:
        if keys is None:
            self._k = np.zeros(0, np.int64)
            self._v = np.zeros(0, np.int64)
        else:
            order = np.argsort(keys, kind="stable")
            self._k = np.asarray(keys, np.int64)[order]
            self._v = np.asarray(vals, np.int64)[order]
        self._pending: dict[int, int] = {}
        self._dead = 0

    def __len__(self) -> int:
        return len(self._k) - self._dead + len(self._pending)

    def _find(self, key: int) -> int:
        i = int(np.searchsorted(self._k, key))
        return i if i < len(self._k) and self._k[i] == key else -1

    def get(self, key: int) -> int:
        key = int(key)
        v = self._pending.get(key)
        if v is not None:
            return v
        i = self._find(key)
        return int(self._v[i]) if i >= 0 else -1

    def get_many(self, keys) -> np.ndarray:
        keys = np.asarray(keys, np.int64).reshape(-1)
        out = np.full(len(keys), -1, np.int64)
        if len(self._k):
            pos = np.minimum(np.searchsorted(self._k, keys), len(self._k) - 1)
            hit = self._k[pos] == keys
            out[hit] = self._v[pos[hit]]
        if self._pending:
            for j, key in enumerate(keys.tolist()):
                v = self._pending.get(key)
                if v is not None:
                    out[j] = v
        return out

    def set(self, key: int, value: int) -> None:
        key, value = int(key), int(value)
        i = self._find(key)
        if i >= 0:
            if self._v[i] < 0:
                self._dead -= 1
            self._v[i] = value
            return
        self._pending[key] = value
        if len(self._pending) >= self.MERGE_AT:
            self.merge()

    def pop(self, key: int) -> int:
        key = int(key)
        v = self._pending.pop(key, None)
        if v is not None:
            return v
        i = self._find(key)
        if i < 0 or self._v[i] < 0:
            return -1
        v = int(self._v[i])
        self._v[i] = -1
        self._dead += 1
        return v

    def merge(self) -> None:
        keys, vals = self.items()
        order = np.argsort(keys, kind="stable")
        self._k, self._v = keys[order], vals[order]
        self._pending, self._dead = {}, 0

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        live = self._v >= 0
        keys, vals = self._k[live], self._v[live]
        if self._pending:
            keys = np.concatenate([keys, np.fromiter(self._pending.keys(), np.int64, len(self._pending))])
            vals = np.concatenate([vals, np.fromiter(self._pending.values(), np.int64, len(self._pending))])
        return keys, vals

    def nbytes(self) -> int:
        return self._k.nbytes + self._v.nbytes + 100 * len(self._pending)


class RWLock:
    """Readers share, a writer is alone; a waiting writer stops new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    class _Ctx:
        __slots__ = ("_enter", "_exit")

        def __init__(self, enter, exit_) -> None:
            self._enter, self._exit = enter, exit_

        def __enter__(self):
            self._enter()
            return self

        def __exit__(self, *exc) -> None:
            self._exit()

    def read(self) -> "RWLock._Ctx":
        return RWLock._Ctx(self.acquire_read, self.release_read)

    def write(self) -> "RWLock._Ctx":
        return RWLock._Ctx(self.acquire_write, self.release_write)
