"""Mask or not on the test split of ``attributes/mask`` (with_mask / without_mask), through the
server's path: YuNet, then :meth:`AttributeEstimator.outputs` and
:func:`openiai.vision.masks.p_masks` (the shipped mask head over the appearance vector).

A face YuNet misses gets no answer through the API, so balanced accuracy is reported twice:
over detected faces only (floor 0.97), and counting every missed face as a wrong answer. The
face-mask SSD (no longer in the server's path) is reported beside it for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..vision import masks
from . import attribute_data as ad


def _row(metric, value, n, floor=None, higher=True) -> dict:
    return {"attribute": "mask", "set": "mask_test", "metric": metric, "value": float(value),
            "floor": floor, "higher_is_better": higher, "n": int(n)}


def evaluate_masks(testdata: Path, limit: int | None = None, pipeline=None,
                   cache: Path | None = None) -> list[dict]:
    from ..services.attributes import AttributeEstimator
    from .evaluate import face_pipeline

    pipe = pipeline or face_pipeline()
    heads = AttributeEstimator(pipe).heads(masks.HEADS)
    items = [i for i in ad.mask_set(testdata) if not i.train]
    if limit:  # both classes in a quick run
        items = [i for i in items if i.label == 1][:limit // 2] + [i for i in items if i.label == 0][:limit - limit // 2]
    d = ad.outputs(pipe, items, ("mask",), cache and Path(cache) / f"eval_mask_{len(items)}.npz")
    y = np.array([i.label for i in items]).astype(bool)
    ok = d["found"].astype(bool)
    p = masks.p_masks(d["appearance"], heads)

    def bal(pred_ok: np.ndarray, sel: np.ndarray) -> float:
        # pred_ok: answer correct (a missed face counts as wrong when it is in sel)
        return float((pred_ok[sel & y].mean() + pred_ok[sel & ~y].mean()) / 2)

    correct = ((p >= 0.5) == y) & ok
    ssd_correct = ((d["mask_ssd"] >= 0.5) == y) & ok
    everything = np.ones_like(ok)
    rows = [
        _row("balanced_accuracy_detected", bal(correct, ok), ok.sum(), 0.97),
        _row("balanced_accuracy_misses_wrong", bal(correct, everything), len(items)),
        _row("yunet_miss_rate_with_mask", 1 - ok[y].mean(), y.sum(), None, False),
        _row("yunet_miss_rate_without_mask", 1 - ok[~y].mean(), (~y).sum(), None, False),
        _row("api_rejected_images", d["api_rejected"].mean(), len(items), None, False),
        _row("balanced_accuracy_detected_ssd_alone", bal(ssd_correct, ok), ok.sum()),
        _row("balanced_accuracy_misses_wrong_ssd_alone", bal(ssd_correct, everything), len(items)),
    ]
    return rows
