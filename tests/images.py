"""Reading test images from OPENIAI_TESTDATA and encoding them for requests."""

from __future__ import annotations

import base64
import functools
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


@functools.cache
def zoo():
    """One model zoo for the vision label tests (the bundled model files)."""
    from openiai.vision.models import ModelZoo

    return ModelZoo()


@functools.cache
def pipeline():
    """A face pipeline as the server builds it (for tests that need detect/align/embed)."""
    from openiai.core.settings import Settings
    from openiai.services.faces import FacePipeline

    return FacePipeline.from_settings(Settings.from_env())


def detect_all(pixels):
    """Every face the detector finds, with the permissive settings the label checks use."""
    return list(zoo().get("yunet").detect(pixels, 16, 100, 0.5))


def mesh(pixels, face):
    """The 468-point mesh of one detected face."""
    return zoo().get("face_mesh").get(pixels, face)


def landmarks68(pixels, face):
    """The 68 iBUG points for one detected face, mapped from the mesh."""
    from openiai.vision.landmarks import ibug68

    return ibug68(mesh(pixels, face))
