"""Duplicate-person checks (CheckSimilarPerson and its companions): every pair of persons in up
to 10 groups whose fused person features score above a threshold, found through the vector
index, resumable in batches.

The job, step by step (each step leaves a checkpoint a restart resumes from):

1. :func:`snapshot_page` - the persons of the groups as they are when the job starts (the docs:
   "the groups' state at the moment the job starts is what is checked": the persons up to the
   newest one in the groups at the first step), each with its fused feature (the normalised
   sum of its normalised face vectors, as the index fuses them) and the checked groups it is
   in; read :data:`SNAPSHOT_PAGE` persons a step (a step must stay well inside the runner's
   lease) and saved as ``gallery.*`` (the vectors memory-mapped afterwards).
2. :func:`find_pairs` over batches of the snapshot: each person is searched in the index
   among the checked groups' persons (``search_persons``, k neighbours, k grown while every
   neighbour is still above the threshold); hits above the threshold on another person of the
   snapshot are kept. Pairs go to an append-only file whose length is part of the checkpoint,
   so a batch cut off by a crash is truncated away and searched again.
3. :func:`write_result` - pairs deduplicated (each pair is normally found from both ends),
   written as the result file: a JSON array of SimilarPerson.

The result file. The docs say only "the file content is an array of SimilarPerson" and define
no SimilarPerson fields, so this server writes one element per suspected pair::

    {"PersonId": "...", "SimilarPersonId": "...", "Score": 73.2,
     "GroupIds": [...], "SimilarGroupIds": [...]}

``PersonId`` is the person created first (the original), ``SimilarPersonId`` the later one (the
suspected duplicate, CreatePerson's name for it); ``Score`` is the calibrated score of the two
fused features (the scale CompareFace and SearchPersons use); the GroupIds lists are the
checked groups each person is in. Elements are sorted by Score, highest first.

Strengths (UniquePersonControl) and thresholds: see :data:`STRENGTH_FAR`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from ..core import versions
from ..core.features import FEATURE_DTYPE, from_bytes, fuse_runs, normalize
from ..core.files import write_atomic
from ..store.db import Database
from ..store.schema import Face, FaceFeature, Membership, Person
from ..vision import scores

MAX_GROUPS = 10  # "no more than 10 groups"
MAX_PERSONS = 2_000_000  # "the groups may hold at most 2 million persons in all"
MAX_ESTIMATE_MINUTES = 5 * 60  # "if the estimate exceeds 5 hours, the check cannot be used"

# UniquePersonControl -> the false-accept rate per compared pair whose score is the threshold.
# The docs: 1 = "stronger: removes more duplicate identities, at a slightly higher rate of
# non-duplicates wrongly removed"; 2 = "weaker: fewer non-duplicates removed, fewer duplicates
# found". They are the two upper levels of CreatePerson's UniquePersonControl scale (3: FAR
# 1e-4, 4: FAR 1e-5), read through the same calibration table (vision.scores.score_for_far: on
# 3.0 scores 50 and 60), so a pair in the result means what the same two faces mean to
# CreatePerson and CompareFace. Why these two and not the lower levels (1e-2, 1e-3): a check
# compares every pair, N(N-1)/2 of them, so the expected number of wrongly paired strangers is
# FAR x N(N-1)/2: about 800 at 1e-4 and 80 at 1e-5 for 4,000 persons, while 1e-3 would give
# 8,000 and bury the duplicates. And why not lower than 1e-5: the genuine pairs this
# recognizer still accepts fall fast below it (LFW TAR 97.6 % at 1e-4, 94.8 % at 1e-5), and the
# strong setting must keep recall at or above 95 % (`openiai eval similar-persons` measures
# both settings on a 4,000-person LFW gallery with planted duplicates; README).
STRENGTH_FAR = {1: 1e-4, 2: 1e-5}

BATCH = 256  # persons searched per step (a checkpoint after each)
SNAPSHOT_SHARE = 5.0  # progress (%) the snapshot steps account for
_CACHE: dict[str, "Gallery"] = {}  # job directory -> its loaded snapshot
K_START = 16  # neighbours asked per person; grown x4 while all of them are above threshold
# ... up to this many (Milvus caps topk at 16,384; a person with more look-alikes above the
# threshold than this keeps the closest K_MAX from its own search; the others may still
# find it from theirs).
K_MAX = 4096


def threshold_score(strength: int, version: str) -> float:
    return float(scores.score_for_far(STRENGTH_FAR[strength], version))


def threshold_cosine(strength: int, version: str) -> float:
    return scores.cosine_for_score(threshold_score(strength, version), version)


# --------------------------------------------------------------------------- the gallery

@dataclass
class Gallery:
    """The persons a job checks: row i is person ``pks[i]`` (creation order)."""

    pks: np.ndarray  # (n,) int64 person pks, ascending
    person_ids: list[str]
    group_ids: list[list[str]]  # the checked groups each person is in
    vectors: np.ndarray  # (n, dim) float32 fused features, unit length

    def __len__(self) -> int:
        return len(self.pks)

    def save(self, directory: Path, name: str = "gallery") -> None:
        """``<name>.pks.npy``, ``<name>.vectors.npy`` and ``<name>.json`` (the json last: it
        marks the set complete)."""
        directory.mkdir(parents=True, exist_ok=True)
        for part, array in (("pks", self.pks), ("vectors", self.vectors)):
            tmp = directory / f"{name}.{part}.tmp.npy"
            np.save(tmp, array)
            os.replace(tmp, directory / f"{name}.{part}.npy")
        write_atomic(directory / f"{name}.json",
                      json.dumps({"person_ids": self.person_ids, "group_ids": self.group_ids}))

    @classmethod
    def load(cls, directory: Path, name: str = "gallery", mmap: bool = False) -> "Gallery":
        """``mmap``: the vectors stay on disk, read as rows are used (a 2-million-person
        gallery is about 1 GB)."""
        meta = json.loads((directory / f"{name}.json").read_text())
        return cls(np.load(directory / f"{name}.pks.npy"), meta["person_ids"], meta["group_ids"],
                   np.load(directory / f"{name}.vectors.npy", mmap_mode="r" if mmap else None))

    @staticmethod
    def saved(directory: Path, name: str = "gallery") -> bool:
        return (directory / f"{name}.json").is_file()

    @classmethod
    def concat(cls, parts: list["Gallery"], dim: int) -> "Gallery":
        if not parts:
            return cls(np.zeros(0, np.int64), [], [], np.zeros((0, dim), np.float32))
        return cls(np.concatenate([p.pks for p in parts]),
                   [i for p in parts for i in p.person_ids],
                   [g for p in parts for g in p.group_ids],
                   np.concatenate([p.vectors for p in parts]))


SNAPSHOT_PAGE = 20_000  # persons read per snapshot step


def _in_groups(groups: dict[int, str]):
    return select(Membership.person_pk).where(Membership.group_pk.in_(list(groups)))


def last_person_pk(db: Database, account_id: int, groups: dict[int, str]) -> int:
    """The newest person in the groups now: the snapshot covers persons up to it."""
    with db.read() as s:
        return int(s.scalar(select(func.max(Membership.person_pk))
                            .where(Membership.group_pk.in_(list(groups)))) or 0)


def snapshot(db: Database, account_id: int, groups: dict[int, str], version: str) -> Gallery:
    """All persons of ``groups`` ({group pk: GroupId}) that have a feature under ``version``,
    with their fused features and the checked groups they are in; read in one transaction."""
    return snapshot_page(db, account_id, groups, version)[0]


def snapshot_page(db: Database, account_id: int, groups: dict[int, str], version: str,
                  after: int = 0, upto: int | None = None,
                  limit: int | None = None) -> tuple[Gallery, int, int]:
    """(gallery, last pk scanned, persons scanned) of the persons of ``groups`` with ``after``
    < pk <= ``upto``, the first ``limit`` of them; those without a feature under ``version``
    are scanned but left out of the gallery."""
    dim = versions.get(version).dim
    with db.read() as s:
        q = (select(Person.pk, Person.person_id)
             .where(Person.account_id == account_id, Person.pk > after,
                    Person.pk.in_(_in_groups(groups)))
             .order_by(Person.pk))
        if upto is not None:
            q = q.where(Person.pk <= upto)
        if limit is not None:
            q = q.limit(limit)
        ids = dict(s.execute(q).all())
        if not ids:
            return Gallery.concat([], dim), after, 0
        lo, hi = min(ids), max(ids)
        members = s.execute(
            select(Membership.person_pk, Membership.group_pk)
            .where(Membership.group_pk.in_(list(groups)), Membership.person_pk >= lo,
                   Membership.person_pk <= hi)).all()
        rows = s.execute(
            select(Face.person_pk, FaceFeature.vector)
            .join(FaceFeature, (FaceFeature.face_pk == Face.pk)
                  & (FaceFeature.model_version == version))
            .where(Face.account_id == account_id, Face.person_pk >= lo, Face.person_pk <= hi,
                   Face.person_pk.in_(_in_groups(groups)))
            .order_by(Face.person_pk)).all()
    in_groups: dict[int, set[str]] = {}
    for person_pk, group_pk in members:
        in_groups.setdefault(int(person_pk), set()).add(groups[int(group_pk)])
    if not rows:
        return Gallery.concat([], dim), hi, len(ids)
    face_person = np.array([r[0] for r in rows], np.int64)
    vectors = from_bytes(b"".join(r[1] for r in rows)).reshape(-1, dim)
    pks, fused = fuse_runs(face_person, vectors)
    return Gallery(pks, [ids[int(p)] for p in pks],
                   [sorted(in_groups.get(int(p), ())) for p in pks], fused), hi, len(ids)


# --------------------------------------------------------------------------- pair finding

# search(queries (q, dim), k) -> per query a list of (person pk, cosine), best first
Search = Callable[[np.ndarray, int], Sequence[Sequence[tuple[int, float]]]]


def find_pairs(search: Search, pks: np.ndarray, vectors: np.ndarray, min_cosine: float,
               start: int, stop: int, k: int = K_START) -> list[tuple[int, int, float]]:
    """Pairs (pk a, pk b, cosine) with a < b found by searching rows ``start:stop``.

    A hit counts when it is another person of the gallery (``pks``; the index may know persons
    created after the snapshot) and its cosine reaches ``min_cosine``. A person whose k
    neighbours are all above the threshold is searched again with 4k, so a person with many
    look-alikes loses none of them. The same pair may come back from both its ends: callers
    deduplicate (:func:`dedupe`). At most :data:`K_MAX` neighbours a person."""
    known = set(int(p) for p in pks)
    limit = min(len(pks), K_MAX)
    out: list[tuple[int, int, float]] = []
    todo = list(range(start, min(stop, len(pks))))
    kk = min(k, limit)
    while todo and kk > 0:
        answers = search(vectors[todo], kk)
        again = []
        for row, hits in zip(todo, answers):
            me = int(pks[row])
            above = [(int(p), float(c)) for p, c in hits if float(c) >= min_cosine]
            if len(above) >= kk and kk < limit:
                again.append(row)
                continue
            for other, cos in above:
                if other != me and other in known:
                    out.append((min(me, other), max(me, other), cos))
        todo = again
        kk = min(kk * 4, limit)
    return out


def dedupe(pairs: np.ndarray) -> np.ndarray:
    """Unique (a, b) rows of a structured pair array, keeping each pair's highest cosine."""
    if len(pairs) == 0:
        return pairs
    order = np.lexsort((-pairs["cos"], pairs["b"], pairs["a"]))
    p = pairs[order]
    first = np.r_[True, (p["a"][1:] != p["a"][:-1]) | (p["b"][1:] != p["b"][:-1])]
    return p[first]


