"""VerifyFace (best match over the person's faces) and VerifyPerson (fused person feature)."""

from __future__ import annotations

import numpy as np

from ..core import versions
from ..core.errors import value
from ..store.face_features import person_features
from ..store.repo import get_person
from ..core.features import fuse
from ..vision.scores import DEFAULT_VERIFY_THRESHOLD, score
from . import imaging
from .registry import Context, action


def _person_features(ctx: Context, person_id: str) -> tuple[str, np.ndarray]:
    with ctx.services.db.read() as s:
        person = get_person(s, ctx.account_id, person_id)
        version = person.face_model_version
        features = person_features(s, ctx.account_id, person.pk, version)
    if not len(features):
        raise value("NoFaceInGroups", f"Person `{person_id}` has no faces.")
    return version, features


def _probe(ctx: Context, req, version: str) -> np.ndarray:
    quality = imaging.quality_level(req.QualityControl)
    img, face = imaging.largest_face(ctx, req.Image, req.Url, quality=quality,
                                     rotate=imaging.flag(req.NeedRotateDetection))
    return ctx.services.faces.feature(img.pixels, face, version)


def _result(cosine: float, version: str) -> dict:
    sc = score(cosine, version)
    return {"Score": sc, "IsMatch": sc >= DEFAULT_VERIFY_THRESHOLD,
            "FaceModelVersion": version}


@action("VerifyFace")
def verify_face(ctx: Context, req) -> dict:
    version, feats = _person_features(ctx, req.PersonId)
    probe = _probe(ctx, req, version)
    # The docs: with several faces under the PersonId, the highest similarity is returned.
    return _result(float(np.max(feats @ probe)), version)


@action("VerifyPerson")
def verify_person(ctx: Context, req) -> dict:
    version, feats = _person_features(ctx, req.PersonId)
    if not versions.get(version).person_search:
        raise value("UnsupportedGroupFaceModelVersion",
                    "VerifyPerson is available only for persons in FaceModelVersion 3.0 groups.")
    probe = _probe(ctx, req, version)
    return _result(float(fuse(feats) @ probe), version)
