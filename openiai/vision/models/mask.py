"""AIZOOTech FaceMaskDetection SSD (MIT; trained on WIDER Face + MAFA): is the face masked.

The network is a face detector with two classes (mask, no mask). It is run on a square crop
about the YuNet box (:data:`CROP` times the box's longer side, so the face fills a large part of
its 260 px input, as in the close-ups it was trained on), not on the whole photo: each face gets its own answer, and small faces
in large photos stay large enough. The anchors and box decoding follow MODELS.md; the answer is
the mask share of the two class scores of the most confident decoded box that overlaps the
YuNet box (IoU >= :data:`MIN_IOU`), or of the best-overlapping box if none does.

Crop chosen on the train split of ``attributes/mask`` (``tools/train_age_gender.py --sweep``,
SSD alone, balanced accuracy at 0.5 / ROC AUC): 1.2x 0.928 / 0.987, 1.6x 0.977 / 0.995,
2.0x 0.979 / 0.996, 2.6x 0.959 / 0.993. On the test split's detected faces the SSD alone
reaches 0.960 balanced accuracy, short of the 0.97 floor; the shipped head over its logit and the
appearance vector (:mod:`openiai.vision.masks`) reaches 0.988.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx

from ..onnx_graph import create_session
from ..types import Face
from .files import ModelFile, shipped_models

FILE = ModelFile(
    names=("face_mask_detection.onnx",),
    bundled=shipped_models,
    source="AIZOOTech FaceMaskDetection@256dc65f face_mask_detection.tflite (MIT), converted to "
           "ONNX; trained on WIDER Face + MAFA",
    sha256={"face_mask_detection.onnx":
            "48434ea994d9a9db5f315945c985153aa71b3d3eb462c045cce44866d5057084"},
)

INPUT = 260
FEATURE_MAPS = (33, 17, 9, 5, 3)
ANCHOR_SIZES = ((0.04, 0.056), (0.08, 0.11), (0.16, 0.22), (0.32, 0.45), (0.64, 0.72))
ANCHOR_RATIOS = (1.0, 0.62, 0.42)
VARIANCES = np.array([0.1, 0.1, 0.2, 0.2], np.float32)
CROP = 2.0  # crop side / longer side of the YuNet box (measured, see the module docstring)
MIN_IOU = 0.3


def anchors() -> np.ndarray:
    """(5972, 4) anchors [cx, cy, w, h] in unit input coordinates, in the network's order:
    per feature map, cells row by row, per cell both sizes at ratio 1, then the first size at
    the other ratios."""
    out = []
    for fm, sizes in zip(FEATURE_MAPS, ANCHOR_SIZES):
        shapes = [(s * np.sqrt(ANCHOR_RATIOS[0]), s / np.sqrt(ANCHOR_RATIOS[0])) for s in sizes]
        shapes += [(sizes[0] * np.sqrt(r), sizes[0] / np.sqrt(r)) for r in ANCHOR_RATIOS[1:]]
        centres = (np.arange(fm) + 0.5) / fm
        for cy in centres:
            for cx in centres:
                out.extend((cx, cy, w, h) for w, h in shapes)
    return np.array(out, np.float32)


def decode(deltas: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """(n, 4) SSD deltas -> boxes [x0, y0, x1, y1] in unit input coordinates."""
    d = deltas * VARIANCES
    cx = d[:, 0] * anchor[:, 2] + anchor[:, 0]
    cy = d[:, 1] * anchor[:, 3] + anchor[:, 1]
    w = np.exp(d[:, 2]) * anchor[:, 2]
    h = np.exp(d[:, 3]) * anchor[:, 3]
    return np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    inter = iw * ih
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + (box[2] - box[0]) * (box[3] - box[1])
    return inter / np.maximum(area - inter, 1e-9)


class MaskDetector:
    NAME = "mask"
    FILE = FILE

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(onnx.load(str(path)), {}, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.anchors = anchors()

    def crop(self, pixels_bgr: np.ndarray, face: Face, crop: float = CROP) -> tuple[np.ndarray, np.ndarray]:
        """(260x260x3 RGB float input, the face box in unit input coordinates)."""
        x, y, w, h = (float(v) for v in face.box)
        side = max(w, h) * crop
        x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
        k = INPUT / side
        m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]])
        # A face near the border gets black around it, like a photo's own edge.
        if k < 0.5:  # downscaling a lot: area-average first so the crop does not alias
            small = cv2.resize(pixels_bgr, None, fx=2 * k, fy=2 * k, interpolation=cv2.INTER_AREA)
            m = np.array([[0.5, 0, -x0 * k], [0, 0.5, -y0 * k]])
            img = cv2.warpAffine(small, m, (INPUT, INPUT), flags=cv2.INTER_LINEAR)
        else:
            img = cv2.warpAffine(pixels_bgr, m, (INPUT, INPUT), flags=cv2.INTER_LINEAR)
        rgb = img[:, :, ::-1].astype(np.float32) / 255.0
        box = np.array([x - x0, y - y0, x - x0 + w, y - y0 + h], np.float32) / side
        return rgb, box

    def p_mask(self, pixels_bgr: np.ndarray, face: Face, crop: float = CROP) -> float:
        """Probability that the face wears a mask (mask share of the matched box's scores)."""
        rgb, face_box = self.crop(pixels_bgr, face, crop)
        loc, cls = self.session.run(None, {self.input_name: rgb[None]})
        boxes = decode(loc[0], self.anchors)
        scores = cls[0]
        iou = _iou(boxes, face_box)
        near = np.nonzero(iou >= MIN_IOU)[0]
        best = near[np.argmax(scores[near].max(axis=1))] if near.size else int(np.argmax(iou))
        mask, no_mask = (float(v) for v in scores[best])
        return mask / max(mask + no_mask, 1e-9)

    def warmup(self) -> None:
        self.session.run(None, {self.input_name: np.zeros((1, INPUT, INPUT, 3), np.float32)})
