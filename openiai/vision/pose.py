"""Head pose (Pitch, Yaw, Roll) from the five detector landmarks with ``cv2.solvePnP``.

Conventions. The API documents only the ranges (Pitch and Yaw in [-30, 30], Roll in
[-180, 180]), not the signs, so these follow the InspireFace test expectations that label the
pose images in ``insightface/`` (the only signed labels we have), which also match the usual
camera-facing convention:
- Pitch > 0: head raised (chin up); < 0: head lowered.
- Yaw < 0: face turned towards the picture's left (the subject's right); > 0: towards the
  picture's right.
- Roll: angle of the eye line (picture-left eye -> picture-right eye) in image coordinates,
  y down, so > 0 is a clockwise tilt on screen; an upside-down face reads about +-180.
``head_pose`` clamps Pitch and Yaw to the documented [-30, 30] and returns ints;
``head_pose_deg`` gives the unclamped floats (the quality Score uses those).

Method. Roll is taken out first: the 2-D points are rotated about the principal point by the
eye-line angle (a rotation about the optical axis, so the camera model is unchanged), which
keeps solvePnP near its upright starting guess for any in-plane angle. Then solvePnP
(iterative, starting from a frontal pose at the distance implied by the eye spacing) fits a
generic 3-D face. Camera: focal length = the image's longer side, principal point = its
centre, no distortion. Pitch/yaw/roll are read from R = Rz(roll) Ry(yaw) Rx(pitch); the
residual roll is added to the eye-line angle.

3-D model (mm; x to the picture's right, y down, z away from the camera; eye midpoint at the
origin; eyes 63 mm apart). Two calibrations, because YuNet and dlib put the nose tip and
mouth corners in different places:
- YuNet's five points: x/y = the mean frontal YuNet layout on LFW (nose 0.56 and mouth
  corners 1.0 inter-ocular distances (IOD) below the eye line, corners 0.43 IOD out). The
  nose tip's depth, 0.51 IOD in front of the eye plane, is calibrated on 1,812 LFW faces from
  how the nose tip's sideways offset grows as the projected eye distance shrinks with yaw
  (consistent to +-0.02 across yaw bins).
- the five taken from the 68 iBUG points (eye centroids, nose tip 30, mouth corners 48/54;
  calibrated on dlib's predictor, which the mesh mapping :func:`openiai.vision.landmarks.ibug68`
  is fitted to reproduce, and the label checks below still hold with the mapped points):
  x/y = their mean frontal layout on LFW (nose 0.542, corners 1.08 down and 0.452 out); nose
  depth 0.585 IOD, set so that yaw from these points matches yaw from YuNet's on 604 LFW
  faces (slope 1.01, r = 0.93).
Mouth corners sit at the eyes' depth in both. The zero of pitch is the LFW average.

Accuracy (no image here has numeric angles; see tests/test_vision_pose.py):
- with the 68 points (``landmarks68=``): the six InspireFace pose-image expectations hold
  (left_face yaw -44, right_face +38, rise_face pitch +20, lower_face -22, left_wryneck
  roll -60, right_wryneck +39); Yale frontal shots |yaw| <= 9, |roll| <= 4, pitch +6 on
  average; mirrored LFW faces agree to 5 deg in yaw, 3 in pitch, 2 in roll.
- with YuNet's five points only: yaw and roll signs hold on those images but pitch does not
  (YuNet's nose point hardly moves with pitch: rise_face reads -4); mirrored faces agree to
  13 deg in yaw, 15 in pitch. Pass the 68 points whenever pixels are at hand.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from openiai.vision.types import Face

IOD_MM = 63.0


def _model(nose_down: float, nose_depth: float, mouth_out: float, mouth_down: float) -> np.ndarray:
    """Generic 5-point face in mm from a layout in inter-ocular distances (IOD)."""
    k = IOD_MM
    return np.array(
        [
            [-0.5 * k, 0.0, 0.0],  # eye on the picture's left (subject's right)
            [0.5 * k, 0.0, 0.0],  # eye on the picture's right
            [0.0, nose_down * k, -nose_depth * k],  # nose tip, in front of the eye plane
            [-mouth_out * k, mouth_down * k, 0.0],  # mouth corner, picture's left
            [mouth_out * k, mouth_down * k, 0.0],  # mouth corner, picture's right
        ],
        dtype=np.float64,
    )


# YuNet's own points, and the same five taken from dlib's 68 (eye centroids, 30, 48, 54):
# the two detectors place the nose and mouth differently, so each gets its own calibration.
MODEL_YUNET = _model(nose_down=0.56, nose_depth=0.51, mouth_out=0.43, mouth_down=1.0)
MODEL_DLIB = _model(nose_down=0.542, nose_depth=0.585, mouth_out=0.452, mouth_down=1.08)
PITCH_YAW_LIMIT = 30


def _five(face: Face, landmarks68: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The five 2-D points to solve for and the 3-D model calibrated for their detector."""
    if landmarks68 is not None:
        p = np.asarray(landmarks68, dtype=np.float64).reshape(68, 2)
        return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]), MODEL_DLIB
    return np.asarray(face.landmarks, dtype=np.float64).reshape(5, 2), MODEL_YUNET


