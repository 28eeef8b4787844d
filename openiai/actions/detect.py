"""DetectFace (AnalyzeFace is in :mod:`.landmarks`)."""

from __future__ import annotations

from ..core.errors import ApiError, invalid
from . import imaging, limits
from .registry import Context, action

ATTRIBUTES_FOR = 5  # the docs: attributes of the 5 largest faces; the rest are meaningless
QUALITY_FOR = 30  # the docs: quality of the 30 largest faces


def _empty_attributes() -> dict:
    # Returned but "meaningless" when not requested, as the docs say; the real service sends
    # zeros/false here too. Age, gender, expression, beauty, glasses, hat, mask, hair and eye
    # state are not estimated yet (README: DetectFace attributes) and stay at these values.
    return {"Gender": 0, "Age": 0, "Expression": 0, "Glass": False, "Pitch": 0, "Yaw": 0,
            "Roll": 0, "Beauty": 0, "Hat": False, "Mask": False,
            "Hair": {"Length": 0, "Bang": 0, "Color": 0}, "EyeOpen": False}


def _empty_quality() -> dict:
    return {"Score": 0, "Sharpness": 0, "Brightness": 0,
            "Completeness": {k: 0 for k in ("Eyebrow", "Eye", "Nose", "Cheek", "Mouth", "Chin")}}


def _max_faces(raw: int | None) -> int:
    n = 1 if raw is None else raw
    if n < 1:
        raise invalid("MaxFaceNum must be at least 1.")
    if n > imaging.MAX_FACE_NUM_LIMIT:
        raise ApiError("LimitExceeded.ErrorFaceNumExceed",
                       f"MaxFaceNum may be at most {imaging.MAX_FACE_NUM_LIMIT}.")
    return n


@action("DetectFace")
def detect_face(ctx: Context, req) -> dict:
    max_faces = _max_faces(req.MaxFaceNum)
    version = limits.face_model_version(req.FaceModelVersion)
    want_attrs = imaging.flag(req.NeedFaceAttributes)
    want_quality = imaging.flag(req.NeedQualityDetection)
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=max_faces,
                               min_face_size=req.MinFaceSize,
                               rotate=imaging.flag(req.NeedRotateDetection))
    pixels = found.image.pixels
    pipeline = ctx.services.faces
    infos = []
    for i, face in enumerate(found.faces):
        info = imaging.face_rect(face)
        attrs = _empty_attributes()
        if want_attrs and i < ATTRIBUTES_FOR:
            attrs["Pitch"], attrs["Yaw"], attrs["Roll"] = pipeline.head_pose(pixels, face)
        quality = _empty_quality()
        if want_quality and i < QUALITY_FOR:
            quality = pipeline.quality(pixels, face)
        info["FaceAttributesInfo"] = attrs
        info["FaceQualityInfo"] = quality
        infos.append(info)
    return {"ImageWidth": found.image.width, "ImageHeight": found.image.height,
            "FaceInfos": infos, "FaceModelVersion": version}
