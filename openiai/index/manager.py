"""IndexManager: the in-memory search index of every (account, model version).

Each collection has two vector spaces with dense internal slots as backend ids:

* faces   - one vector per face; slot -> face pk, slot -> person slot;
* persons - one fused vector per person (normalised mean of its faces, computed by the caller
  with :func:`fuse`); slot -> person pk.

A person is stored once whatever the number of its groups; group membership is a list of
(person slot, group index) pairs and only ever acts as a filter. The filter for a set of
groups (a bitmap over person slots and one over face slots) is computed with a few vectorised
passes and cached until the next write to the collection.

The database stays the source of truth: the index is rebuilt from it (:meth:`bulk_load`) or
loaded from a snapshot (:meth:`load`) and then brought up to date by replaying the change log
(:meth:`apply`), whose sequence numbers make a replay idempotent.

Thread-safety: one readers-writer lock per collection (searches run concurrently, FAISS
releases the GIL; writes are exclusive), plus a manager lock for the collection table and for
apply/snapshot ordering.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import numpy as np

from ..core.changes import KINDS, Change
from ..core.features import as_vector, fuse, normalize
from .arrays import Grow, IntMap, RWLock
from .backend import Allowed, VectorBackend
from .faiss_backend import DEFAULT_EXACT_THRESHOLD, FaissBackend

DIM = 128
MAX_FACES_PER_PERSON = 5
SNAPSHOT_FORMAT = 1
FILTER_CACHE_SIZE = 16
ARRAY_KEYS = ("face_keys", "face_vals", "face_pk", "face_person", "person_keys", "person_vals", "person_pk",
              "person_has_vec", "groups", "mp_person", "mp_group")


class Hit(NamedTuple):
    face: int | None  # face pk (None for a person-level hit)
    person: int  # person pk
    score: float  # cosine similarity (inner product of unit vectors)


BackendFactory = Callable[[], VectorBackend]


class Collection:
    """Faces + persons + memberships of one (account, model version). Use through the manager."""

    def __init__(self, factory: BackendFactory) -> None:
        self.lock = RWLock()
        self.faces: VectorBackend = factory()
        self.persons: VectorBackend = factory()
        self.face_map = IntMap()  # face pk -> face slot
        self.face_pk = Grow(np.int64)  # face slot -> face pk (-1: free)
        self.face_person = Grow(np.int64)  # face slot -> person slot (-1: free)
        self.person_map = IntMap()  # person pk -> person slot
        self.person_pk = Grow(np.int64)  # person slot -> person pk (-1: removed)
        self.person_has_vec = Grow(np.bool_)  # person slot -> fused vector stored
        self.group_ix: dict[int, int] = {}  # group pk -> dense group index
        self.mp_person = Grow(np.int64)  # membership pairs (person slot, group index)
        self.mp_group = Grow(np.int32)
        self.mp_alive = Grow(np.bool_)
        self.mp_dead = 0
        self.free_faces: list[int] = []
        self.free_persons: list[int] = []
        self._filters: OrderedDict = OrderedDict()
        self._gen = 0

    # ---------------------------------------------------------------- counts
    def n_faces(self) -> int:
        return len(self.face_map)

    def n_persons(self) -> int:
        return len(self.person_map)

    # ---------------------------------------------------------------- writes (caller holds the write lock)
    def _touch(self) -> None:
        self._gen += 1
        self._filters.clear()

    def _person_slot(self, person_pk: int, create: bool) -> int:
        slot = self.person_map.get(person_pk)
        if slot >= 0 or not create:
            return slot
        if self.free_persons:
            slot = self.free_persons.pop()
            self.person_pk.a[slot] = person_pk
            self.person_has_vec.a[slot] = False
        else:
            slot = self.person_pk.extend([person_pk])
            self.person_has_vec.extend([False])
        self.person_map.set(person_pk, slot)
        return slot

    def _group(self, group_pk: int, create: bool) -> int:
        gi = self.group_ix.get(int(group_pk))
        if gi is None and create:
            gi = self.group_ix[int(group_pk)] = len(self.group_ix)
        return -1 if gi is None else gi

    def upsert_face(self, face_pk: int, person_pk: int, vector) -> None:
        vec = normalize(as_vector(vector, self.faces.dim)).reshape(1, -1)
        pslot = self._person_slot(person_pk, create=True)
        slot = self.face_map.get(face_pk)
        if slot >= 0:
            self.faces.remove(np.array([slot], np.int64))
        elif self.free_faces:
            slot = self.free_faces.pop()
        else:
            slot = self.face_pk.extend([-1])
            self.face_person.extend([-1])
        self.face_pk.a[slot] = face_pk
        self.face_person.a[slot] = pslot
        self.face_map.set(face_pk, slot)
        self.faces.add(np.array([slot], np.int64), vec)
        self._touch()

    def remove_faces(self, face_pks: Iterable[int]) -> int:
        slots = [s for s in (self.face_map.pop(pk) for pk in face_pks) if s >= 0]
        if not slots:
            return 0
        arr = np.array(slots, np.int64)
        self.faces.remove(arr)
        self.face_pk.a[arr] = -1
        self.face_person.a[arr] = -1
        self.free_faces.extend(slots)
        self._touch()
        return len(slots)

    def set_person(self, person_pk: int, vector, group_pks: Iterable[int] | None = None) -> None:
        new = self.person_map.get(person_pk) < 0
        slot = self._person_slot(person_pk, create=True)
        if vector is not None:
            vec = normalize(as_vector(vector, self.persons.dim)).reshape(1, -1)
            if self.person_has_vec.a[slot]:
                self.persons.remove(np.array([slot], np.int64))
            self.persons.add(np.array([slot], np.int64), vec)
            self.person_has_vec.a[slot] = True
        if group_pks is not None:
            if new:  # no memberships yet: skip the scan
                self._add_pairs(slot, sorted({self._group(g, create=True) for g in group_pks}))
            else:
                self._set_groups(slot, list(group_pks))
        self._touch()

    def _set_groups(self, slot: int, group_pks: list[int]) -> None:
        mine = np.flatnonzero((self.mp_person.a == slot) & self.mp_alive.a)
        want = {self._group(g, create=True) for g in group_pks}
        have = {int(self.mp_group.a[i]) for i in mine}
        for i in mine:
            if int(self.mp_group.a[i]) not in want:
                self.mp_alive.a[i] = False
                self.mp_dead += 1
        self._add_pairs(slot, sorted(want - have))

    def _add_pairs(self, slot: int, gis: list[int]) -> None:
        if gis:
            self.mp_person.extend([slot] * len(gis))
            self.mp_group.extend(gis)
            self.mp_alive.extend([True] * len(gis))

    def add_memberships(self, person_pk: int, group_pks: Iterable[int]) -> None:
        slot = self._person_slot(person_pk, create=True)
        mine = np.flatnonzero((self.mp_person.a == slot) & self.mp_alive.a)
        have = {int(self.mp_group.a[i]) for i in mine}
        self._add_pairs(slot, sorted({self._group(g, True) for g in group_pks} - have))
        self._touch()

    def remove_memberships(self, person_pk: int, group_pks: Iterable[int]) -> None:
        slot = self.person_map.get(person_pk)
        gis = [gi for gi in (self._group(g, False) for g in group_pks) if gi >= 0]
        if slot < 0 or not gis:
            return
        hit = (self.mp_person.a == slot) & self.mp_alive.a & np.isin(self.mp_group.a, gis)
        self.mp_alive.a[hit] = False
        self.mp_dead += int(hit.sum())
        self._maybe_compact_memberships()
        self._touch()

    def remove_group(self, group_pk: int) -> None:
        gi = self._group(group_pk, False)
        if gi < 0:
            return
        hit = (self.mp_group.a == gi) & self.mp_alive.a
        self.mp_alive.a[hit] = False
        self.mp_dead += int(hit.sum())
        self._maybe_compact_memberships()
        self._touch()

    def remove_persons(self, person_pks: Iterable[int]) -> int:
        slots = [s for s in (self.person_map.pop(pk) for pk in person_pks) if s >= 0]
        if not slots:
            return 0
        arr = np.array(slots, np.int64)
        with_vec = arr[self.person_has_vec.a[arr]]
        if len(with_vec):
            self.persons.remove(with_vec)
        self.person_has_vec.a[arr] = False
        self.person_pk.a[arr] = -1
        # The persons' faces and memberships go too.
        faces = np.flatnonzero(np.isin(self.face_person.a, arr))
        if len(faces):
            self.remove_faces(self.face_pk.a[faces].tolist())
        hit = np.isin(self.mp_person.a, arr) & self.mp_alive.a
        self.mp_alive.a[hit] = False
        self.mp_dead += int(hit.sum())
        self.free_persons.extend(slots)
        self._maybe_compact_memberships()
        self._touch()
        return len(slots)

    def _maybe_compact_memberships(self) -> None:
        if self.mp_dead > 1024 and self.mp_dead * 4 > len(self.mp_alive):
            keep = self.mp_alive.a.copy()
            for g in (self.mp_person, self.mp_group, self.mp_alive):
                g.compact(keep)
            self.mp_dead = 0

    # ---------------------------------------------------------------- filters (caller holds a read lock)
    def filters(self, group_pks: Iterable[int] | None) -> tuple[Allowed | None, Allowed | None, bool]:
        """(person filter, face filter, empty): None = no restriction (everything allowed)."""
        if group_pks is None:
            return None, None, False
        gis = sorted({gi for gi in (self._group(g, False) for g in group_pks) if gi >= 0})
        key = tuple(gis)
        gen = self._gen
        hit = self._filters.get(key)
        if hit is not None and hit[0] == gen:
            return hit[1]
        if not gis:
            result = (None, None, True)
        else:
            want = np.zeros(len(self.group_ix), bool)
            want[gis] = True
            sel = want[self.mp_group.a] & self.mp_alive.a
            n_pslots = len(self.person_pk)
            person_ok = np.zeros(n_pslots + 1, bool)  # last entry: sentinel for face_person == -1
            person_ok[self.mp_person.a[sel]] = True
            person_ok[:n_pslots] &= self.person_pk.a >= 0
            face_ok = person_ok[self.face_person.a]
            n_p = int(np.count_nonzero(person_ok[:n_pslots] & self.person_has_vec.a))
            n_f = int(np.count_nonzero(face_ok))
            if n_p == 0 and n_f == 0:
                result = (None, None, True)
            else:
                pf = None if n_p >= self.persons.count() else Allowed(person_ok[:n_pslots], n_p)
                ff = None if n_f >= self.faces.count() else Allowed(face_ok, n_f)
                result = (pf, ff, False)
        with _cache_lock:
            self._filters[key] = (gen, result)
            while len(self._filters) > FILTER_CACHE_SIZE:
                self._filters.popitem(last=False)
        return result

    # ---------------------------------------------------------------- snapshot
    def arrays(self) -> dict[str, np.ndarray]:
        fk, fv = self.face_map.items()
        pk, pv = self.person_map.items()
        groups = np.array(sorted(self.group_ix, key=self.group_ix.get), np.int64)
        live = self.mp_alive.a
        return {
            "face_keys": fk, "face_vals": fv, "face_pk": self.face_pk.a, "face_person": self.face_person.a,
            "person_keys": pk, "person_vals": pv, "person_pk": self.person_pk.a,
            "person_has_vec": self.person_has_vec.a, "groups": groups,
            "mp_person": self.mp_person.a[live], "mp_group": self.mp_group.a[live],
        }

    def restore(self, a: dict[str, np.ndarray]) -> None:
        self.face_map = IntMap(a["face_keys"], a["face_vals"])
        self.face_pk = Grow(np.int64, a["face_pk"])
        self.face_person = Grow(np.int64, a["face_person"])
        self.person_map = IntMap(a["person_keys"], a["person_vals"])
        self.person_pk = Grow(np.int64, a["person_pk"])
        self.person_has_vec = Grow(np.bool_, a["person_has_vec"])
        self.group_ix = {int(g): i for i, g in enumerate(a["groups"].tolist())}
        self.mp_person = Grow(np.int64, a["mp_person"])
        self.mp_group = Grow(np.int32, a["mp_group"])
        self.mp_alive = Grow(np.bool_, np.ones(len(a["mp_person"]), bool))
        self.mp_dead = 0
        self.free_faces = np.flatnonzero(self.face_pk.a < 0).tolist()
        self.free_persons = np.flatnonzero(self.person_pk.a < 0).tolist()
        self._touch()


_cache_lock = threading.Lock()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


class IndexManager:
    def __init__(self, dim: int = DIM, exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
                 backend_factory: BackendFactory | None = None) -> None:
        self.dim = dim
        self._factory = backend_factory or (lambda: FaissBackend(dim, exact_threshold=exact_threshold))
        self._collections: dict[tuple[Any, str], Collection] = {}
        self._lock = threading.RLock()  # collection table; apply/snapshot/load ordering
        self.last_seq = 0

    # ---------------------------------------------------------------- collections
    def _get(self, account, version: str, create: bool) -> Collection | None:
        key = (account, str(version))
        col = self._collections.get(key)
        if col is None and create:
            with self._lock:
                col = self._collections.get(key)
                if col is None:
                    col = self._collections[key] = Collection(self._factory)
        return col

    def collections(self) -> list[tuple[Any, str]]:
        return list(self._collections)

    def clear(self) -> None:
        """Forget every collection (before a rebuild)."""
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
            return {"faces": col.n_faces(), "persons": col.n_persons()}

    def group_counts(self, account, version: str, group_pks: Iterable[int]) -> dict[str, int]:
        """Faces and persons (with a fused vector) in the union of `group_pks`, from the
        cached group filter: no database count on the search path."""
        col = self._get(account, version, False)
        if col is None:
            return {"faces": 0, "persons": 0}
        with col.lock.read():
            person_filter, face_filter, empty = col.filters(list(group_pks))
            if empty:
                return {"faces": 0, "persons": 0}
            return {"faces": face_filter.count if face_filter is not None else col.faces.count(),
                    "persons": person_filter.count if person_filter is not None else col.persons.count()}

    # ---------------------------------------------------------------- writes
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

    def bulk_load(self, account, version, *, face_pks, face_person_pks, face_vectors,
                  person_pks, person_vectors, member_person_pks, member_group_pks) -> None:
        """Replace one collection with this content (the rebuild-from-database path).

        Persons named only in faces or memberships get a slot without a fused vector.
        """
        face_pks = np.asarray(face_pks, np.int64)
        person_pks = np.asarray(person_pks, np.int64)
        all_persons = np.unique(np.concatenate([
            person_pks, np.asarray(face_person_pks, np.int64), np.asarray(member_person_pks, np.int64)]))
        col = Collection(self._factory)
        pslot_of = IntMap(all_persons, np.arange(len(all_persons)))
        col.person_map = pslot_of
        col.person_pk = Grow(np.int64, all_persons)
        has_vec = np.zeros(len(all_persons), bool)
        pslots = pslot_of.get_many(person_pks)
        has_vec[pslots] = True
        col.person_has_vec = Grow(np.bool_, has_vec)
        col.face_map = IntMap(face_pks, np.arange(len(face_pks)))
        col.face_pk = Grow(np.int64, face_pks)
        col.face_person = Grow(np.int64, pslot_of.get_many(face_person_pks))
        groups = np.unique(np.asarray(member_group_pks, np.int64))
        col.group_ix = {int(g): i for i, g in enumerate(groups.tolist())}
        col.mp_person = Grow(np.int64, pslot_of.get_many(member_person_pks))
        col.mp_group = Grow(np.int32, np.searchsorted(groups, np.asarray(member_group_pks, np.int64)))
        col.mp_alive = Grow(np.bool_, np.ones(len(col.mp_person), bool))
        build = getattr(col.faces, "bulk_build", None)
        if build is not None:
            col.faces.bulk_build(np.arange(len(face_pks), dtype=np.int64), normalize(face_vectors))
            col.persons.bulk_build(pslots, normalize(person_vectors))
        else:
            col.faces.add(np.arange(len(face_pks), dtype=np.int64), normalize(face_vectors))
            col.persons.add(pslots, normalize(person_vectors))
        with self._lock:
            self._collections[(account, str(version))] = col

    # ---------------------------------------------------------------- search
    def _queries(self, query_vectors) -> np.ndarray:
        q = np.asarray(query_vectors, np.float32)
        return normalize(q.reshape(-1, self.dim))

    def search_faces(self, account, version, query_vectors, group_pks: Iterable[int] | None, k: int,
                     unique_persons: bool = True) -> list[list[Hit]]:
        """Top-k faces per query among the faces of persons in `group_pks` (None: all groups).

        With `unique_persons` (what SearchFaces returns) each person appears once, with its
        best face: the backend is asked for k * MAX_FACES_PER_PERSON candidates.
        """
        q = self._queries(query_vectors)
        col = self._get(account, version, False)
        if col is None or k <= 0:
            return [[] for _ in range(len(q))]
        with col.lock.read():
            _, face_filter, empty = col.filters(group_pks)
            if empty:
                return [[] for _ in range(len(q))]
            kk = k * MAX_FACES_PER_PERSON if unique_persons else k
            scores, slots = col.faces.search(q, kk, face_filter)
            valid = slots >= 0
            safe = np.where(valid, slots, 0)
            fpk = col.face_pk.a[safe]
            ppk = col.person_pk.a[col.face_person.a[safe]]
        out = []
        for i in range(len(q)):
            row, seen = [], set()
            for j in np.flatnonzero(valid[i]).tolist():
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
        """Top-k persons per query by fused vector, among persons in `group_pks` (None: all)."""
        q = self._queries(query_vectors)
        col = self._get(account, version, False)
        if col is None or k <= 0:
            return [[] for _ in range(len(q))]
        with col.lock.read():
            person_filter, _, empty = col.filters(group_pks)
            if empty:
                return [[] for _ in range(len(q))]
            scores, slots = col.persons.search(q, k, person_filter)
            valid = slots >= 0
            ppk = col.person_pk.a[np.where(valid, slots, 0)]
        return [[Hit(None, int(ppk[i, j]), float(scores[i, j])) for j in np.flatnonzero(valid[i]).tolist()]
                for i in range(len(q))]

    def search_faces_by_group(self, account, version, query_vectors, group_pks: Iterable[int], k: int,
                              unique_persons: bool = True) -> list[dict[int, list[Hit]]]:
        """SearchFacesReturnsByGroup: per query, {group pk: top-k hits within that group}.

        One filtered search per group (each group's filter is cached); groups with no hit are
        left out.
        """
        q = self._queries(query_vectors)
        out: list[dict[int, list[Hit]]] = [{} for _ in range(len(q))]
        for g in dict.fromkeys(int(g) for g in group_pks):
            for i, row in enumerate(self.search_faces(account, version, q, [g], k, unique_persons)):
                if row:
                    out[i][g] = row
        return out

    def search_persons_by_group(self, account, version, query_vectors, group_pks: Iterable[int],
                                k: int) -> list[dict[int, list[Hit]]]:
        """SearchPersonsReturnsByGroup: per query, {group pk: top-k persons within that group}."""
        q = self._queries(query_vectors)
        out: list[dict[int, list[Hit]]] = [{} for _ in range(len(q))]
        for g in dict.fromkeys(int(g) for g in group_pks):
            for i, row in enumerate(self.search_persons(account, version, q, [g], k)):
                if row:
                    out[i][g] = row
        return out

    # ---------------------------------------------------------------- change log
    def apply(self, changes: Iterable[Change]) -> int:
        """Apply changes in order, skipping those at or below the last applied seq; returns it."""
        with self._lock:
            for ch in changes:
                if ch.seq <= self.last_seq:
                    continue
                self._apply_one(ch)
                self.last_seq = ch.seq
            return self.last_seq

    def _apply_one(self, ch: Change) -> None:
        p, a, v = ch.payload, ch.account, ch.version
        kind = ch.kind
        if kind == "face_upsert":
            self.upsert_face(a, v, int(p["face"]), int(p["person"]), p["vector"])
        elif kind == "face_remove":
            self.remove_faces(a, v, [int(x) for x in p["faces"]])
        elif kind == "person_upsert":
            groups = p.get("groups")
            self.set_person(a, v, int(p["person"]), p.get("vector"),
                            None if groups is None else [int(g) for g in groups])
        elif kind == "person_remove":
            self.remove_persons(a, v, [int(x) for x in p["persons"]])
        elif kind == "memberships_add":
            self.add_memberships(a, v, int(p["person"]), [int(g) for g in p["groups"]])
        elif kind == "memberships_remove":
            self.remove_memberships(a, v, int(p["person"]), [int(g) for g in p["groups"]])
        elif kind == "group_remove":
            self.remove_group(a, v, int(p["group"]))
        elif kind == "collection_drop":
            self.drop(a, v)
        else:
            raise ValueError(f"unknown change kind {kind!r}")

    # ---------------------------------------------------------------- snapshot / load
    def snapshot(self, directory, seq: int | None = None, keep: int = 2) -> Path:
        """Write every collection + metadata + seq under `directory`, atomically.

        Layout: ``directory/snap-<seq>-<ns>/`` (faiss files, .npy arrays, meta.json) and
        ``directory/CURRENT`` naming the latest complete one; both are fsynced and renamed
        into place, so a crash leaves the previous snapshot current. Holds the manager lock
        (no apply meanwhile) and each collection's read lock while it is written (searches
        go on; writes to that collection wait).
        """
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            seq = self.last_seq if seq is None else int(seq)
            name = f"snap-{seq:012d}-{time.time_ns()}"
            tmp = root / f".tmp-{name}"
            tmp.mkdir()
            meta = {"format": SNAPSHOT_FORMAT, "seq": seq, "dim": self.dim, "collections": []}
            for i, ((account, version), col) in enumerate(sorted(self._collections.items(), key=lambda kv: repr(kv[0]))):
                prefix = f"c{i:05d}"
                with col.lock.read():
                    col.faces.snapshot(tmp / f"{prefix}.faces.index")
                    col.persons.snapshot(tmp / f"{prefix}.persons.index")
                    for key, arr in col.arrays().items():
                        np.save(tmp / f"{prefix}.{key}.npy", arr)
                    counts = {"faces": col.n_faces(), "persons": col.n_persons()}
                meta["collections"].append({"account": account, "version": version, "prefix": prefix, **counts})
            (tmp / "meta.json").write_text(json.dumps(meta))
            for f in tmp.iterdir():
                _fsync_file(f)
            _fsync_dir(tmp)
            final = root / name
            os.rename(tmp, final)
            cur_tmp = root / ".CURRENT.tmp"
            cur_tmp.write_text(name)
            _fsync_file(cur_tmp)
            os.replace(cur_tmp, root / "CURRENT")
            _fsync_dir(root)
            snaps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("snap-"))
            for old in snaps[:-keep] if keep > 0 else []:
                if old.name != name:
                    shutil.rmtree(old, ignore_errors=True)
            for stale in root.glob(".tmp-snap-*"):
                if stale != tmp:
                    shutil.rmtree(stale, ignore_errors=True)
            return final

    def load(self, directory) -> int:
        """Replace everything with the snapshot CURRENT names under `directory`; returns its seq.

        No snapshot yet: the manager is emptied and 0 is returned (rebuild from the database).
        """
        root = Path(directory)
        cur = root / "CURRENT"
        if not cur.is_file():
            with self._lock:
                self._collections.clear()
                self.last_seq = 0
            return 0
        snap = root / cur.read_text().strip()
        meta = json.loads((snap / "meta.json").read_text())
        if meta.get("format") != SNAPSHOT_FORMAT or meta.get("dim") != self.dim:
            raise ValueError(f"unsupported snapshot {snap}")
        loaded: dict[tuple[Any, str], Collection] = {}
        for c in meta["collections"]:
            col = Collection(self._factory)
            prefix = snap / c["prefix"]
            col.faces.load(Path(f"{prefix}.faces.index"))
            col.persons.load(Path(f"{prefix}.persons.index"))
            col.restore({key: np.load(f"{prefix}.{key}.npy") for key in ARRAY_KEYS})
            account = c["account"]
            loaded[(account, c["version"])] = col
        with self._lock:
            self._collections = loaded
            self.last_seq = int(meta["seq"])
            return self.last_seq
