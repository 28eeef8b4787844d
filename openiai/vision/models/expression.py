"""mini_XCEPTION (oarriaga/face_classification, MIT; trained on FER2013): 7 facial expressions.

Input: one grey 64x64 face, ``(x / 255 - 0.5) * 2``; output: softmax over :data:`CLASSES` in
the model's order. FER2013's faces are loose crops (forehead to chin, some background), so the
face is cut as a square about the YuNet box, :data:`LOOSE` times its longer side, converted to
grey and area-resized. The size was chosen with ``tools/train_age_gender.py --sweep`` (ROC AUC
of p(happy) against CelebA-HQ train's Smiling label, 3,562 faces): side 1.0x 0.9663, 1.1x
0.9681, 1.2x 0.9651, 1.4x 0.9433; centre moved up by 0.1 box heights: 1.0x 0.9651, 1.2x 0.9651.
Up to 1.2x the differences are small; 1.1x kept.

:meth:`Expression.probabilities_of_crops` takes ready crops of any size (FER2013's own 48 px
faces) for the evaluation; :func:`api_emotion` maps to DetectFaceAttributes' Emotion types.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx

from ..onnx_graph import create_session
from ..types import Face
from .files import ModelFile, shipped_models

FILE = ModelFile(
    names=("mini_xception.onnx",),
    bundled=shipped_models,
    source="mini_XCEPTION fer2013_mini_XCEPTION.102-0.66 (oarriaga/face_classification@b861d21b, "
           "MIT), converted to ONNX; trained on FER2013 (a research data set)",
    sha256={"mini_xception.onnx": "81b7f2c783b47de254201df93c6be6e96215b2f786170b46c39090cf6778fb11"},
)

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIZE = 64
LOOSE = 1.1  # crop side / longer side of the YuNet box (measured; see the module docstring)
UP_SHIFT = 0.0  # crop centre moved up by this fraction of the box height


def loose_crop(pixels: np.ndarray, face: Face, loose: float = LOOSE, up: float = UP_SHIFT) -> np.ndarray:
    """Grey (SIZE, SIZE) uint8 square crop about the face box; outside the image is edge-replicated."""
    x, y, w, h = (float(v) for v in face.box)
    side = max(w, h) * loose
    cx, cy = x + w / 2, y + h / 2 - up * h
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    grey = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    H, W = grey.shape
    # Pad only as much as the window leaves the image (replicate: no hard black edge).
    pad = max(0, -x0, -y0, x0 + s - W, y0 + s - H)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    window = grey[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
    interp = cv2.INTER_AREA if s > SIZE else cv2.INTER_LINEAR
    return cv2.resize(window, (SIZE, SIZE), interpolation=interp)


class Expression:
    NAME = "expression"
    FILE = FILE
    CLASSES = CLASSES

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(onnx.load(str(path)), {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name

    def probabilities(self, pixels_bgr: np.ndarray, face: Face) -> np.ndarray:
        """(7,) probabilities in :data:`CLASSES` order for one detected face."""
        return self.probabilities_of_crops([loose_crop(pixels_bgr, face)])[0]

    def probabilities_of_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, 7) for ready face crops (grey or BGR, any size; resized to 64 px)."""
        if len(crops) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        batch = []
        for c in crops:
            c = np.asarray(c, np.uint8)
            if c.ndim == 3:
                c = cv2.cvtColor(c, cv2.COLOR_BGR2GRAY)
            if c.shape != (SIZE, SIZE):
                # Upscaling (FER's 48 px) is bilinear, as the upstream demo's resize.
                interp = cv2.INTER_AREA if c.shape[0] > SIZE else cv2.INTER_LINEAR
                c = cv2.resize(c, (SIZE, SIZE), interpolation=interp)
            batch.append(c)
        x = (np.stack(batch).astype(np.float32) / 255.0 - 0.5) * 2.0
        return self.session.run(None, {self.input_name: x[:, None]})[0].astype(np.float32)

    def warmup(self) -> None:
        self.probabilities_of_crops([np.zeros((SIZE, SIZE), np.uint8)])


# DetectFaceAttributes' Emotion types (API 3.0): 0 neutral, 1 happy, 2 surprise, 3 angry,
# 4 sad, 5 disgust, 6 fear; index = the model's class index in CLASSES.
API_EMOTION_TYPE = {"neutral": 0, "happy": 1, "surprise": 2, "angry": 3, "sad": 4,
                    "disgust": 5, "fear": 6}


def api_emotion(probabilities: np.ndarray) -> tuple[int, float]:
    """(Emotion Type, probability of it) from the model's (7,) probabilities."""
    p = np.asarray(probabilities, np.float32).reshape(-1)
    k = int(np.argmax(p))
    return API_EMOTION_TYPE[CLASSES[k]], float(p[k])