PAIR_DTYPE = np.dtype([("a", "<i8"), ("b", "<i8"), ("cos", "<f4")])


def pairs_array(pairs: list[tuple[int, int, float]]) -> np.ndarray:
    return np.array(pairs, dtype=PAIR_DTYPE) if pairs else np.zeros(0, PAIR_DTYPE)


# --------------------------------------------------------------------------- the result file

def result_rows(gallery: Gallery, pairs: np.ndarray, version: str) -> list[dict]:
    """The SimilarPerson elements of deduplicated ``pairs``, highest score first."""
    row_of = {int(p): i for i, p in enumerate(gallery.pks)}
    cos = pairs["cos"].astype(np.float64) if len(pairs) else np.zeros(0)
    sc = np.round(np.atleast_1d(scores.score_from_cosine(cos, version)), 2) if len(cos) else cos
    rows = []
    for (a, b, _), s in zip(pairs.tolist(), sc.tolist()):
        ia, ib = row_of[a], row_of[b]
        rows.append({"PersonId": gallery.person_ids[ia], "SimilarPersonId": gallery.person_ids[ib],
                     "Score": float(s), "GroupIds": gallery.group_ids[ia],
                     "SimilarGroupIds": gallery.group_ids[ib]})
    rows.sort(key=lambda r: (-r["Score"], r["PersonId"], r["SimilarPersonId"]))
    return rows