def _wrap180(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def head_pose_deg(face: Face, image_shape, landmarks68: np.ndarray | None = None) -> tuple[float, float, float]:
    """Unclamped (pitch, yaw, roll) in degrees; see the module docstring for the signs."""
    h, w = int(image_shape[0]), int(image_shape[1])
    pts, model = _five(face, landmarks68)
    f = float(max(h, w))
    c = np.array([w / 2.0, h / 2.0])
    eye = pts[1] - pts[0]
    roll0 = math.atan2(eye[1], eye[0])
    cr, sr = math.cos(-roll0), math.sin(-roll0)
    rot = np.array([[cr, -sr], [sr, cr]])
    upright = (pts - c) @ rot.T + c

    cam = np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1]], dtype=np.float64)
    iod_px = max(float(np.hypot(*eye)), 1e-3)
    z0 = f * IOD_MM / iod_px  # distance at which a frontal face shows this eye spacing
    eye_mid = (upright[0] + upright[1]) / 2
    tvec = np.array([[(eye_mid[0] - c[0]) * z0 / f], [(eye_mid[1] - c[1]) * z0 / f], [z0]])
    rvec = np.zeros((3, 1))
    ok, rvec, tvec = cv2.solvePnP(
        model, upright.reshape(5, 1, 2), cam, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        return 0.0, 0.0, math.degrees(roll0)
    r, _ = cv2.Rodrigues(rvec)
    pitch_raw = math.atan2(r[2, 1], r[2, 2])
    yaw_raw = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    roll_raw = math.atan2(r[1, 0], r[0, 0])
    # Model axes are camera axes (y down, z away), so raising the chin is a negative
    # rotation about x and turning to the picture's left a positive one about y.
    pitch = -math.degrees(pitch_raw)
    yaw = -math.degrees(yaw_raw)
    roll = _wrap180(math.degrees(roll0 + roll_raw))
    return pitch, yaw, roll


def head_pose(face: Face, image_shape, landmarks68: np.ndarray | None = None) -> tuple[int, int, int]:
    """(Pitch, Yaw, Roll) as the API returns them: ints, Pitch/Yaw clamped to [-30, 30]."""
    pitch, yaw, roll = head_pose_deg(face, image_shape, landmarks68)
    lim = PITCH_YAW_LIMIT

    def clamp(v: float) -> int:
        return int(max(-lim, min(lim, round(v))))

    r = int(round(roll))
    if r == -180:  # keep the documented closed range symmetric
        r = 180
    return clamp(pitch), clamp(yaw), r
