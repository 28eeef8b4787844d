"""One collection of the in-memory engine: the faces, persons and memberships of one (account,
model version), stored in two vector spaces with dense internal slots as backend ids.

* faces   - one vector per face; slot -> face pk, slot -> person slot;
* persons - one fused vector per person (normalised mean of its faces, computed by the writer
  with :func:`openiai.core.features.fuse`); slot -> person pk.

Slots exist so that a group filter can be a bitmap (:class:`Allowed`) over them: a person is
stored once whatever the number of its groups, group membership is a list of (person slot,
group index) pairs, and the filter for a set of groups (a bitmap over person slots and one over
face slots) is computed with a few vectorised passes and cached until the next write. Nothing
outside this module sees a slot: searches answer with database keys.

Not thread-safe on its own: the engine holds :attr:`Collection.lock` (read for searches and
snapshots, write for changes) around every call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..core.features import as_vector, normalize
from .arrays import Grow, IntMap, RWLock
from .backend import Allowed, VectorBackend

FILTER_CACHE_SIZE = 16
ARRAY_KEYS = ("face_keys", "face_vals", "face_pk", "face_person", "person_keys", "person_vals", "person_pk",
              "person_has_vec", "groups", "mp_person", "mp_group")

BackendFactory = Callable[[int], VectorBackend]  # dimension -> an empty vector space

_cache_lock = threading.Lock()  # searches under one read lock may fill the filter cache together


class Collection:
    def __init__(self, factory: BackendFactory, dim: int) -> None:
        self.dim = int(dim)
        self.lock = RWLock()
        self.faces: VectorBackend = factory(self.dim)
        self.persons: VectorBackend = factory(self.dim)
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

    @classmethod
    def from_content(cls, factory: BackendFactory, dim: int, *, face_pks, face_person_pks, face_vectors,
                     person_pks, person_vectors, member_person_pks, member_group_pks) -> "Collection":
        """A collection holding exactly this content, slots assigned in one pass and each space
        built in its final structure (see :meth:`openiai.index.engine.VectorIndex.bulk_load`)."""
        face_pks = np.asarray(face_pks, np.int64)
        person_pks = np.asarray(person_pks, np.int64)
        all_persons = np.unique(np.concatenate([
            person_pks, np.asarray(face_person_pks, np.int64), np.asarray(member_person_pks, np.int64)]))
        col = cls(factory, dim)
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
        face_vectors = normalize(np.asarray(face_vectors, np.float32).reshape(-1, col.dim))
        person_vectors = normalize(np.asarray(person_vectors, np.float32).reshape(-1, col.dim))
        face_slots = np.arange(len(face_pks), dtype=np.int64)
        if hasattr(col.faces, "bulk_build"):
            col.faces.bulk_build(face_slots, face_vectors)
            col.persons.bulk_build(pslots, person_vectors)
        else:
            col.faces.add(face_slots, face_vectors)
            col.persons.add(pslots, person_vectors)
        return col

    # ---------------------------------------------------------------- counts (caller holds a lock)
    def n_faces(self) -> int:
        return len(self.face_map)

    def n_persons(self) -> int:
        return len(self.person_map)

    def counts(self) -> dict[str, int]:
        return {"faces": self.n_faces(), "persons": self.n_persons()}

    def group_counts(self, group_pks: Iterable[int]) -> dict[str, int]:
        """Faces, and persons with a fused vector, in the union of `group_pks` (from the cached
        filter: no scan when it is warm)."""
        person_filter, face_filter, empty = self.filters(list(group_pks))
        if empty:
            return {"faces": 0, "persons": 0}
        return {"faces": face_filter.count if face_filter is not None else self.faces.count(),
                "persons": person_filter.count if person_filter is not None else self.persons.count()}

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
        vec = normalize(as_vector(vector, self.dim)).reshape(1, -1)
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
            vec = normalize(as_vector(vector, self.dim)).reshape(1, -1)
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

    # ---------------------------------------------------------------- search (caller holds a read lock)
    def nearest_faces(self, queries: np.ndarray, group_pks: Iterable[int] | None,
                      k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(scores, face pks, person pks), each q x k, best first, pks -1 where a row has
        fewer than k hits; None when the groups hold no face. `queries` are unit vectors."""
        _, face_filter, empty = self.filters(group_pks)
        if empty or self.faces.count() == 0:
            return None
        scores, slots = self.faces.search(queries, k, face_filter)
        valid = slots >= 0
        safe = np.where(valid, slots, 0)
        face_pks = np.where(valid, self.face_pk.a[safe], -1)
        person_pks = np.where(valid, self.person_pk.a[self.face_person.a[safe]], -1)
        return scores, face_pks, person_pks

    def nearest_persons(self, queries: np.ndarray, group_pks: Iterable[int] | None,
                        k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(scores, person pks), each q x k, like :meth:`nearest_faces` over fused vectors."""
        person_filter, _, empty = self.filters(group_pks)
        if empty or self.persons.count() == 0:
            return None
        scores, slots = self.persons.search(queries, k, person_filter)
        valid = slots >= 0
        return scores, np.where(valid, self.person_pk.a[np.where(valid, slots, 0)], -1)

    # ---------------------------------------------------------------- snapshot (caller holds a read lock)
    def save(self, prefix: str) -> None:
        """Write both spaces and the maps as files named ``<prefix>.*``."""
        self.faces.snapshot(Path(f"{prefix}.faces.index"))
        self.persons.snapshot(Path(f"{prefix}.persons.index"))
        for key, arr in self.arrays().items():
            np.save(f"{prefix}.{key}.npy", arr)

    @classmethod
    def load(cls, factory: BackendFactory, dim: int, prefix: str) -> "Collection":
        """The collection :meth:`save` wrote under `prefix`."""
        col = cls(factory, dim)
        col.faces.load(Path(f"{prefix}.faces.index"))
        col.persons.load(Path(f"{prefix}.persons.index"))
        col.restore({key: np.load(f"{prefix}.{key}.npy") for key in ARRAY_KEYS})
        return col

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


