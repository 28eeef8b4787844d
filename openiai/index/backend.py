"""Slot-level vector spaces: an internal detail of the in-memory engine (:mod:`.manager`).

A backend stores (id, vector) pairs of one space (faces or persons of one collection) and
answers top-k inner-product queries, optionally restricted to an allowed id set. Ids are dense
non-negative int64 *slots* handed out by :class:`openiai.index.collection.Collection` (not
database keys), so a filter can always be a bitmap. :class:`FaissBackend` is the
implementation.

This is not the seam for another engine: a remote engine (Milvus, ...) implements
:class:`openiai.index.engine.VectorIndex` instead, keyed by database pks with groups as a
filter field, and needs neither slots nor bitmaps.

Backends are not thread-safe on their own: the collection's readers-writer lock is held around
them (any number of concurrent ``search`` calls, or one writer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


class Allowed:
    """The set of slots a search may return, over slots ``0 .. size-1`` (a group filter of
    the in-memory engine).

    Held as a packed bitmap (FAISS ``IDSelectorBitmap`` layout: bit ``i & 7`` of byte
    ``i >> 3``, 1/8 byte per slot) plus ``count``, the number of allowed ids; the id list is
    computed on demand (for backends that take ids rather than bitmaps).
    """

    __slots__ = ("count", "_bitmap", "_ids")

    def __init__(self, mask: np.ndarray | None = None, count: int | None = None,
                 bitmap: np.ndarray | None = None) -> None:
        if bitmap is None:
            mask = np.asarray(mask, dtype=bool)
            bitmap = np.packbits(mask, bitorder="little")
            if count is None:
                count = int(np.count_nonzero(mask))
        elif count is None:
            count = int(np.unpackbits(bitmap).sum())
        self._bitmap = bitmap
        self.count = int(count)
        self._ids: np.ndarray | None = None

    @classmethod
    def from_ids(cls, ids: np.ndarray, size: int) -> "Allowed":
        mask = np.zeros(max(int(size), 0), dtype=bool)
        ids = np.asarray(ids, dtype=np.int64)
        mask[ids[(ids >= 0) & (ids < size)]] = True
        return cls(mask)

    def bitmap(self) -> np.ndarray:
        return self._bitmap

    def ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.flatnonzero(np.unpackbits(self._bitmap, bitorder="little")).astype(np.int64)
        return self._ids


@runtime_checkable
class VectorBackend(Protocol):
    """One vector space of a :class:`~openiai.index.collection.Collection`, keyed by slot."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert vectors (n x dim float32, unit norm) under new ids (n int64, not present)."""

    def remove(self, ids: np.ndarray) -> int:
        """Drop these ids (missing ones are ignored); returns how many were removed."""

    def search(self, queries: np.ndarray, k: int, allowed: Allowed | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores q x k float32, ids q x k int64) best first; id -1 / score -inf pad short rows."""

    def count(self) -> int:
        """Number of stored vectors."""

    def snapshot(self, path: Path) -> None:
        """Write the whole store to `path` (a file); the caller makes it atomic."""

    def load(self, path: Path) -> None:
        """Replace the store's content with a snapshot written by :meth:`snapshot`."""
