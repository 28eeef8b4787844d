"""What every image-taking action does first: load the image (Url wins over Image), find faces
with the documented defaults (:class:`openiai.services.faces.FacePipeline`), and read the
parameters every image action shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ApiError, invalid, value
from ..vision.types import DecodedImage, Face
from .registry import Context

MAX_FACE_NUM_LIMIT = 120


@dataclass
class Found:
    image: DecodedImage
    faces: list[Face]  # largest first, in the image's own coordinates


def max_face_num(raw: int | None) -> int:
    """MaxFaceNum: default 1, at most 120 (DetectFace, DetectFaceAttributes)."""
    n = 1 if raw is None else raw
    if n < 1:
        raise invalid("MaxFaceNum must be at least 1.")
    if n > MAX_FACE_NUM_LIMIT:
        raise ApiError("LimitExceeded.ErrorFaceNumExceed",
                       f"MaxFaceNum may be at most {MAX_FACE_NUM_LIMIT}.")
    return n


def quality_level(level: int | None) -> int:
    level = 0 if level is None else level
    if level not in (0, 1, 2, 3, 4):
        raise value("QualityControlIllegal", "QualityControl must be 0, 1, 2, 3 or 4.")
    return level


def flag(raw: int | None) -> bool:
    """0/1 switches such as NeedRotateDetection; other values are documented as 'not 1'."""
    return raw == 1


def find_faces(ctx: Context, image_b64: str | None, url: str | None, *, max_faces: int = 1,
               min_face_size: int | None = None, rotate: bool = False,
               retry_score_threshold: float | None = None) -> Found:
    pipeline = ctx.services.faces
    img = pipeline.load(image_b64, url)
    return Found(img, pipeline.find_faces(img, max_faces=max_faces, min_face_size=min_face_size,
                                          rotate=rotate,
                                          retry_score_threshold=retry_score_threshold))


def largest_face(ctx: Context, image_b64, url, *, rotate=False, quality: int = 0,
                 retry_score_threshold: float | None = None) -> tuple[DecodedImage, Face]:
    """The largest face, held to QualityControl ``quality``."""
    found = find_faces(ctx, image_b64, url, max_faces=1, rotate=rotate,
                       retry_score_threshold=retry_score_threshold)
    face = found.faces[0]
    ctx.services.faces.require_quality(found.image.pixels, face, quality)
    return found.image, face


def face_rect(face: Face) -> dict:
    x, y, w, h = (int(round(float(v))) for v in face.box)
    return {"X": x, "Y": y, "Width": max(w, 0), "Height": max(h, 0)}
