"""MediaPipe's iris landmark model (Apache-2.0): eyelid/brow contour and iris of one eye.

The network (``iris_landmark.onnx``, converted from MediaPipe 0.10.14's
``iris_landmark.tflite``) takes a 64x64 RGB eye crop in [0, 1] and returns 71 x (x, y, z)
contour points and 5 x (x, y, z) iris points (centre first, then four on the iris edge), in
crop pixels. It expects the eye on the picture's left (mesh corners 33 -> 133, outer corner
on the left); the other eye is mirrored in and out. The crop is the one MediaPipe builds: a
square of ``CROP_SCALE`` x the eye-corner distance, centred between the corners, rotated so
the corner line is level.

The 71 contour points, in MediaPipe's order: 0-8 the lower lid from the outer to the inner
corner, 9-15 the upper lid from outer to inner (corners excluded), then four "halo" rings
around the eye of which the last ones trace the brow (see :mod:`openiai.vision.mesh`).
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
from onnx import numpy_helper

from ..onnx_graph import create_session
from .face_mesh import crop_transform, to_rgb01
from .files import ModelFile, shipped_models

FILE = ModelFile(
    names=("iris_landmark.onnx",),
    bundled=shipped_models,
    source="MediaPipe iris landmarks (mediapipe 0.10.14 iris_landmark.tflite converted to ONNX; "
           "Apache-2.0)",
    sha256={"iris_landmark.onnx":
            "0a6d442e28e4e4ce4c01a5e2ee2afa5716975dd7d07329d879737779c0149d54"},
)

INPUT = 64
CROP_SCALE = 2.3  # eye crop side, in eye-corner distances (MediaPipe's own ROI)
N_CONTOUR = 71
N_IRIS = 5
# Eye corners in the 468-point mesh: (outer, inner) of the eye on the picture's left and right.
PICTURE_LEFT_CORNERS = (33, 133)
PICTURE_RIGHT_CORNERS = (263, 362)


def _batchable(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converted graph reshapes its two outputs to a fixed batch of 1 ([1, 213], [1, 15]);
    a leading -1 lets one run take both eyes."""
    shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    for t in model.graph.initializer:
        if t.name in shapes:
            a = numpy_helper.to_array(t)
            if a.ndim == 1 and a.size == 2 and a[0] == 1:
                t.CopyFrom(numpy_helper.from_array(np.array([-1, a[1]], a.dtype), t.name))
    return model


