"""IndexManager: the in-memory engine behind :class:`openiai.index.engine.VectorIndex`.

A table of :class:`Collection` (one per (account, model version), FAISS vector spaces with
slot bitmaps as group filters), the search API over it, change-log replay
(:mod:`.replay`) and local snapshots (:mod:`.snapshots`). Its content lives in this process,
so it is not ``persistent``: IndexSync restores it from a snapshot plus the log at start.

A collection's vectors are as wide as its model version's recognizer
(:func:`openiai.core.versions.get`); the ``dim`` override gives every collection one width
(tests and benchmarks with synthetic vectors).

Thread-safety: one readers-writer lock per collection (searches run concurrently, FAISS
releases the GIL; writes are exclusive), plus a manager lock for the collection table and for
apply/snapshot ordering.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..core import versions
from ..core.changes import Change
from ..core.features import normalize
from . import snapshots
from .collection import BackendFactory, Collection
from .engine import Hit, by_group
from .faiss_backend import DEFAULT_EXACT_THRESHOLD, FaissBackend
from .replay import apply_change

# SearchFaces returns each person once: the backend is asked for this many faces per person
# wanted, the most a person can have (actions.limits.FACES_PER_PERSON, a layer above).
MAX_FACES_PER_PERSON = 5


class IndexManager:
    """The in-memory :class:`~openiai.index.engine.VectorIndex` (see the module docstring)."""

    persistent = False  # restored from local snapshots + the log at every start

    def __init__(self, dim: int | None = None, exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
                 backend_factory: BackendFactory | None = None) -> None:
        self._dim = dim
        self._factory: BackendFactory = backend_factory or (
            lambda d: FaissBackend(d, exact_threshold=exact_threshold))
        self._collections: dict[tuple[Any, str], Collection] = {}
        self._lock = threading.RLock()  # collection table; apply/snapshot/load ordering
        self.last_seq = 0

    # ---------------------------------------------------------------- collections
    def dim(self, version: str) -> int:
        """The width of `version`'s vectors in this index."""
        return self._dim or versions.get(version).dim

    def _get(self, account, version: str, create: bool) -> Collection | None:
        key = (account, str(version))
        col = self._collections.get(key)
        if col is None and create:
            with self._lock:
                col = self._collections.get(key)
                if col is None:
                    col = self._collections[key] = Collection(self._factory, self.dim(version))
        return col

    def collection(self, account, version: str) -> Collection | None:
        """The engine's own structure, for benchmarks and tests that look inside it."""
        return self._get(account, version, create=False)

    def collections(self) -> list[tuple[Any, str]]:
        return list(self._collections)

    def clear(self) -> None:
        with self._lock:
            self._collections.clear()
            self.last_seq = 0

    def drop(self, account, version: str) -> None:
        with self._lock:
            self._collections.pop((account, str(version)), None)

    def counts(self, account, version: str) -> dict[str, int]:
        col = self._get(account, version, False)
        if col is None:
            return {"faces": 0, "persons": 0}
        with col.lock.read():
            return col.counts()

    def group_counts(self, account, version: str, group_pks: Iterable[int]) -> dict[str, int]:
        """The cached group filter knows these counts: no database count on the search path."""
        col = self._get(account, version, False)
        if col is None:
            return {"faces": 0, "persons": 0}
        with col.lock.read():
            return col.group_counts(group_pks)

    # ---------------------------------------------------------------- writes (replay.Writes)
    def _write(self, account, version, fn: Callable[[Collection], Any]):
        col = self._get(account, version, True)
        with col.lock.write():
            return fn(col)

    def upsert_face(self, account, version, face_pk: int, person_pk: int, vector) -> None:
        self._write(account, version, lambda c: c.upsert_face(face_pk, person_pk, vector))

    def remove_faces(self, account, version, face_pks: Iterable[int]) -> int:
        return self._write(account, version, lambda c: c.remove_faces(list(face_pks)))

    def set_person(self, account, version, person_pk: int, fused_vector, group_pks: Iterable[int] | None = None) -> None:
        self._write(account, version, lambda c: c.set_person(person_pk, fused_vector, group_pks))

    def remove_persons(self, account, version, person_pks: Iterable[int]) -> int:
        return self._write(account, version, lambda c: c.remove_persons(list(person_pks)))

    def add_memberships(self, account, version, person_pk: int, group_pks: Iterable[int]) -> None:
        self._write(account, version, lambda c: c.add_memberships(person_pk, list(group_pks)))

    def remove_memberships(self, account, version, person_pk: int, group_pks: Iterable[int]) -> None:
        self._write(account, version, lambda c: c.remove_memberships(person_pk, list(group_pks)))

    def remove_group(self, account, version, group_pk: int) -> None:
        self._write(account, version, lambda c: c.remove_group(group_pk))

    # ---------------------------------------------------------------- change log and rebuild
    def apply(self, changes: Iterable[Change]) -> int:
        """Apply changes in order, skipping those at or below the last applied seq; returns it."""
        with self._lock:
            for ch in changes:
                if ch.seq <= self.last_seq:
                    continue
                apply_change(self, ch)
                self.last_seq = ch.seq
            return self.last_seq

    def bulk_load(self, account, version, *, face_pks, face_person_pks, face_vectors,
                  person_pks, person_vectors, member_person_pks, member_group_pks) -> None:
        """Replace one collection with this content, each space built in its final structure."""
        col = Collection.from_content(
            self._factory, self.dim(version), face_pks=face_pks, face_person_pks=face_person_pks,
            face_vectors=face_vectors, person_pks=person_pks, person_vectors=person_vectors,
            member_person_pks=member_person_pks, member_group_pks=member_group_pks)
        with self._lock:
            self._collections[(account, str(version))] = col

    def finish_rebuild(self, seq: int) -> None:
        with self._lock:
            self.last_seq = int(seq)

    # ---------------------------------------------------------------- search
    def _queries(self, version: str, query_vectors) -> np.ndarray:
        return normalize(np.asarray(query_vectors, np.float32).reshape(-1, self.dim(version)))

    def search_faces(self, account, version, query_vectors, group_pks: Iterable[int] | None, k: int,
                     unique_persons: bool = True) -> list[list[Hit]]:
        q = self._queries(version, query_vectors)
        col = self._get(account, version, False)
        if col is None or k <= 0:
            return [[] for _ in range(len(q))]
        with col.lock.read():
            found = col.nearest_faces(q, group_pks, k * MAX_FACES_PER_PERSON if unique_persons else k)
        if found is None:
            return [[] for _ in range(len(q))]
        scores, fpk, ppk = found
        out = []
        for i in range(len(q)):
            row, seen = [], set()
            for j in np.flatnonzero(fpk[i] >= 0).tolist():
                p = int(ppk[i, j])
                if unique_persons:
                    if p in seen:
                        continue
                    seen.add(p)
                row.append(Hit(int(fpk[i, j]), p, float(scores[i, j])))
                if len(row) == k:
                    break
            out.append(row)
        return out

    def search_persons(self, account, version, query_vectors, group_pks: Iterable[int] | None,
                       k: int) -> list[list[Hit]]:
        q = self._queries(version, query_vectors)
        col = self._get(account, version, False)
        if col is None or k <= 0:
            return [[] for _ in range(len(q))]
        with col.lock.read():
            found = col.nearest_persons(q, group_pks, k)
        if found is None:
            return [[] for _ in range(len(q))]
        scores, ppk = found
        return [[Hit(None, int(ppk[i, j]), float(scores[i, j])) for j in np.flatnonzero(ppk[i] >= 0).tolist()]
                for i in range(len(q))]

    def search_faces_by_group(self, account, version, query_vectors, group_pks: Iterable[int], k: int,
                              unique_persons: bool = True) -> list[dict[int, list[Hit]]]:
        """One filtered search per group (each group's filter is cached)."""
        q = self._queries(version, query_vectors)
        return by_group(lambda gs: self.search_faces(account, version, q, gs, k, unique_persons), len(q), group_pks)

    def search_persons_by_group(self, account, version, query_vectors, group_pks: Iterable[int],
                                k: int) -> list[dict[int, list[Hit]]]:
        q = self._queries(version, query_vectors)
        return by_group(lambda gs: self.search_persons(account, version, q, gs, k), len(q), group_pks)

    # ---------------------------------------------------------------- snapshot / load
    def snapshot(self, directory, seq: int | None = None, keep: int = 2) -> Path:
        """Write every collection as the new current snapshot under `directory` (see
        :mod:`.snapshots`), keeping the newest `keep`. Holds the manager lock (no apply
        meanwhile) and each collection's read lock while it is written (searches go on;
        writes to that collection wait)."""
        with self._lock:
            seq = self.last_seq if seq is None else int(seq)
            return snapshots.write(directory, seq, self._save_collections, keep=keep)

    def _save_collections(self, directory: Path) -> dict:
        listed = []
        for i, ((account, version), col) in enumerate(sorted(self._collections.items(), key=lambda kv: repr(kv[0]))):
            prefix = f"c{i:05d}"
            with col.lock.read():
                col.save(str(directory / prefix))
                listed.append({"account": account, "version": version, "prefix": prefix,
                               "dim": col.dim, **col.counts()})
        return {"collections": listed}

    def load(self, directory) -> int:
        """Replace everything with the snapshot CURRENT names under `directory`; returns its seq.

        No snapshot yet: the manager is emptied and 0 is returned (rebuild from the database).
        A collection whose width differs from what this index expects for its version raises
        ValueError (IndexSync then rebuilds).
        """
        found = snapshots.current(directory)
        if found is None:
            self.clear()
            return 0
        snap, meta = found
        loaded: dict[tuple[Any, str], Collection] = {}
        for c in meta["collections"]:
            dim = self.dim(c["version"])
            if c.get("dim", meta.get("dim")) != dim:  # format 1 recorded one width for all
                raise ValueError(f"snapshot {snap}: collection {c['prefix']} is {c.get('dim', meta.get('dim'))}"
                                 f"-dimensional, version {c['version']} needs {dim}")
            loaded[(c["account"], c["version"])] = Collection.load(self._factory, dim, str(snap / c["prefix"]))
        with self._lock:
            self._collections = loaded
            self.last_seq = int(meta["seq"])
            return self.last_seq
