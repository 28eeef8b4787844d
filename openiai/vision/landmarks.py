"""AnalyzeFace's 90-point ``FaceShape`` from 68 iBUG landmarks (:mod:`openiai.vision.models.dlib68`).

Sides: in the API's own AnalyzeFace example ``LeftEye``/``LeftEyeBrow`` lie on the left of
the picture (x 114-183 of 550) and ``RightEye`` on the right, and ``FaceProfile`` runs from
the picture's left over the chin to the right. So "Left" here is the *picture's* left (the
subject's right eye, dlib 36-41), the opposite of YuNet's naming. The point orders below copy
that example's orders.

- FaceProfile (21): jaw 0-16 resampled to 21 points by arc length (ends kept).
- LeftEye / RightEye (8 each): outer corner, 3 lower-lid points (outer to inner), inner
  corner, 3 upper-lid points (inner to outer). Each lid (corner, 2 dlib points, corner) is
  resampled to 5 points by arc length and its 3 interior points kept.
- LeftEyeBrow / RightEyeBrow (8 each): dlib's 5 brow points trace the brow's upper edge.
  Order: outer end, 3 lower-edge points (outer to inner), inner end, 3 upper-edge points
  (inner to outer). Upper edge = the 5 points resampled to 5, interior 3; lower edge = the
  same shifted "down the face" (perpendicular to the eye line) by ``BROW_THICKNESS`` x the
  inter-pupil distance (0.11 in the API example); the two ends are shifted by 3/4 of that.
- Mouth (22): left corner 48, outer lower lip 59..55, right corner 54, outer upper lip
  53..49 (12 points, all dlib's), then the inner lower lip left to right and the inner upper
  lip right to left, 5 points each: the inner contour corner-to-corner (60, 67, 66, 65, 64
  and 64, 63, 62, 61, 60) resampled to 7 points by arc length, interior 5.
- Nose (13): tip 30, bridge top 27, 4 points on the straight line 27 -> 31 (the left
  side; the API example's side points are collinear too), 32, 33, 34 along the base, then
  4 points on 35 -> 27 (right side, going up).
- LeftPupil / RightPupil (1 each): centroid of that eye's 6 points (no iris search; the
  API example's two pupil points do not lie in its eyes, so it gives no guidance here).

Points are ``{"X": int, "Y": int}`` in image pixels (rounded; may fall outside the image
when the face does).
"""

from __future__ import annotations

import numpy as np

BROW_THICKNESS = 0.11  # lower brow edge offset, in inter-pupil distances


def resample(polyline: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along ``polyline`` (first and last kept)."""
    p = np.asarray(polyline, dtype=np.float64)
    seg = np.hypot(*np.diff(p, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return np.repeat(p[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], axis=1)


def _interior(polyline: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` interior points of ``polyline`` resampled to ``k + 2`` points."""
    return resample(polyline, k + 2)[1:-1]


def _lerp(a: np.ndarray, b: np.ndarray, ts) -> np.ndarray:
    return np.array([a + (b - a) * t for t in ts])


def face_shape_points(pts68: np.ndarray) -> dict[str, np.ndarray]:
    """The 90 FaceShape points as float arrays, keyed by FaceShape field name."""
    p = np.asarray(pts68, dtype=np.float64)
    lp, rp = p[36:42].mean(0), p[42:48].mean(0)  # picture-left / picture-right eye centres
    iod = max(float(np.hypot(*(rp - lp))), 1.0)
    across = (rp - lp) / iod
    down = np.array([-across[1], across[0]])  # perpendicular to the eye line, towards the mouth
    off = BROW_THICKNESS * iod * down

    def eye(outer: int, lower: list[int], inner: int, upper: list[int]) -> np.ndarray:
        lo = _interior(p[[outer, *lower, inner]], 3)
        up = _interior(p[[inner, *upper, outer]], 3)
        return np.vstack([p[outer], lo, p[inner], up])

    def brow(idx: list[int]) -> np.ndarray:  # idx from outer to inner end
        upper = _interior(p[idx], 3)  # outer -> inner
        return np.vstack([p[idx[0]] + 0.75 * off, upper + off, p[idx[-1]] + 0.75 * off, upper[::-1]])

    mouth = np.vstack(
        [
            p[[48, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49]],
            _interior(p[[60, 67, 66, 65, 64]], 5),
            _interior(p[[64, 63, 62, 61, 60]], 5),
        ]
    )
    quarters = [0.25, 0.5, 0.75, 1.0]
    left_side = _lerp(p[27], p[31], quarters)  # bridge top down to the left nostril wing
    right_side = _lerp(p[27], p[35], quarters[::-1])  # right nostril wing up to the bridge top
    nose = np.vstack([p[30], p[27], left_side, p[[32, 33, 34]], right_side])
    return {
        "FaceProfile": resample(p[0:17], 21),
        "LeftEye": eye(36, [41, 40], 39, [38, 37]),
        "RightEye": eye(45, [46, 47], 42, [43, 44]),
        "LeftEyeBrow": brow([17, 18, 19, 20, 21]),
        "RightEyeBrow": brow([26, 25, 24, 23, 22]),
        "Mouth": mouth,
        "Nose": nose,
        "LeftPupil": lp[None],
        "RightPupil": rp[None],
    }


def shape_to_json(points: dict[str, np.ndarray]) -> dict[str, list[dict[str, int]]]:
    return {k: [{"X": int(round(x)), "Y": int(round(y))} for x, y in v] for k, v in points.items()}


def face_shape(pts68: np.ndarray) -> dict[str, list[dict[str, int]]]:
    """AnalyzeFace ``FaceShape`` for one face: 90 points in the API's field names and orders."""
    return shape_to_json(face_shape_points(pts68))
