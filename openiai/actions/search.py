"""1:N search: SearchFaces, SearchFacesReturnsByGroup, SearchPersons, SearchPersonsReturnsByGroup
(2020-03-03 and 2018-03-01; the SDK declares the same fields in both).

SearchFaces* score every face of a person on its own (a person is returned once, with its best
face); SearchPersons* score the person's fused feature (the normalised mean of its faces) and
return FaceId "". Up to 10 faces of the image are searched (MaxFaceNum, largest first), each
with its own FaceRect, RetCode and candidates.

The vector index (``ctx.services.index``, an :class:`openiai.index.manager.IndexManager`) may
lag the database by a moment, so every hit is checked against the database before it is
returned: a face or person deleted since, or a person no longer in a searched group, is
dropped (the index is asked for a few extra candidates to make up for them). Scores are
``vision.scores.score_from_cosine``, so a FaceMatchThreshold means the same as a CompareFace
score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, Sequence

import numpy as np
from sqlalchemy import select

from ..core import versions
from ..core.errors import ApiError, failed, invalid, value
from ..index.manager import Hit
from ..services.hits import STALE_SLACK, Rows, person_group_infos
from ..store.schema import Group
from ..core.timing import stage
from ..vision.engine import get_engine
from ..vision.scores import score_from_cosine
from . import imaging, limits
from .registry import Context, action

# Documented limits (SearchFaces ... SearchPersonsReturnsByGroup, both API versions).
MAX_FACE_NUM = 10  # MaxFaceNum: default 1, maximum 10
DEFAULT_PERSON_NUM = 5  # MaxPersonNum / MaxPersonNumPerGroup default

# Result / ResultsReturnsByGroup RetCode values.
RET_OK = 0
RET_QUALITY = -1601  # "the image does not meet the quality requirements; Candidates is empty"
# Result only (not ResultsReturnsByGroup): "the face similarity is not higher than
# FaceMatchThreshold".
RET_BELOW_THRESHOLD = -1604


@dataclass(frozen=True)
class Spec:
    persons: bool  # fused person features (SearchPersons*) instead of single faces
    by_group: bool  # ResultsReturnsByGroup output
    max_groups: int  # GroupIds limit
    max_per_query: int  # MaxPersonNum (100) / MaxPersonNumPerGroup (10)
    # FaceMatchThreshold, as each action's docs word it: "greater than or equal to" with range
    # [0, 100) (inclusive) or "above" (strict, no range given: [0, 100] accepted).
    inclusive: bool


SPECS = {
    "SearchFaces": Spec(persons=False, by_group=False, max_groups=100, max_per_query=100,
                        inclusive=False),
    "SearchFacesReturnsByGroup": Spec(persons=False, by_group=True, max_groups=60,
                                      max_per_query=10, inclusive=True),
    "SearchPersons": Spec(persons=True, by_group=False, max_groups=100, max_per_query=100,
                          inclusive=True),
    "SearchPersonsReturnsByGroup": Spec(persons=True, by_group=True, max_groups=60,
                                        max_per_query=10, inclusive=False),
}


# --- parameters ------------------------------------------------------------------------------

def _group_ids(raw: Sequence[str] | None, spec: Spec) -> list[str]:
    ids = list(dict.fromkeys(raw or []))  # order kept, repeats searched once
    if not ids:
        raise ApiError("MissingParameter", "GroupIds must name at least one group.")
    if len(ids) > spec.max_groups:
        raise value("GroupIdsExceed", f"GroupIds may name at most {spec.max_groups} groups.")
    return [limits.group_id(g) for g in ids]


def _max_faces(raw: int | None) -> int:
    n = 1 if raw is None else raw
    if n < 1:
        raise invalid("MaxFaceNum must be at least 1.")
    if n > MAX_FACE_NUM:  # the same code DetectFace uses for its MaxFaceNum limit
        raise ApiError("LimitExceeded.ErrorFaceNumExceed",
                       f"MaxFaceNum may be at most {MAX_FACE_NUM}.")
    return n


def _max_persons(raw: int | None, spec: Spec) -> int:
    name = "MaxPersonNumPerGroup" if spec.by_group else "MaxPersonNum"
    n = DEFAULT_PERSON_NUM if raw is None else raw
    if n < 1:
        raise invalid(f"{name} must be at least 1.")
    if n > spec.max_per_query:
        raise value("LimitExceed", f"{name} may be at most {spec.max_per_query}.")
    return n


def _threshold(raw: float | None, spec: Spec) -> float:
    t = 0.0 if raw is None else float(raw)
    upper_ok = t < 100.0 if spec.inclusive else t <= 100.0
    if not (t >= 0.0 and upper_ok):  # also refuses NaN
        rng = "[0, 100)" if spec.inclusive else "[0, 100]"
        raise value("FaceMatchThresholdIllegal", f"FaceMatchThreshold must be within {rng}.")
    return t


def _passes(score: float, threshold: float, spec: Spec) -> bool:
    return score >= threshold if spec.inclusive else score > threshold


def score(cosine: float, version: str) -> float:
    """The Candidate Score of a cosine: the same calibrated scale as CompareFace."""
    return round(float(score_from_cosine(cosine, version)), 2)


# --- groups ------------------------------------------------------------------------------------

@dataclass
class Searched:
    groups: list[Group]  # in GroupIds order
    version: str
    faces: int  # distinct faces in the searched groups (FaceNum)
    persons: int  # distinct persons in the searched groups (PersonNum)

    @property
    def pks(self) -> list[int]:
        return [g.pk for g in self.groups]


def _searched(ctx: Context, group_ids: list[str], spec: Spec) -> Searched:
    with ctx.services.db.read() as s:
        by_id = {g.group_id: g for g in s.scalars(select(Group).where(
            Group.account_id == ctx.account_id, Group.group_id.in_(group_ids)))}
        missing = [gid for gid in group_ids if gid not in by_id]
        if missing:
            raise value("GroupIdNotExist", f"Group `{missing[0]}` does not exist.")
        groups = [by_id[gid] for gid in group_ids]
        found = {g.face_model_version for g in groups}  # not `versions`: the module below
        if len(found) > 1:
            raise failed("AcrossVersionsError",
                         "Groups of different FaceModelVersions cannot be searched together: "
                         + ", ".join(f"`{g.group_id}` {g.face_model_version}" for g in groups))
        version = found.pop()
        if spec.persons and not versions.get(version).person_search:
            raise value("UnsupportedGroupFaceModelVersion",
                        "Person search is available only for FaceModelVersion 3.0 groups.")
        pks = [g.pk for g in groups]
    # The index's cached group filter knows these counts; a COUNT over the tables took 1.6 s
    # at 1M faces on SQLite.
    counts = ctx.services.index.group_counts(ctx.account_id, version, pks)
    faces, persons = counts["faces"], counts["persons"]
    check_searchable(faces, version)
    return Searched(groups, version, faces, persons)


def check_searchable(faces: int, version: str) -> None:
    """The documented errors for what is in the searched groups: nothing, or too much."""
    if faces == 0:
        raise value("NoFaceInGroups", "There are no faces in the searched groups.")
    limit = versions.get(version).search_faces_limit
    if faces > limit:
        raise failed("SearchFacesExceed",
                     f"The searched groups hold {faces:,} faces; one search may cover at most "
                     f"{limit:,} for FaceModelVersion {version}.")


# --- the image ----------------------------------------------------------------------------------

@dataclass
class Probe:
    rects: list[dict]  # FaceRect per searched face, largest first
    ok: list[int]  # indexes of the faces that pass QualityControl
    vectors: np.ndarray  # (len(ok), 128) features of those faces


def _probe(ctx: Context, req, *, max_faces: int, quality: int, version: str) -> Probe:
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=max_faces,
                               min_face_size=req.MinFaceSize,
                               rotate=imaging.flag(req.NeedRotateDetection))
    pixels = found.image.pixels
    ok = []
    for i, face in enumerate(found.faces):
        try:
            imaging.require_quality(pixels, face, quality)
        except ApiError:  # per face: RetCode -1601, not a failed call
            continue
        ok.append(i)
    vectors = (get_engine().features(pixels, [found.faces[i] for i in ok], version)
               if ok else np.zeros((0, 128), np.float32))
    return Probe([imaging.face_rect(f) for f in found.faces], ok, np.asarray(vectors, np.float32))


# --- the search -------------------------------------------------------------------------------

def _index_search(ctx: Context, spec: Spec, version: str, vectors: np.ndarray,
                  group_pks: list[int], k: int):
    index = ctx.services.index
    with stage("search"):
        if spec.by_group and spec.persons:
            return index.search_persons_by_group(ctx.account_id, version, vectors, group_pks, k)
        if spec.by_group:
            return index.search_faces_by_group(ctx.account_id, version, vectors, group_pks, k,
                                               unique_persons=True)
        if spec.persons:
            return index.search_persons(ctx.account_id, version, vectors, group_pks, k)
        return index.search_faces(ctx.account_id, version, vectors, group_pks, k,
                                  unique_persons=True)


class _Candidates:
    """Turns live hits into Candidate dicts: threshold, MaxPersonNum, NeedPersonInfo."""

    def __init__(self, db: Rows, infos: dict[int, list[dict]] | None, version: str,
                 threshold: float, limit: int, spec: Spec) -> None:
        self.db, self.infos, self.version = db, infos, version
        self.threshold, self.limit, self.spec = threshold, limit, spec

    def __call__(self, hits: list[Hit], group_pks: Iterable[int]) -> list[dict]:
        group_pks = list(group_pks)
        out = []
        for hit in hits:
            if len(out) == self.limit:
                break
            if not self.db.keep(hit, group_pks):
                continue
            sc = score(hit.score, self.version)
            if not _passes(sc, self.threshold, self.spec):
                break  # hits come best first
            person = self.db.persons[hit.person]
            cand = {"PersonId": person.person_id, "FaceId": self.db.face_id(hit), "Score": sc,
                    "PersonName": None, "Gender": None, "PersonGroupInfos": None}
            if self.infos is not None:  # NeedPersonInfo=1
                cand.update(PersonName=person.name, Gender=person.gender,
                            PersonGroupInfos=self.infos.get(person.pk, []))
            out.append(cand)
        return out


def _search(ctx: Context, req, name: str) -> dict:
    spec = SPECS[name]
    group_ids = _group_ids(req.GroupIds, spec)
    max_faces = _max_faces(req.MaxFaceNum)
    k = _max_persons(req.MaxPersonNumPerGroup if spec.by_group else req.MaxPersonNum, spec)
    threshold = _threshold(req.FaceMatchThreshold, spec)
    quality = imaging.quality_level(req.QualityControl)
    need_info = imaging.flag(req.NeedPersonInfo)
    if not req.Image and not req.Url:
        raise value("ImageEmpty", f"{name} needs a face image: give Image or Url.")
    searched = _searched(ctx, group_ids, spec)
    version = searched.version
    probe = _probe(ctx, req, max_faces=max_faces, quality=quality, version=version)

    raw = (_index_search(ctx, spec, version, probe.vectors, searched.pks, k + STALE_SLACK)
           if probe.ok else [])
    hits = ([h for row in raw for hits in row.values() for h in hits] if spec.by_group
            else [h for row in raw for h in row])
    with ctx.services.db.read() as s:
        db = Rows(s, ctx.account_id, hits, searched.pks)
        infos = None
        if need_info:
            infos = person_group_infos(s, ctx.account_id,
                                       {h.person for h in hits if db.keep(h, searched.pks)})
    candidates = _Candidates(db, infos, version, threshold, k, spec)

    results = []
    by_face = dict(zip(probe.ok, raw))
    for i, rect in enumerate(probe.rects):
        row = by_face.get(i)
        if row is None:
            results.append({"FaceRect": rect, "RetCode": RET_QUALITY,
                            "GroupCandidates" if spec.by_group else "Candidates": []})
        elif spec.by_group:
            groups = [{"GroupId": g.group_id, "Candidates": candidates(row.get(g.pk, []), [g.pk])}
                      for g in searched.groups]
            results.append({"FaceRect": rect, "RetCode": RET_OK, "GroupCandidates": groups})
        else:
            found = candidates(row, searched.pks)
            results.append({"FaceRect": rect, "Candidates": found,
                            "RetCode": RET_OK if found else RET_BELOW_THRESHOLD})

    out: dict = {"ResultsReturnsByGroup" if spec.by_group else "Results": results,
                 "FaceModelVersion": version}
    if spec.persons:
        # "If the quality of all faces in the input image does not meet the requirement, 0 will
        # be returned."
        out["PersonNum"] = searched.persons if probe.ok else 0
    else:
        out["FaceNum"] = searched.faces
    return out


@action("SearchFaces")
def search_faces(ctx: Context, req) -> dict:
    return _search(ctx, req, "SearchFaces")


@action("SearchFacesReturnsByGroup")
def search_faces_returns_by_group(ctx: Context, req) -> dict:
    return _search(ctx, req, "SearchFacesReturnsByGroup")


@action("SearchPersons")
def search_persons(ctx: Context, req) -> dict:
    return _search(ctx, req, "SearchPersons")


@action("SearchPersonsReturnsByGroup")
def search_persons_returns_by_group(ctx: Context, req) -> dict:
    return _search(ctx, req, "SearchPersonsReturnsByGroup")
