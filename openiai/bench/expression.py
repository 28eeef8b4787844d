"""Expression accuracy: mini_XCEPTION on FER2013's PublicTest faces (``attributes/fer2013_publictest``).

The 48 px grey faces are already the loose crops the model was trained on, so they go straight
to :meth:`Expression.probabilities_of_crops` (no detection: YuNet finds few faces in 48 px
crops, and FER's own crops are what the published figure is measured on); the answer is the
API's Emotion type through :func:`api_emotion`, compared with the folder's label mapped the
same way. Upstream figure: about 66 % top-1 (MODELS.md: 65.2 % measured).

    openiai eval attributes   (rows from :func:`evaluate_expression`)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..vision.models.expression import API_EMOTION_TYPE, CLASSES, api_emotion

FLOOR_TOP1 = 0.62
FOLDERS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
           "neutral": "neutral", "sad": "sad", "surprise": "surprise"}


def _row(metric: str, value: float, n: int, floor: float | None = None) -> dict:
    return {"attribute": "expression", "set": "fer2013_publictest", "metric": metric,
            "value": float(value), "floor": floor, "higher_is_better": True, "n": int(n)}


def evaluate_expression(testdata: Path, limit: int | None = None, pipeline=None) -> list[dict]:
    """Top-1 accuracy (floor 62 %) and per-class recall on FER2013 PublicTest.
    ``limit``: at most this many images per class (a quick run)."""
    from .evaluate import face_pipeline

    model = (pipeline or face_pipeline()).zoo.get("expression")
    root = Path(testdata) / "attributes" / "fer2013_publictest"
    truth, crops = [], []
    for folder, name in FOLDERS.items():
        paths = sorted((root / folder).glob("*"))[:limit]
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if img is None:
                continue
            crops.append(img)
            truth.append(API_EMOTION_TYPE[name])
    truth = np.array(truth)
    pred = []
    for i in range(0, len(crops), 256):  # batches: the evaluation's speed, not the server's
        for p in model.probabilities_of_crops(crops[i:i + 256]):
            pred.append(api_emotion(p)[0])
    pred = np.array(pred)
    rows = [_row("top1_accuracy", float(np.mean(pred == truth)), len(truth), FLOOR_TOP1)]
    for name in CLASSES:
        t = API_EMOTION_TYPE[name]
        sel = truth == t
        if sel.any():
            rows.append(_row(f"recall_{name}", float(np.mean(pred[sel] == t)), int(sel.sum())))
    return rows