class IrisLandmarks:
    """``get(pixels, mesh)`` -> per eye (contour (71, 2), iris (5, 2)) in image coordinates;
    ``get_crop(eye_crop)`` for an eye crop that is already the whole input."""

    NAME = "iris"
    FILE = FILE

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(_batchable(onnx.load(str(path))), {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]  # contour, iris

    def run_batch(self, crops_rgb01: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per crop: (71, 2) contour and (5, 2) iris in the crop's pixels, for (n, 64, 64, 3)
        RGB crops, one session run."""
        contour, iris = self.session.run(self.outputs, {self.input_name: crops_rgb01})
        contour = np.asarray(contour, np.float32).reshape(-1, N_CONTOUR, 3)[:, :, :2]
        iris = np.asarray(iris, np.float32).reshape(-1, N_IRIS, 3)[:, :, :2]
        return [(c.copy(), i.copy()) for c, i in zip(contour, iris)]

    def run(self, crop_rgb01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(71, 2) contour and (5, 2) iris in the crop's pixels, for one 64x64 RGB crop."""
        return self.run_batch(crop_rgb01)[0]

    @staticmethod
    def eye_crop(pixels: np.ndarray, outer: np.ndarray, inner: np.ndarray,
                 mirror: bool) -> tuple[np.ndarray, np.ndarray]:
        """The model's (1, 64, 64, 3) input for one eye from its two corners (image
        coordinates) and the 2x3 image -> crop map; ``mirror`` for the eye on the picture's
        right, which the model only knows mirrored (the crop is then flipped)."""
        outer, inner = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
        centre = (outer + inner) / 2
        d = inner - outer
        # The crop's x axis runs outer -> inner corner; for the picture-right eye that axis
        # points left, so flipping the crop afterwards is exactly the mirror image.
        angle = float(np.arctan2(d[1], d[0]))
        side = CROP_SCALE * max(float(np.hypot(*d)), 1.0)
        if mirror:
            angle = float(np.arctan2(-d[1], -d[0]))  # inner -> outer runs left to right
        fwd = crop_transform(float(centre[0]), float(centre[1]), side, angle, INPUT)
        crop = cv2.warpAffine(pixels, fwd, (INPUT, INPUT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        if mirror:
            crop = crop[:, ::-1]
        return to_rgb01(np.ascontiguousarray(crop)), fwd

    @staticmethod
    def to_image(points: tuple[np.ndarray, np.ndarray], fwd: np.ndarray,
                 mirror: bool) -> tuple[np.ndarray, np.ndarray]:
        """One eye's (contour, iris) from crop pixels back to image coordinates."""
        contour, iris = (p.copy() for p in points)
        if mirror:  # back to the unflipped crop's pixels
            contour[:, 0] = INPUT - contour[:, 0]
            iris[:, 0] = INPUT - iris[:, 0]
        rot, t = fwd[:, :2], fwd[:, 2]

        def back(p: np.ndarray) -> np.ndarray:
            return np.linalg.solve(rot, (p - t).T).T.astype(np.float32)

        return back(contour), back(iris)

    def get_many(self, pixels: np.ndarray,
                 meshes: list[np.ndarray]) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Both eyes of each 468-point mesh of one picture, ``{"left": ..., "right": ...}`` by
        picture side, all eyes in one session run (batched crops cost less than single runs)."""
        if not meshes:
            return []
        sides = (("left", PICTURE_LEFT_CORNERS, False), ("right", PICTURE_RIGHT_CORNERS, True))
        crops = [self.eye_crop(pixels, m[a, :2], m[b, :2], mirror)
                 for m in (np.asarray(x) for x in meshes) for _, (a, b), mirror in sides]
        found = self.run_batch(np.concatenate([c for c, _ in crops]))
        out = []
        for k in range(len(meshes)):
            pairs = zip(sides, crops[2 * k:2 * k + 2], found[2 * k:2 * k + 2])
            out.append({name: self.to_image(pts, fwd, mirror)
                        for (name, _, mirror), (_, fwd), pts in pairs})
        return out

    def get(self, pixels: np.ndarray, mesh: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Both eyes of a 468-point mesh: ``{"left": ..., "right": ...}`` by picture side,
        in one session run of batch 2."""
        return self.get_many(pixels, [mesh])[0]

    def get_crop(self, eye_bgr: np.ndarray, mirror: bool = False,
                 pad: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Contour and iris for an eye crop (points in the crop's own pixels). The crop is
        centred on a square ``pad`` x its longer side (edge pixels repeated: a tight crop
        needs room around the eye, the model saw the corners at 1 / 2.3 of its input) and
        resized to 64x64. ``mirror``: flip it first (an eye on the picture's right)."""
        h, w = eye_bgr.shape[:2]
        img = eye_bgr[:, ::-1] if mirror else eye_bgr
        side = int(round(max(h, w) * max(pad, 1.0)))
        top, left = (side - h) // 2, (side - w) // 2
        img = cv2.copyMakeBorder(np.ascontiguousarray(img), top, side - h - top, left,
                                 side - w - left, cv2.BORDER_REPLICATE)
        crop = cv2.resize(img, (INPUT, INPUT), interpolation=cv2.INTER_AREA)
        contour, iris = self.run(to_rgb01(crop))
        contour = contour * (side / INPUT) - np.array([left, top], np.float32)
        iris = iris * (side / INPUT) - np.array([left, top], np.float32)
        if mirror:
            contour[:, 0] = w - contour[:, 0]
            iris[:, 0] = w - iris[:, 0]
        return contour, iris

    def warmup(self) -> None:
        self.run(np.zeros((1, INPUT, INPUT, 3), np.float32))
