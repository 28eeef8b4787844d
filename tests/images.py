"""Reading test images from OPENIAI_TESTDATA and encoding them for requests."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from conftest import TESTDATA

LFW = TESTDATA / "lfw" / "images"


def b64(path: Path | str) -> str:
    return base64.b64encode(Path(TESTDATA / path).read_bytes()).decode("ascii")


def lfw(name: str, number: int = 1) -> str:
    return b64(LFW / name / f"{name}_{number:04d}.jpg")


def encode_pixels(pixels, fmt: str = "JPEG", **save_kw) -> str:
    """Base64 of a numpy RGB/BGR array saved with Pillow in ``fmt``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **save_kw)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def load_bgr(rel: str):
    """A test image as OpenCV BGR pixels."""
    import cv2

    img = cv2.imread(str(TESTDATA / rel), cv2.IMREAD_COLOR)
    assert img is not None, rel
    return img


def detect_all(pixels):
    """Every face the engine finds, with the permissive settings the label checks use."""
    from openiai.vision.engine import get_engine

    return list(get_engine().detect(pixels, min_face_size=16, max_faces=100, score_threshold=0.5))
