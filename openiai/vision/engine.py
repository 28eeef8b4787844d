"""The face engine the actions call: detect -> align -> embed, one shared instance per process.

Models load lazily on first use (thread-safe) so importing the server stays cheap; the
onnxruntime sessions are safe to call from several threads at once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from openiai.core import timing
from openiai.vision import align as _align
from openiai.vision import models
from openiai.vision.detector import DEFAULT_SCORE_THRESHOLD, YuNet
from openiai.vision.embedder import SFace
from openiai.vision.types import Face

# cv2.rotate codes that turn the picture by 90/180/270 degrees clockwise.
_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass
class RotatedDetection:
    """Faces found by :meth:`FaceEngine.detect_rotated`.

    ``faces`` are in the ORIGINAL image's coordinates (box = the axis-aligned hull of the box
    found in the turned picture; landmarks mapped point by point, so ``align`` on the original
    pixels still yields an upright crop). ``rotation`` is how far the picture had to be turned
    clockwise (0, 90, 180 or 270) for the faces to be upright.
    """

    faces: list[Face]
    rotation: int


def _unrotate_points(pts: np.ndarray, rotation: int, orig_w: int, orig_h: int) -> np.ndarray:
    """Map (x, y) points of the picture turned `rotation` deg clockwise back to the original."""
    x, y = pts[..., 0], pts[..., 1]
    if rotation == 90:  # turned (x, y) = (H - y, x)
        ox, oy = y, orig_h - x
    elif rotation == 180:
        ox, oy = orig_w - x, orig_h - y
    elif rotation == 270:  # turned (x, y) = (y, W - x)
        ox, oy = orig_w - y, x
    else:
        ox, oy = x, y
    return np.stack([ox, oy], axis=-1).astype(np.float32)


def _unrotate_face(face: Face, rotation: int, orig_w: int, orig_h: int) -> Face:
    x, y, w, h = (float(v) for v in face.box)
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], np.float32)
    c = _unrotate_points(corners, rotation, orig_w, orig_h)
    x0, y0 = c.min(axis=0)
    x1, y1 = c.max(axis=0)
    return Face(
        box=np.array([x0, y0, x1 - x0, y1 - y0], np.float32),
        score=face.score,
        landmarks=_unrotate_points(face.landmarks, rotation, orig_w, orig_h),
    )


def inference_slots() -> int:
    """Model runs allowed at once: one per core (OPENIAI_INFERENCE_SLOTS overrides).

    Each onnxruntime session runs on OPENIAI_ORT_THREADS threads (1 by default), so with one
    run per core concurrent requests queue here instead of thrashing the cores' caches: on 2
    cores, 4 unbounded concurrent embeddings took 119 ms each against 17 ms alone.
    """
    value = os.environ.get("OPENIAI_INFERENCE_SLOTS", "")
    return int(value) if value.isdigit() and int(value) > 0 else max(1, os.cpu_count() or 1)


class FaceEngine:
    def __init__(self) -> None:
        self._detector = models.LazyModel(YuNet)
        self._recognizers: dict[str, models.LazyModel] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(inference_slots())

    @property
    def detector(self) -> YuNet:
        return self._detector.get()

    def recognizer(self, model_version: str = models.DEFAULT_MODEL_VERSION) -> SFace:
        spec = models.recognizer_for(model_version)
        with self._lock:
            lazy = self._recognizers.get(spec.name)
            if lazy is None:
                # Versions that share a network share one session.
                lazy = self._recognizers[spec.name] = models.LazyModel(SFace)
        return lazy.get()

    def loaded(self, model_version: str = models.DEFAULT_MODEL_VERSION) -> bool:
        """Whether the detector and `model_version`'s recognizer are loaded (no loading here)."""
        lazy = self._recognizers.get(models.recognizer_for(model_version).name)
        return self._detector.loaded and lazy is not None and lazy.loaded

    def detect(
        self,
        pixels: np.ndarray,
        min_face_size: int = 34,
        max_faces: int = 1,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> list[Face]:
        detector = self.detector
        with self._slots, timing.stage("detect"):
            return detector.detect(pixels, min_face_size, max_faces, score_threshold)

    def detect_rotated(
        self,
        pixels: np.ndarray,
        min_face_size: int = 34,
        max_faces: int = 1,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> RotatedDetection:
        """NeedRotateDetection: detect at 0/90/180/270 deg and keep the most confident turn.

        "First turn that finds anything" is not enough: YuNet reports upside-down and sideways
        faces as upright ones with scores of 0.8-0.88 (and wrong landmarks), while the truly
        upright view scores ~0.94. So all four turns run and the one whose best face scores
        highest wins (0 deg on ties). Costs 4 detector passes.
        """
        detector = self.detector
        # One slot and one stage for all four turns (not detect() x4).
        with self._slots, timing.stage("detect"):
            return self._detect_rotated(detector, pixels, min_face_size, max_faces, score_threshold)

    @staticmethod
    def _detect_rotated(detector, pixels, min_face_size, max_faces,
                        score_threshold) -> RotatedDetection:
        detect = detector.detect
        h, w = pixels.shape[:2]
        best = RotatedDetection(detect(pixels, min_face_size, max_faces, score_threshold), 0)
        best_score = max((f.score for f in best.faces), default=-1.0)
        for rotation, code in _ROTATE.items():
            found = detect(cv2.rotate(pixels, code), min_face_size, max_faces, score_threshold)
            score = max((f.score for f in found), default=-1.0)
            if score > best_score:
                best_score = score
                best = RotatedDetection([_unrotate_face(f, rotation, w, h) for f in found], rotation)
        return best

    # Alignment is timed as part of the "embed" stage: it only prepares the recognizer's input.
    def align(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        with timing.stage("embed"):
            return _align.align(pixels, face)

    def embed(self, crops: list[np.ndarray], model_version: str = models.DEFAULT_MODEL_VERSION) -> np.ndarray:
        recognizer = self.recognizer(model_version)  # loading happens outside the slot
        with self._slots, timing.stage("embed"):
            return recognizer.embed(crops)

    def features(
        self, pixels: np.ndarray, faces: list[Face], model_version: str = models.DEFAULT_MODEL_VERSION
    ) -> np.ndarray:
        """(n, 128) unit embeddings of `faces` in `pixels`, one batched model call."""
        return self.embed([self.align(pixels, f) for f in faces], model_version)

    def warmup(self) -> None:
        dummy = np.zeros((128, 128, 3), np.uint8)
        self.detect(dummy)
        self.embed([np.zeros((112, 112, 3), np.uint8)])


_engine: FaceEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> FaceEngine:
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = FaceEngine()
    return _engine
