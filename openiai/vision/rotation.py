"""NeedRotateDetection: find faces in a picture that may be turned by 90, 180 or 270 degrees.

"First turn that finds anything" is not enough: YuNet reports upside-down and sideways faces as
upright ones with scores of 0.8-0.88 (and wrong landmarks), while the truly upright view scores
~0.94. So all four turns run and the one whose best face scores highest wins (0 deg on ties).
Costs 4 detector passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .types import Face

# cv2.rotate codes that turn the picture by 90/180/270 degrees clockwise.
_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass
class RotatedDetection:
    """Faces found by :func:`detect_rotated`.

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


def detect_rotated(detect: Callable[[np.ndarray], list[Face]], pixels: np.ndarray) -> RotatedDetection:
    """Run ``detect`` on the picture at each turn; faces come back in ``pixels``' coordinates."""
    h, w = pixels.shape[:2]
    best = RotatedDetection(detect(pixels), 0)
    best_score = max((f.score for f in best.faces), default=-1.0)
    for rotation, code in _ROTATE.items():
        found = detect(cv2.rotate(pixels, code))
        score = max((f.score for f in found), default=-1.0)
        if score > best_score:
            best_score = score
            best = RotatedDetection([_unrotate_face(f, rotation, w, h) for f in found], rotation)
    return best
