"""The dense face: MediaPipe's 468-point mesh plus the iris model's eyes, and the geometric
rules read off it.

A :class:`Mesh` is what :meth:`openiai.services.faces.FacePipeline.mesh` returns for one face:
``points`` (468, 3) in image pixels (:class:`openiai.vision.models.face_mesh.FaceMesh`) and,
per eye, the iris model's contour (71, 2) and iris (5, 2)
(:class:`openiai.vision.models.iris.IrisLandmarks`), or ``None`` when the eyes were not run.
"Left"/"right" here are the *picture's* sides, as in AnalyzeFace's FaceShape
(:mod:`openiai.vision.landmarks`): ``left_eye`` is the eye on the left of the image (the
subject's right eye, mesh corners 33 -> 133).

The rules below are plain ratios of distances, so they do not depend on the face's size or
in-plane rotation. Each says what it measures and how it was calibrated; the measured figures
are produced by :mod:`openiai.bench.landmarks` (``evaluate_eye_state``, ``evaluate_mesh_rules``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------- mesh vertex indices
# MediaPipe's canonical face-mesh topology (read from mediapipe's face_mesh_connections and
# checked by drawing them on faces here). "L" = the picture's left.
EYE_L = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
EYE_R = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
# (in both: 0-8 lower lid outer -> inner corner, 9-15 upper lid outer -> inner; the same
# order as the first 16 contour points of the iris model)
OUTER_CORNER_L, OUTER_CORNER_R = 33, 263
MOUTH_CORNER_L, MOUTH_CORNER_R = 61, 291
# Inner-lip pairs (upper, lower) across the mouth's middle third: their gap is the opening.
INNER_LIP_PAIRS = ((81, 178), (82, 87), (13, 14), (312, 317), (311, 402))
INNER_MOUTH_CORNERS = (78, 308)

# Iris-model contour: lower lid 0-8 (outer corner, 7 interior, inner corner), upper lid 9-15
# (outer to inner, no corners); upper[k] sits above lower[k + 1].
LID_LOWER = slice(1, 8)
LID_UPPER = slice(9, 16)

Eye = tuple[np.ndarray, np.ndarray]  # (contour (71, 2), iris (5, 2)), image pixels


@dataclass
class Mesh:
    points: np.ndarray  # (468, 3) float32, image pixels (z in the same scale)
    left_eye: Eye | None = None  # picture's left eye, from the iris model
    right_eye: Eye | None = None

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    def eyes(self) -> list[Eye]:
        return [e for e in (self.left_eye, self.right_eye) if e is not None]

    def eye_distance(self) -> float:
        """Outer-corner to outer-corner distance, px: the face's scale for the rules below."""
        return max(float(np.linalg.norm(self.xy[OUTER_CORNER_R] - self.xy[OUTER_CORNER_L])), 1e-6)

    def pupils(self) -> tuple[np.ndarray, np.ndarray]:
        """Picture-left and picture-right pupil centres: the iris model's iris centre when the
        eyes were run, else the centroid of the mesh's eye contour."""
        out = []
        for eye, idx in ((self.left_eye, EYE_L), (self.right_eye, EYE_R)):
            out.append(eye[1][0] if eye is not None else self.xy[list(idx)].mean(0))
        return out[0], out[1]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


# ---------------------------------------------------------------- eyes
def lid_ratio(contour: np.ndarray) -> float:
    """Eyelid opening / eye width of one iris-model contour.

    Why: the gap between the upper and lower lid, averaged over the seven point pairs across
    the eye, relative to the corner-to-corner width, is the eye aspect ratio; it is close to
    0.1 for a closed eye (lash line and lid thickness) and 0.25-0.5 for an open one, and it
    is independent of the face's size. The iris model's contour is used rather than the 468
    mesh's, because its 64x64 eye crop resolves the lids far better than the face crop.
    """
    c = np.asarray(contour, np.float64)
    width = float(np.linalg.norm(c[8] - c[0]))
    gap = float(np.linalg.norm(c[LID_UPPER] - c[LID_LOWER], axis=1).mean())
    return gap / max(width, 1e-6)


# Threshold on lid_ratio and the width of the logistic that turns it into a score.
# Measured: attributes/eye_state (503 open, 500 closed eye crops, both orientations averaged)
# has medians 0.259 open / 0.072 closed, and its own best threshold is 0.185 (balanced
# accuracy 0.997). But those open eyes are wide-open close-ups (1st percentile 0.195), while
# open eyes in whole faces read lower: 0.14-0.17 for smiling faces (obama-480p, biden), and
# at 0.185 7 % of 1,999 CelebA-HQ faces (nearly all open-eyed) would read closed; the
# InspireFace closed-eye face reads 0.04-0.05. 0.13 keeps CelebA's "closed" share at 0.9 %
# and costs the crop set 3 points (balanced accuracy 0.967).
EYE_OPEN_THRESHOLD = 0.13
EYE_OPEN_SCALE = 0.025  # ratio units per logistic unit: the crop medians map to 0.09 and 0.99
# An eye crop from the eye-state set is tighter than the model's own crop (corners at about
# 1 / 2.3 of its side): it is padded by this factor (edge pixels repeated) before the model.
EYE_CROP_PAD = 1.4


def eye_open_probability(ratio: float) -> float:
    """A monotone score in (0, 1): 0.5 at the threshold, logistic in the lid ratio. It is not
    a calibrated probability beyond that (the eye-state crops are not a population sample)."""
    return _sigmoid((ratio - EYE_OPEN_THRESHOLD) / EYE_OPEN_SCALE)


