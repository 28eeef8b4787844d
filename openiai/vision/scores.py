"""Cosine similarity -> IAI-style 0..100 score, calibrated to measured false-accept rates.

The IAI docs (CompareFace/VerifyFace "Score") define scores by FAR, not by geometry:
"the 0.1%, 0.01%, and 0.001% FARs on v3.0 correspond to scores of 40, 50, and 60 ... the
0.1%, 0.01%, and 0.001% FARs on v2.0 correspond to scores of 70, 80, and 90".

``calibration.json`` (written by ``openiai.bench.calibrate``) holds, for our recognizer, the
impostor-cosine quantile at each FAR measured on LFW (all cross-identity pairs). The score is
a piecewise-linear, strictly increasing map of the cosine through the knots
(cosine -1 -> 0, cosine at FAR f -> the version's score for f, cosine 1 -> 100). Anchor
scores per FaceModelVersion:

====  ======  =====  =====  =====  =====  =====  =====
FAR   0.5     1e-1   1e-2   1e-3   1e-4   1e-5   1e-6
3.0   10      20     30     40     50     60     70
2.0   40      50     60     70     80     90     --
====  ======  =====  =====  =====  =====  =====  =====

FARs the calibration set cannot measure (too few impostor pairs above the cosine) are left out.

Each recognizer has its own table: ``calibration.json`` is SFace's (3.0),
``calibration_<recognizer>.json`` another's (``calibration_dlib_resnet.json``: dlib's ResNet,
2.0); a version reads the table of its recognizer (:attr:`openiai.core.versions.ModelVersion.recognizer`).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core import versions

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
# Other measured tables, same format: CompareMaskFace's upper-face comparison
# (:mod:`openiai.vision.upper_face`, written by ``openiai eval maskcompare --write-table``) and
# DetectFaceSimilarity's (written by ``openiai eval similarity --write-table``).
TABLES = {"compare": CALIBRATION_PATH,
          "mask": CALIBRATION_PATH.with_name("mask_calibration.json"),
          "similarity": CALIBRATION_PATH.with_name("similarity_calibration.json")}
# DetectFaceSimilarity: "we recommend 70 as the threshold (a fixed threshold, FAR 1e-4)". The
# other knots continue the same 10 points per decade of FAR, so the score is a log-FAR scale.
SIMILARITY_ANCHOR_SCORES = {0.5: 33.0, 1e-1: 40.0, 1e-2: 50.0, 1e-3: 60.0, 1e-4: 70.0,
                            1e-5: 80.0}
SIMILARITY_THRESHOLD = 70.0


# VerifyFace, "IsMatch: Whether the person is the one in the image. The fixed threshold score
# is 60." (IAI API 2020-03-03, VerifyFace output parameters). VerifyPerson's doc names no
# threshold, so it uses the same one.
DEFAULT_VERIFY_THRESHOLD = 60.0


def calibration_path(recognizer: str = "sface", name: str = "compare") -> Path:
    """The shipped score table of a recognizer (``name``: CompareFace's, or one of the other
    measured SFace tables in :data:`TABLES`)."""
    if name != "compare":
        return TABLES[name]
    own = [v.table for v in versions.VERSIONS.values() if v.recognizer == recognizer and v.table]
    if own:  # an operator's own recognizer: its table is in the data directory
        return Path(own[0])
    if recognizer == "sface":
        return CALIBRATION_PATH
    return CALIBRATION_PATH.with_name(f"calibration_{recognizer}.json")


@lru_cache(maxsize=8)
def calibration(recognizer: str = "sface", name: str = "compare") -> dict:
    with open(calibration_path(recognizer, name), encoding="utf-8") as f:
        return json.load(f)


def anchor_scores(model_version: str, name: str = "compare") -> dict:
    """FAR -> score of a table: the version's documented anchors, or DetectFaceSimilarity's."""
    return SIMILARITY_ANCHOR_SCORES if name == "similarity" else versions.get(model_version).anchor_scores


def anchors(model_version: str = "3.0", table: dict | None = None,
            name: str = "compare") -> tuple[np.ndarray, np.ndarray]:
    """(cosines, scores) knots of the map, strictly increasing in both."""
    table = table or calibration(versions.get(model_version).recognizer, name)
    wanted = anchor_scores(model_version, name)
    knots = [(-1.0, 0.0)]
    for row in sorted(table["anchors"], key=lambda r: r["cosine"]):
        score = wanted.get(float(row["far"]))
        if score is not None and row.get("measurable", True):
            knots.append((float(row["cosine"]), score))
    knots.append((1.0, 100.0))
    knots.sort()
    cos = np.array([k[0] for k in knots])
    sc = np.array([k[1] for k in knots])
    if np.any(np.diff(cos) <= 0) or np.any(np.diff(sc) <= 0):
        raise ValueError("calibration.json anchors are not strictly increasing")
    return cos, sc


def forget_tables() -> None:
    """Drop the cached tables and knots (the operator's versions were installed again)."""
    calibration.cache_clear()
    _knots.cache_clear()


@lru_cache(maxsize=8)
def _knots(model_version: str, name: str = "compare"):
    return anchors(model_version, name=name)


def score_from_cosine(cos, model_version: str = "3.0", table: str = "compare"):
    """Score 0..100 for a cosine (float or array; arrays give arrays) through the named table."""
    xs, ys = _knots(model_version, table)
    out = np.interp(np.clip(np.asarray(cos, dtype=np.float64), -1.0, 1.0), xs, ys)
    return float(out) if np.ndim(out) == 0 else out


def score(cos: float, model_version: str = "3.0", table: str = "compare") -> float:
    """The wire Score of one cosine: calibrated, rounded to 2 decimals (CompareFace, Verify*,
    search candidates and CreateFace's threshold all use this one rounding)."""
    return round(float(score_from_cosine(float(cos), model_version, table)), 2)


def cosine_for_score(score: float, model_version: str = "3.0", table: str = "compare") -> float:
    """The cosine at which `score` is reached (inverse of :func:`score_from_cosine`)."""
    xs, ys = _knots(model_version, table)
    return float(np.interp(min(max(float(score), 0.0), 100.0), ys, xs))


def score_for_far(far: float, model_version: str = "3.0") -> float:
    """The score whose measured false-accept rate is `far` (log-linear between anchors)."""
    rows = sorted(calibration(versions.get(model_version).recognizer)["anchors"], key=lambda r: -r["far"])
    fars = np.array([math.log10(r["far"]) for r in rows])
    coss = np.array([r["cosine"] for r in rows])
    # fars decrease along rows; np.interp wants increasing x
    cos = float(np.interp(math.log10(max(far, 1e-12)), fars[::-1], coss[::-1]))
    return score_from_cosine(cos, model_version)
