"""1:N search: SearchFaces, SearchFacesReturnsByGroup, SearchPersons, SearchPersonsReturnsByGroup
(2020-03-03 and 2018-03-01; the SDK declares the same fields in both).

SearchFaces* score every face of a person on its own (a person is returned once, with its best
face); SearchPersons* score the person's fused feature (the normalised mean of its faces) and
return FaceId "". Up to 10 faces of the image are searched (MaxFaceNum, largest first), each
with its own FaceRect, RetCode and candidates.

The vector index (``ctx.services.index``, an :class:`openiai.index.VectorIndex`) may
lag the database by a moment, so every hit is checked against the database before it is
returned: a face or person deleted since, or a person no longer in a searched group, is
dropped (the index is asked for a few extra candidates to make up for them). Scores are
``vision.scores.score_from_cosine``, so a FaceMatchThreshold means the same as a CompareFace
score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..core import versions
from ..core.errors import ApiError, failed, invalid, value
from ..index import Hit
from ..services.hits import STALE_SLACK, Rows, person_group_infos
from ..core.timing import stage
from ..vision.scores import score
from . import imaging, retcodes, searched_groups
from .registry import Context, action

# Documented limits (SearchFaces ... SearchPersonsReturnsByGroup, both API versions).
MAX_FACE_NUM = 10  # MaxFaceNum: default 1, maximum 10
DEFAULT_PERSON_NUM = 5  # MaxPersonNum / MaxPersonNumPerGroup default



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


# --- groups ------------------------------------------------------------------------------------

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
    vectors: np.ndarray  # (len(ok), dim) features of those faces


def _probe(ctx: Context, req, *, max_faces: int, quality: int, version: str) -> Probe:
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=max_faces,
                               min_face_size=req.MinFaceSize,
                               rotate=imaging.flag(req.NeedRotateDetection))
    pixels = found.image.pixels
    ok = []
    for i, face in enumerate(found.faces):
        try:
            ctx.services.faces.require_quality(pixels, face, quality)
        except ApiError:  # per face: RetCode -1601, not a failed call
            continue
        ok.append(i)
    vectors = ctx.services.faces.features(pixels, [found.faces[i] for i in ok], version)
    return Probe([imaging.face_rect(f) for f in found.faces], ok, vectors)


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
    group_ids = searched_groups.group_ids(req.GroupIds, spec.max_groups)
    max_faces = _max_faces(req.MaxFaceNum)
    k = _max_persons(req.MaxPersonNumPerGroup if spec.by_group else req.MaxPersonNum, spec)
    threshold = _threshold(req.FaceMatchThreshold, spec)
    quality = imaging.quality_level(req.QualityControl)
    need_info = imaging.flag(req.NeedPersonInfo)
    if not req.Image and not req.Url:
        raise value("ImageEmpty", f"{name} needs a face image: give Image or Url.")
    searched = searched_groups.searched(ctx, group_ids, persons=spec.persons)
    version = searched.version
    check_searchable(searched.faces, version)
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
            results.append({"FaceRect": rect, "RetCode": retcodes.QUALITY,
                            "GroupCandidates" if spec.by_group else "Candidates": []})
        elif spec.by_group:
            groups = [{"GroupId": g.group_id, "Candidates": candidates(row.get(g.pk, []), [g.pk])}
                      for g in searched.groups]
            results.append({"FaceRect": rect, "RetCode": retcodes.OK, "GroupCandidates": groups})
        else:
            found = candidates(row, searched.pks)
            results.append({"FaceRect": rect, "Candidates": found,
                            "RetCode": retcodes.OK if found else retcodes.BELOW_THRESHOLD})

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
