"""DetectFace (AnalyzeFace is in :mod:`.landmarks`)."""

from __future__ import annotations

from ..core.errors import invalid
from . import attributes, imaging, limits
from .registry import Context, action

QUALITY_FOR = 30  # the docs: quality of the 30 largest faces


def _empty_quality() -> dict:
    return {"Score": 0, "Sharpness": 0, "Brightness": 0,
            "Completeness": {k: 0 for k in ("Eyebrow", "Eye", "Nose", "Cheek", "Mouth", "Chin")}}


@action("DetectFace")
def detect_face(ctx: Context, req) -> dict:
    max_faces = imaging.max_face_num(req.MaxFaceNum)
    version = limits.face_model_version(req.FaceModelVersion)
    want_attrs = imaging.flag(req.NeedFaceAttributes)
    want_quality = imaging.flag(req.NeedQualityDetection)
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=max_faces,
                               min_face_size=req.MinFaceSize,
                               rotate=imaging.flag(req.NeedRotateDetection))
    pixels = found.image.pixels
    pipeline = ctx.services.faces
    attrs_of = (attributes.detect_face_attributes_for(ctx, pixels, found.faces) if want_attrs
                else [attributes.empty_face_attributes() for _ in found.faces])
    infos = []
    for i, (face, attrs) in enumerate(zip(found.faces, attrs_of)):
        info = imaging.face_rect(face)
        quality = _empty_quality()
        if want_quality and i < QUALITY_FOR:
            quality = pipeline.quality(pixels, face)
        info["FaceAttributesInfo"] = attrs
        info["FaceQualityInfo"] = quality
        infos.append(info)
    return {"ImageWidth": found.image.width, "ImageHeight": found.image.height,
            "FaceInfos": infos, "FaceModelVersion": version}
