"""MediaPipe's 468-point face mesh (Apache-2.0), seeded from a YuNet face.

The network (``face_landmark.onnx``, converted from MediaPipe 0.10.14's
``face_landmark.tflite``) takes a 192x192 RGB crop in [0, 1] and returns 468 x (x, y, z) in crop
pixels (z: depth relative to the face's centre, in about the same scale as x) plus a
face-presence logit. It was trained on crops built from BlazeFace boxes: square, about 1.5x
the face box, rotated so the eye line is level. We build the same kind of crop from YuNet:

- angle: the eye line of YuNet's two eye points (so any in-plane rotation is fitted upright);
- centre and side: from YuNet's five points rather than its box, in "eye-midpoint to
  mouth-midpoint" units, because YuNet's box height varies with hair and forehead and its
  five points do not. ``CROP_ALONG`` and ``CROP_SIDE`` were tuned on the 43 faces of
  ``dlib/faces/*_with_face_landmarks.xml`` together with a refit pass (see below);
- a second pass re-centres the crop on the first fit's own points (their bounding box, scaled
  by ``REFIT_SCALE``, as MediaPipe's tracking loop re-crops from the previous frame's mesh),
  which makes the result far less sensitive to the first crop.

Measured (``openiai.bench.landmarks.evaluate_landmarks``): see that module for the figures.
Points come back in image coordinates: x, y in pixels, z in the same pixel scale.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx

from ..onnx_graph import create_session
from ..types import Face
from .files import ModelFile, shipped_models

FILE = ModelFile(
    names=("face_landmark.onnx",),
    bundled=shipped_models,
    source="MediaPipe face mesh 468 points (mediapipe 0.10.14 face_landmark.tflite converted to "
           "ONNX; Apache-2.0)",
    sha256={"face_landmark.onnx":
            "2a5e1a92564ab23181b1993f7451648b4fc2ee806e8c565065a165b73dd30a26"},
)

INPUT = 192  # the network's input side, px
CROP_ALONG = 0.35  # first crop's centre: this far from the eye midpoint towards the mouth midpoint
CROP_SIDE = 3.2  # first crop's side, in eye-midpoint -> mouth-midpoint distances
REFIT_SCALE = 1.5  # second crop: the first mesh's extent (largest side) times this
N_POINTS = 468


def crop_transform(cx: float, cy: float, side: float, angle: float, size: int) -> np.ndarray:
    """2x3 affine map image -> crop: a square of ``side`` px centred at (cx, cy), rotated by
    ``angle`` radians (the face's eye-line angle), onto ``size`` x ``size`` pixels."""
    k = size / side
    ca, sa = np.cos(angle) * k, np.sin(angle) * k
    rot = np.array([[ca, sa], [-sa, ca]])
    t = np.array([size / 2, size / 2]) - rot @ np.array([cx, cy])
    return np.hstack([rot, t[:, None]])


def to_rgb01(crop_bgr: np.ndarray) -> np.ndarray:
    """BGR/grey/BGRA uint8 crop -> (1, h, w, 3) float32 RGB in [0, 1], the MediaPipe input."""
    if crop_bgr.ndim == 2:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
    elif crop_bgr.shape[2] == 4:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_BGRA2BGR)
    # OpenCV's channel swap and one float32 division into the output: the same values as
    # ``crop[..., ::-1].astype(np.float32) / 255``, 9x faster on a 192 px crop (0.03 against
    # 0.27 ms; the mesh runs two crops per face).
    rgb = cv2.cvtColor(np.ascontiguousarray(crop_bgr), cv2.COLOR_BGR2RGB)
    out = np.empty((1,) + rgb.shape, np.float32)
    np.divide(rgb, np.float32(255.0), out=out[0], dtype=np.float32)
    return out


