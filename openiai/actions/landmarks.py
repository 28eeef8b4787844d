"""AnalyzeFace (90-point FaceShape) and AnalyzeDenseLandmarks (DenseFaceShape), both from the
468-point face mesh and the iris model (:meth:`openiai.services.faces.FacePipeline.mesh`).

Mode, as both actions' docs say: 0 (the default) = every face found, 1 = the largest face
only. AnalyzeFace returns at most 10 faces, AnalyzeDenseLandmarks at most 5 (the largest);
further faces in the picture are not returned and are no error.
"""

from __future__ import annotations

from ..core.errors import invalid, value
from . import imaging, limits
from .registry import Context, action

ANALYZE_FACE_MAX = 10  # the docs: "最多返回 10 张人脸的五官定位"
DENSE_MAX = 5  # the docs: "最多返回 5 张人脸的五官定位"
DENSE_VERSIONS = ("3.0",)  # the docs: "本接口仅支持 “3.0“ 输入"


def _mode_max_faces(raw: int | None, cap: int) -> int:
    mode = 0 if raw is None else raw
    if mode not in (0, 1):
        raise invalid("Mode must be 0 (all faces) or 1 (the largest face).")
    return cap if mode == 0 else 1


@action("AnalyzeFace")
def analyze_face(ctx: Context, req) -> dict:
    max_faces = _mode_max_faces(req.Mode, ANALYZE_FACE_MAX)
    version = limits.face_model_version(req.FaceModelVersion)
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=max_faces,
                               rotate=imaging.flag(req.NeedRotateDetection))
    shapes = [ctx.services.faces.face_shape(found.image.pixels, f) for f in found.faces]
    return {"ImageWidth": found.image.width, "ImageHeight": found.image.height,
            "FaceShapeSet": shapes, "FaceModelVersion": version}


@action("AnalyzeDenseLandmarks")
def analyze_dense_landmarks(ctx: Context, req) -> dict:
    max_faces = _mode_max_faces(req.Mode, DENSE_MAX)
    version = limits.face_model_version(req.FaceModelVersion)
    if version not in DENSE_VERSIONS:
        raise value("FaceModelVersionIllegal",
                    "AnalyzeDenseLandmarks supports FaceModelVersion 3.0 only.")
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=max_faces,
                               rotate=imaging.flag(req.NeedRotateDetection))
    pipeline = ctx.services.faces
    shapes = []
    for face in found.faces:
        # The box first, then the contours, in the order of the API's DenseFaceShape.
        shapes.append(imaging.face_rect(face) | pipeline.dense_shape(found.image.pixels, face))
    return {"ImageWidth": found.image.width, "ImageHeight": found.image.height,
            "DenseFaceShapeSet": shapes, "FaceModelVersion": version}