def write_result(path: Path, rows: list[dict]) -> None:
    write_atomic(path, json.dumps(rows, ensure_ascii=False, separators=(",", ":")))


# --------------------------------------------------------------------------- one job, resumable

class PairFile:
    """Append-only pair records; ``length`` (bytes) is what a checkpoint holds."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate(self, length: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.truncate(length)

    def append(self, pairs: np.ndarray) -> int:
        with open(self.path, "ab") as f:
            f.write(pairs.tobytes())
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    def read(self) -> np.ndarray:
        if not self.path.is_file():
            return np.zeros(0, PAIR_DTYPE)
        return np.frombuffer(self.path.read_bytes(), dtype=PAIR_DTYPE)


@dataclass
class Check:
    """One duplicate-person check over a job directory: :meth:`step` advances it by one batch
    from a checkpoint (a small JSON-able dict) and returns the next one."""

    directory: Path
    db: Database
    index: object  # VectorIndex
    account_id: int
    version: str
    groups: dict[int, str]  # group pk -> GroupId
    strength: int
    result_path: Path | None = None  # default: result.json in ``directory``
    expected_persons: int = 0  # persons counted when the job was submitted (progress only)

    def __post_init__(self) -> None:
        if self.result_path is None:
            self.result_path = self.directory / "result.json"

    def search(self, queries: np.ndarray, k: int):
        hits = self.index.search_persons(self.account_id, self.version, queries,
                                         list(self.groups), k)
        return [[(h.person, h.score) for h in row] for row in hits]

    def step(self, checkpoint: dict | None) -> tuple[dict, float, bool]:
        """(checkpoint, progress 0..100, done). Progress: the snapshot is the first
        :data:`SNAPSHOT_SHARE` %, the searches up to 99 %, the result file the last 1 %."""
        cp = dict(checkpoint or {})
        pair_file = PairFile(self.directory / "pairs.bin")
        dim = versions.get(self.version).dim
        if cp.get("phase") in (None, "snapshot"):
            if "upto" not in cp:  # the first step: which persons the check covers
                cp = {"phase": "snapshot", "upto": last_person_pk(self.db, self.account_id,
                                                                   self.groups),
                      "after": 0, "parts": 0, "read": 0}
            part, last, scanned = snapshot_page(
                self.db, self.account_id, self.groups, self.version, after=int(cp["after"]),
                upto=int(cp["upto"]), limit=SNAPSHOT_PAGE)
            if len(part):
                part.save(self.directory, f"part{int(cp['parts']):05d}")
                cp["parts"] = int(cp["parts"]) + 1
            cp.update(after=last, read=int(cp["read"]) + len(part))
            if scanned < SNAPSHOT_PAGE:  # the last page
                parts = [Gallery.load(self.directory, f"part{i:05d}")
                         for i in range(int(cp["parts"]))]
                # The parts stay until the job's directory goes (a redo of this step after a
                # crash reads them again).
                Gallery.concat(parts, dim).save(self.directory)
                pair_file.truncate(0)
                cp = {"phase": "search", "next": 0, "pairs_bytes": 0, "n": int(cp["read"])}
                return cp, SNAPSHOT_SHARE, False
            expected = max(1, int(self.expected_persons or cp["read"] or 1))
            return cp, round(SNAPSHOT_SHARE * min(1.0, int(cp["read"]) / expected), 2), False
        gallery = self._gallery()
        n, nxt = len(gallery), int(cp.get("next", 0))
        pair_file.truncate(int(cp.get("pairs_bytes", 0)))
        if cp["phase"] == "search" and nxt < n:
            stop = min(nxt + BATCH, n)
            found = find_pairs(self.search, gallery.pks, gallery.vectors,
                               threshold_cosine(self.strength, self.version), nxt, stop)
            length = pair_file.append(dedupe(pairs_array(found)))
            cp.update(next=stop, pairs_bytes=length)
            return cp, round(SNAPSHOT_SHARE + (99.0 - SNAPSHOT_SHARE) * stop / n, 2), False
        rows = result_rows(gallery, dedupe(pair_file.read().copy()), self.version)
        write_result(self.result_path, rows)
        cp.update(phase="done", pairs=len(rows))
        _CACHE.pop(str(self.directory), None)
        return cp, 100.0, True

    def _gallery(self) -> "Gallery":
        """The saved snapshot, kept in memory between the steps of one process (vectors
        memory-mapped)."""
        key = str(self.directory)
        cached = _CACHE.get(key)
        if cached is None:
            _CACHE.clear()  # one job runs at a time per runner
            cached = _CACHE[key] = Gallery.load(self.directory, mmap=True)
        return cached

    def run(self, checkpoint: dict | None = None,
            on_step: Callable[[dict, float], None] | None = None) -> dict:
        """All steps in this thread (the eval, and tests of the algorithm)."""
        while True:
            checkpoint, progress, done = self.step(checkpoint)
            if on_step is not None:
                on_step(checkpoint, progress)
            if done:
                return checkpoint


# --------------------------------------------------------------------------- the estimate

def measure_search_seconds(db: Database, index, account_id: int, version: str,
                           groups: dict[int, str], sample: int = 64) -> float:
    """Seconds the search step costs a person of these groups now, measured the way the job
    searches: the first ``sample`` persons of the groups (their fused features read as the
    snapshot reads them) through :func:`find_pairs` at the stronger setting's threshold (the
    one with more hits to keep), batched. Groups without persons: random unit queries."""
    gallery = snapshot_page(db, account_id, groups, version, limit=sample)[0]
    if len(gallery):
        pks, vectors = gallery.pks, gallery.vectors
    else:
        dim = versions.get(version).dim
        vectors = normalize(np.random.default_rng(0).standard_normal((sample, dim))
                            .astype(FEATURE_DTYPE))
        pks = -np.arange(1, sample + 1, dtype=np.int64)

    def search(queries, k):
        return [[(h.person, h.score) for h in row] for row in
                index.search_persons(account_id, version, queries, list(groups), k)]

    min_cos = threshold_cosine(min(STRENGTH_FAR), version)
    find_pairs(search, pks[:1], vectors[:1], min_cos, 0, 1)  # warm
    t0 = time.perf_counter()
    find_pairs(search, pks, vectors, min_cos, 0, len(pks))
    return (time.perf_counter() - t0) / len(pks)


# Reading a person's face vectors from the database and fusing them (the snapshot step),
# measured on the 4,000-person LFW gallery of `openiai eval similar-persons` (SQLite, 45-50
# us/person on a loaded 2-core machine).
SNAPSHOT_SECONDS_PER_PERSON = 5e-5
# What each step costs besides its searches (the checkpoint's transaction, the runner's
# bookkeeping): (job time - snapshot - searches) / steps on that gallery, about 60 ms.
STEP_SECONDS = 0.06


def estimate_minutes(persons: int, search_seconds: float, share: float = 1.0) -> int:
    """Whole minutes (rounded up) a check of ``persons`` persons takes at ``search_seconds``
    per person, on a runner busy ``share`` of the time (it sleeps the rest): 0 for no persons."""
    if persons <= 0:
        return 0
    per_person = search_seconds + SNAPSHOT_SECONDS_PER_PERSON + STEP_SECONDS / BATCH
    seconds = persons * per_person / share
    return max(1, math.ceil(seconds / 60.0))
