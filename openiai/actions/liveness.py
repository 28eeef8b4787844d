"""DetectLiveFace and DetectLiveFaceAccurate: single-image liveness of the largest face.

Both judge one face: the docs are silent on pictures with several faces, so, as CompareFace's
docs say for its images, the largest face is the one judged. What the score means and how it
was measured is :mod:`openiai.services.liveness`'s business; this module applies the
documented parameters, limits and errors:

* DetectLiveFace (both API versions; no method in SDK 3.1.191, callers use the common
  client): FaceModelVersion "2.0" or "3.0" (default "3.0"); Score 0..100 with the documented
  live threshold 87, and IsLiveness (the field the docs make meaningful on 3.0) = Score >= 87.
  On "2.0" the same model answers: there is one liveness model here, not two.
* DetectLiveFaceAccurate (2020-03-03): FaceModelVersion "3.0" only; the face must be at least
  100 px tall ("greater than 100*100 px"), else FailedOperation.FaceSizeTooSmall; Score 0..100
  with the recommended threshold 40.
"""

from __future__ import annotations

from ..core.errors import value
from ..services.liveness import ACCURATE, BASIC
from . import imaging, limits
from .registry import Context, action

ACCURATE_VERSION = "3.0"  # the docs: "Valid value: 3.0"


@action("DetectLiveFace")
def detect_live_face(ctx: Context, req) -> dict:
    version = limits.face_model_version(req.FaceModelVersion)
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=1)
    score = ctx.services.liveness.score(found.image.pixels, found.faces[0], BASIC)
    score = round(score, 2)
    return {"Score": score, "FaceModelVersion": version, "IsLiveness": score >= BASIC.threshold}


@action("DetectLiveFaceAccurate")
def detect_live_face_accurate(ctx: Context, req) -> dict:
    if req.FaceModelVersion not in (None, "", ACCURATE_VERSION):
        raise value("FaceModelVersionIllegal",
                    f"DetectLiveFaceAccurate supports only FaceModelVersion {ACCURATE_VERSION}.")
    # min_face_size makes a picture whose faces are all smaller answer FaceSizeTooSmall
    # (and one with no face at all NoFaceInPhoto), through the pipeline's documented errors.
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=1,
                               min_face_size=ACCURATE.min_face_size)
    score = ctx.services.liveness.score(found.image.pixels, found.faces[0], ACCURATE)
    return {"Score": round(score, 2), "FaceModelVersion": ACCURATE_VERSION}
