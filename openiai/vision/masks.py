"""Is a face masked: the mask SSD's answer, optionally combined with a head over the appearance
vector (tools/train_age_gender.py --mask; ``vision/trained/mask.json`` says which is shipped and
why). The server's pipeline and the evaluation (:mod:`openiai.bench.masks`) both call these.
"""

from __future__ import annotations

import numpy as np

from .heads import LinearHead, logit

HEADS = "mask"


def mask_features(ssd_p: np.ndarray, appearance: np.ndarray) -> np.ndarray:
    """(n, 1 + A): the SSD's logit of p(mask), the appearance vector."""
    p = np.asarray(ssd_p, np.float32).reshape(-1)
    a = np.asarray(appearance, np.float32).reshape(len(p), -1)
    return np.concatenate([logit(p)[:, None], a], axis=1)


def p_masks(ssd_p: np.ndarray, appearance: np.ndarray, heads: dict[str, LinearHead] | None) -> np.ndarray:
    """(n,) p(mask): the head's answer when a head is given, else the SSD's own."""
    if heads is None or "mask" not in heads:
        return np.asarray(ssd_p, np.float32).reshape(-1)
    return heads["mask"](mask_features(ssd_p, appearance))


def p_mask(ssd_p: float, appearance: np.ndarray, heads: dict[str, LinearHead] | None) -> float:
    return float(p_masks(np.array([ssd_p]), appearance, heads)[0])