def eye_openness(mesh: Mesh) -> tuple[bool, float] | None:
    """(eyes open?, probability-like score) from both eyes' lid ratios, or None when the iris
    model was not run. The eyes are averaged: one eye closed alone (a wink) is rare, and the
    average halves the noise of a small eye."""
    eyes = mesh.eyes()
    if not eyes:
        return None
    ratio = float(np.mean([lid_ratio(c) for c, _ in eyes]))
    p = eye_open_probability(ratio)
    return p >= 0.5, p


def eye_height(mesh: Mesh) -> float | None:
    """Mean lid opening of both eyes over the outer-corner distance (the face's width scale)."""
    eyes = mesh.eyes()
    if not eyes:
        return None
    gaps = [float(np.linalg.norm(c[LID_UPPER] - c[LID_LOWER], axis=1).mean()) for c, _ in eyes]
    return float(np.mean(gaps)) / mesh.eye_distance()


# Eye size classes over eye_height: below SMALL -> 0 (small), above BIG -> 2 (big), else 1.
# Why this measure: "narrow" eyes in CelebA's Narrow_Eyes label are mostly eyes with a small
# lid opening relative to the face, not short eyes; eye_height separated Narrow_Eyes better
# than the opening relative to the eye's own width (see bench.landmarks.evaluate_mesh_rules).
# Thresholds, on the first 2,000 CelebA-HQ images (1,999 faces found): SMALL is the
# threshold with the best balanced accuracy for Narrow_Eyes (0.75; two-fold 0.74: the label
# is subjective, so this is a weak rule), BIG the 85th percentile. About 30 % / 54 % / 16 %
# of those faces fall into small / normal / big.
EYE_SIZE_SMALL = 0.060
EYE_SIZE_BIG = 0.075


def eye_size(mesh: Mesh) -> int | None:
    """0 small, 1 normal, 2 big (relative lid opening; see the thresholds' comment)."""
    h = eye_height(mesh)
    if h is None:
        return None
    return 0 if h < EYE_SIZE_SMALL else 2 if h > EYE_SIZE_BIG else 1


EYE_SIZE_SCALE = 0.005  # eye_height units per logistic unit of the eye-size score


def eye_size_item(mesh: Mesh) -> tuple[int, float] | None:
    """(class, score): the score is 0.5 at the nearest class boundary and rises with the
    distance from it (logistic, EYE_SIZE_SCALE); monotone, not a calibrated probability."""
    h = eye_height(mesh)
    if h is None:
        return None
    size = 0 if h < EYE_SIZE_SMALL else 2 if h > EYE_SIZE_BIG else 1
    margin = min(abs(h - EYE_SIZE_SMALL), abs(h - EYE_SIZE_BIG))
    return size, _sigmoid(margin / EYE_SIZE_SCALE)


# ---------------------------------------------------------------- mouth
def mouth_ratio(mesh: Mesh) -> float:
    """Inner-lip gap / mouth width: the mean distance between the upper and lower inner lip
    over the mouth's middle (five vertex pairs), over the corner-to-corner width. It is 0 for
    closed lips (the mesh puts the inner contours on top of each other) and grows with the
    opening, whatever the face's size."""
    p = mesh.xy
    gap = float(np.mean([np.linalg.norm(p[a] - p[b]) for a, b in INNER_LIP_PAIRS]))
    width = float(np.linalg.norm(p[MOUTH_CORNER_R] - p[MOUTH_CORNER_L]))
    return gap / max(width, 1e-6)


# Threshold on mouth_ratio: the best balanced accuracy against CelebA-HQ's
# Mouth_Slightly_Open on the first 2,000 images (0.919; two-fold, threshold chosen on one half
# and scored on the other, 0.917). Medians: 0.150 open, 0.036 closed.
MOUTH_OPEN_THRESHOLD = 0.079
MOUTH_OPEN_SCALE = 0.02


def mouth_open(mesh: Mesh) -> tuple[bool, float]:
    """(mouth open?, monotone score in (0, 1), 0.5 at the threshold)."""
    p = _sigmoid((mouth_ratio(mesh) - MOUTH_OPEN_THRESHOLD) / MOUTH_OPEN_SCALE)
    return p >= 0.5, p


UPPER_LIP_MID, LOWER_LIP_MID = 13, 14  # inner lips at the mouth's centre line


def mouth_shape(mesh: Mesh) -> np.ndarray:
    """(3,) the mouth's geometry for the smile / mouth-open head (:mod:`openiai.vision.mouth`):
    the opening (:func:`mouth_ratio`), the mouth's width over the outer-eye-corner distance (a
    smile widens the mouth), and how far the corners sit above the lips' centre, over the eye
    distance, measured across the eye line so an in-plane tilt does not count (a smile lifts
    the corners)."""
    p = mesh.xy.astype(np.float64)
    d = mesh.eye_distance()
    across = p[OUTER_CORNER_R] - p[OUTER_CORNER_L]
    across /= max(float(np.linalg.norm(across)), 1e-6)
    down = np.array([-across[1], across[0]])  # image y grows downwards: "down the face"
    centre = (p[UPPER_LIP_MID] + p[LOWER_LIP_MID]) / 2
    corners = (p[MOUTH_CORNER_L] + p[MOUTH_CORNER_R]) / 2
    width = float(np.linalg.norm(p[MOUTH_CORNER_R] - p[MOUTH_CORNER_L])) / d
    lift = float((centre - corners) @ down) / d
    return np.array([mouth_ratio(mesh), width, lift], np.float32)
