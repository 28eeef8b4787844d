"""CompareFace: the calibrated similarity of the chosen faces of two images."""

from __future__ import annotations

import numpy as np

from ..core.errors import invalid
from ..vision.scores import score
from . import imaging, limits
from .registry import Context, action


def _pick(ctx, image_b64, url, *, strategy: int, rotate: bool, quality: int):
    """Which face of an image is compared.

    The product docs (CompareFace, ImageA/ImageB): "If there are multiple faces in the image,
    only the face with the largest size will be selected" -- that is what happens when
    FaceMatchingStrategy is absent (always, on 2018-03-01). The 2020-03-03 SDK adds
    FaceMatchingStrategy: 0 picks the most confident face, 1 the largest. Measured on LFW
    pairsDevTest, the most confident face is often a sharp bystander (96.6 % vs 98.6 %
    accuracy), so an explicit 0 is honoured but not imposed on callers who did not ask.
    """
    found = imaging.find_faces(ctx, image_b64, url, rotate=rotate,
                               max_faces=1 if strategy == 1 else imaging.MAX_FACE_NUM_LIMIT)
    face = found.faces[0] if strategy == 1 else max(found.faces, key=lambda f: f.score)
    ctx.services.faces.require_quality(found.image.pixels, face, quality)
    return found.image, face


@action("CompareFace")
def compare_face(ctx: Context, req) -> dict:
    version = limits.face_model_version(req.FaceModelVersion)
    quality = imaging.quality_level(req.QualityControl)
    strategy = getattr(req, "FaceMatchingStrategy", None)
    strategy = 1 if strategy is None else strategy
    if strategy not in (0, 1):
        raise invalid("FaceMatchingStrategy must be 0 (most confident face) or 1 (largest face).")
    rotate = imaging.flag(req.NeedRotateDetection)
    img_a, face_a = _pick(ctx, req.ImageA, req.UrlA, strategy=strategy, rotate=rotate,
                          quality=quality)
    img_b, face_b = _pick(ctx, req.ImageB, req.UrlB, strategy=strategy, rotate=rotate,
                          quality=quality)
    feats = ctx.services.faces.features_of([(img_a.pixels, face_a), (img_b.pixels, face_b)],
                                           version)
    return {"Score": score(float(np.dot(feats[0], feats[1])), version), "FaceModelVersion": version}