def _first_crop(landmarks5: np.ndarray) -> tuple[float, float, float, float]:
    lm = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    eye_mid = (lm[0] + lm[1]) / 2
    mouth_mid = (lm[3] + lm[4]) / 2
    v = mouth_mid - eye_mid
    d = float(np.hypot(*v))
    if d < 1e-6:  # degenerate landmarks: fall back to the eye distance
        d = max(float(np.hypot(*(lm[1] - lm[0]))), 1.0)
    c = eye_mid + CROP_ALONG * v
    eye = lm[1] - lm[0]
    return float(c[0]), float(c[1]), CROP_SIDE * d, float(np.arctan2(eye[1], eye[0]))


def _refit_crop(pts: np.ndarray, angle: float) -> tuple[float, float, float, float]:
    """The second pass's square: the first mesh's extent (in the upright frame of ``angle``)
    times REFIT_SCALE, centred on it, at the same angle."""
    ca, sa = np.cos(-angle), np.sin(-angle)
    upright = pts[:, :2] @ np.array([[ca, sa], [-sa, ca]])  # rotate by -angle (row vectors)
    lo, hi = upright.min(0), upright.max(0)
    centre = ((lo + hi) / 2) @ np.array([[ca, -sa], [sa, ca]])
    return float(centre[0]), float(centre[1]), float(max(hi - lo)) * REFIT_SCALE, angle


class FaceMesh:
    """``get(pixels_bgr, face)`` -> (468, 3) float32 mesh points in image coordinates."""

    NAME = "face_mesh"
    FILE = FILE

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(onnx.load(str(path)), {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]  # points, presence

    def run_crops(self, crops_rgb01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 468, 3) points in crop pixels and (n,) face-presence probabilities for
        (n, 192, 192, 3) crops, one session run."""
        pts, presence = self.session.run(self.outputs, {self.input_name: crops_rgb01})
        n = len(crops_rgb01)
        prob = 1.0 / (1.0 + np.exp(-np.asarray(presence, np.float64).reshape(n)))
        return np.asarray(pts, np.float32).reshape(n, N_POINTS, 3), prob

    def run_crop(self, crop_rgb01: np.ndarray) -> tuple[np.ndarray, float]:
        """(468, 3) points in crop pixels and the face-presence probability for one crop."""
        pts, prob = self.run_crops(crop_rgb01)
        return pts[0], float(prob[0])

    def fit_many(self, pixels: np.ndarray,
                 squares: list[tuple[float, float, float, float]]) -> list[np.ndarray]:
        """Meshes for crop squares (cx, cy, side, angle), one batched run, mapped back to
        image coordinates."""
        fwds = [crop_transform(cx, cy, side, angle, INPUT) for cx, cy, side, angle in squares]
        crops = np.concatenate([to_rgb01(cv2.warpAffine(pixels, fwd, (INPUT, INPUT),
                                                        flags=cv2.INTER_LINEAR,
                                                        borderMode=cv2.BORDER_CONSTANT))
                                for fwd in fwds])
        found, _ = self.run_crops(crops)
        out = []
        for pts, fwd, (_, _, side, _) in zip(found, fwds, squares):
            rot, t = fwd[:, :2], fwd[:, 2]
            xy = np.linalg.solve(rot, (pts[:, :2] - t).T).T
            z = pts[:, 2:] * (side / INPUT)  # same scale as x and y
            out.append(np.hstack([xy, z]).astype(np.float32))
        return out

    def get_many(self, pixels: np.ndarray, faces: list[Face]) -> list[np.ndarray]:
        """:meth:`get` for several faces of one picture: each pass is one batched run."""
        if not faces:
            return []
        first = [_first_crop(face.landmarks) for face in faces]
        meshes = self.fit_many(pixels, first)
        # Second pass from the first fit, as MediaPipe's own tracking re-crops from the last
        # mesh: its extent is a steadier size than anything the detector gives.
        return self.fit_many(pixels, [_refit_crop(pts, angle)
                                      for pts, (_, _, _, angle) in zip(meshes, first)])

    def get(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        return self.get_many(pixels, [face])[0]

    def warmup(self) -> None:
        self.run_crop(np.zeros((1, INPUT, INPUT, 3), np.float32))
