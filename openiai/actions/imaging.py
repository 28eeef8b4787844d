"""What every image-taking action does first: load the image (Url wins over Image), find
faces with the documented defaults, and check the documented QualityControl level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import ApiError, value
from ..vision.engine import get_engine
from ..vision.image import load_image
from ..vision.types import DecodedImage, Face

MIN_FACE_SIZE_DEFAULT = 34
MAX_FACE_NUM_LIMIT = 120


@dataclass
class Found:
    image: DecodedImage
    faces: list[Face]  # largest first, in the image's own coordinates


def load(ctx, image_b64: str | None, url: str | None) -> DecodedImage:
    return load_image(image_b64, url, allow_private_urls=ctx.services.settings.allow_private_urls)


def quality_level(level: int | None) -> int:
    level = 0 if level is None else level
    if level not in (0, 1, 2, 3, 4):
        raise value("QualityControlIllegal", "QualityControl must be 0, 1, 2, 3 or 4.")
    return level


def flag(raw: int | None) -> bool:
    """0/1 switches such as NeedRotateDetection; other values are documented as 'not 1'."""
    return raw == 1


def find_faces(ctx, image_b64: str | None, url: str | None, *, max_faces: int = 1,
               min_face_size: int | None = None, rotate: bool = False,
               required: bool = True) -> Found:
    img = load(ctx, image_b64, url)
    engine = get_engine()
    min_size = MIN_FACE_SIZE_DEFAULT if min_face_size is None else min_face_size
    if rotate:
        faces = engine.detect_rotated(img.pixels, min_size, max_faces).faces
    else:
        faces = engine.detect(img.pixels, min_size, max_faces)
    if not faces and required:
        if min_face_size is not None and engine.detect(img.pixels, 1, 1):
            raise ApiError("FailedOperation.FaceSizeTooSmall",
                           f"Faces were found but all are smaller than MinFaceSize={min_size}.")
        raise value("NoFaceInPhoto", "No face was found in the image.")
    return Found(img, faces)


def largest_face(ctx, image_b64, url, *, rotate=False, quality: int = 0) -> tuple[DecodedImage, Face]:
    found = find_faces(ctx, image_b64, url, max_faces=1, rotate=rotate)
    face = found.faces[0]
    require_quality(found.image.pixels, face, quality)
    return found.image, face


def require_quality(pixels: np.ndarray, face: Face, level: int) -> None:
    if level == 0:
        return
    from ..vision.quality import assess, passes

    if not passes(assess(pixels, face), level):
        raise ApiError("FailedOperation.FaceQualityNotQualified",
                       f"The face image quality does not meet QualityControl={level}.")


def face_rect(face: Face) -> dict:
    x, y, w, h = (int(round(float(v))) for v in face.box)
    return {"X": x, "Y": y, "Width": max(w, 0), "Height": max(h, 0)}


def embed_one(pixels: np.ndarray, face: Face, model_version: str) -> np.ndarray:
    return get_engine().features(pixels, [face], model_version)[0]
