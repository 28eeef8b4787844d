"""Duplicate-person checks (CheckSimilarPerson and its companions): every pair of persons in up
to 10 groups whose fused person features score above a threshold, found through the vector
index, resumable in batches.

The job, step by step (each step leaves a checkpoint a restart resumes from):

1. :func:`snapshot` - the persons of the groups as they are when the job starts (the docs: "the
   groups' state at the moment the job starts is what is checked"), each with its fused
   feature (the normalised sum of its normalised face vectors, as the index fuses them) and
   the checked groups it is in; saved once as ``gallery.npz`` + ``gallery.json``.
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
from sqlalchemy import select

from ..core import versions
from ..core.features import FEATURE_DTYPE, from_bytes, normalize
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
K_START = 16  # neighbours asked per person; grown x4 while all of them are above threshold


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

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "gallery.tmp.npz", pks=self.pks, vectors=self.vectors)
        _write_atomic(directory / "gallery.json",
                      json.dumps({"person_ids": self.person_ids, "group_ids": self.group_ids}))
        os.replace(directory / "gallery.tmp.npz", directory / "gallery.npz")

    @classmethod
    def load(cls, directory: Path) -> "Gallery":
        arrays = np.load(directory / "gallery.npz")
        meta = json.loads((directory / "gallery.json").read_text())
        return cls(arrays["pks"], meta["person_ids"], meta["group_ids"], arrays["vectors"])

    @staticmethod
    def saved(directory: Path) -> bool:
        return (directory / "gallery.npz").is_file() and (directory / "gallery.json").is_file()


def snapshot(db: Database, account_id: int, groups: dict[int, str], version: str) -> Gallery:
    """The persons of ``groups`` ({group pk: GroupId}) that have a feature under ``version``,
    with their fused features, read in one transaction."""
    dim = versions.get(version).dim
    with db.read() as s:
        members = s.execute(
            select(Membership.person_pk, Membership.group_pk)
            .join(Person, Person.pk == Membership.person_pk)
            .where(Person.account_id == account_id, Membership.group_pk.in_(list(groups)))
        ).all()
        in_groups: dict[int, list[str]] = {}
        for person_pk, group_pk in members:
            in_groups.setdefault(int(person_pk), []).append(groups[int(group_pk)])
        ids = dict(s.execute(select(Person.pk, Person.person_id).where(
            Person.account_id == account_id, Person.pk.in_(
                select(Membership.person_pk).where(Membership.group_pk.in_(list(groups))))
        )).all())
        rows = s.execute(
            select(Face.person_pk, FaceFeature.vector)
            .join(FaceFeature, (FaceFeature.face_pk == Face.pk)
                  & (FaceFeature.model_version == version))
            .where(Face.account_id == account_id, Face.person_pk.in_(
                select(Membership.person_pk).where(Membership.group_pk.in_(list(groups)))))
            .order_by(Face.person_pk)).all()
    if not rows:
        return Gallery(np.zeros(0, np.int64), [], [], np.zeros((0, dim), np.float32))
    face_person = np.array([r[0] for r in rows], np.int64)
    vectors = from_bytes(b"".join(r[1] for r in rows)).reshape(-1, dim)
    starts = np.flatnonzero(np.r_[True, face_person[1:] != face_person[:-1]])
    pks = face_person[starts]
    fused = normalize(np.add.reduceat(normalize(vectors), starts, axis=0)).astype(np.float32)
    return Gallery(pks, [ids[int(p)] for p in pks],
                   [sorted(set(in_groups.get(int(p), []))) for p in pks], fused)


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
    deduplicate (:func:`dedupe`)."""
    known = set(int(p) for p in pks)
    limit = len(pks)
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
    _write_atomic(path, json.dumps(rows, ensure_ascii=False, separators=(",", ":")))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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

    def __post_init__(self) -> None:
        if self.result_path is None:
            self.result_path = self.directory / "result.json"

    def search(self, queries: np.ndarray, k: int):
        hits = self.index.search_persons(self.account_id, self.version, queries,
                                         list(self.groups), k)
        return [[(h.person, h.score) for h in row] for row in hits]

    def step(self, checkpoint: dict | None) -> tuple[dict, float, bool]:
        """(checkpoint, progress 0..100, done)."""
        cp = dict(checkpoint or {})
        pair_file = PairFile(self.directory / "pairs.bin")
        if not cp.get("snapshot") or not Gallery.saved(self.directory):
            gallery = snapshot(self.db, self.account_id, self.groups, self.version)
            gallery.save(self.directory)
            pair_file.truncate(0)
            return {"snapshot": True, "next": 0, "pairs_bytes": 0, "n": len(gallery)}, 0.0, False
        gallery = Gallery.load(self.directory)
        n, nxt = len(gallery), int(cp.get("next", 0))
        if nxt < n:
            pair_file.truncate(int(cp.get("pairs_bytes", 0)))
            stop = min(nxt + BATCH, n)
            found = find_pairs(self.search, gallery.pks, gallery.vectors,
                               threshold_cosine(self.strength, self.version), nxt, stop)
            length = pair_file.append(dedupe(pairs_array(found)))
            cp.update(next=stop, pairs_bytes=length)
            # The last percent is the result file.
            return cp, round(99.0 * stop / n, 2), False
        pair_file.truncate(int(cp.get("pairs_bytes", 0)))
        rows = result_rows(gallery, dedupe(pair_file.read().copy()), self.version)
        write_result(self.result_path, rows)
        cp.update(pairs=len(rows))
        return cp, 100.0, True

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

def measure_search_seconds(index, account_id: int, version: str, group_pks: list[int],
                           sample: int = 32, seed: int = 0) -> float:
    """Seconds one person's search costs against these groups now: ``sample`` random unit
    queries (what the index costs does not depend on where a query points) searched as the
    job searches them, batched, k = :data:`K_START`."""
    dim = versions.get(version).dim
    q = normalize(np.random.default_rng(seed).standard_normal((sample, dim)).astype(FEATURE_DTYPE))
    index.search_persons(account_id, version, q[:1], group_pks, K_START)  # warm
    t0 = time.perf_counter()
    index.search_persons(account_id, version, q, group_pks, K_START)
    return (time.perf_counter() - t0) / sample


# Reading a person's face vectors from the database and fusing them (the snapshot step),
# measured on the 4,000-person LFW gallery of `openiai eval similar-persons` (SQLite).
SNAPSHOT_SECONDS_PER_PERSON = 2e-5


def estimate_minutes(persons: int, search_seconds: float) -> int:
    """Whole minutes (rounded up) a check of ``persons`` persons takes at ``search_seconds``
    per person: 0 for no persons."""
    if persons <= 0:
        return 0
    seconds = persons * (search_seconds + SNAPSHOT_SECONDS_PER_PERSON)
    return max(1, math.ceil(seconds / 60.0))
