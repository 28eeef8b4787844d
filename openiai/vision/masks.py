"""Is a face masked: a logistic head over SFace's appearance vector, trained on the mask set
(``tools/train_age_gender.py --mask``; ``vision/trained/mask.json`` has its figures and the
face-mask SSD's beside it, which it matches without the SSD's cost). The server's pipeline and
the evaluation (:mod:`openiai.bench.masks`) both call these.
"""

from __future__ import annotations

import numpy as np

from .heads import LinearHead

HEADS = "mask"


def p_masks(appearance: np.ndarray, heads: dict[str, LinearHead]) -> np.ndarray:
    """(n,) p(mask) from (n, A) appearance vectors."""
    return heads["mask"](np.atleast_2d(np.asarray(appearance, np.float32)))


def p_mask(appearance: np.ndarray, heads: dict[str, LinearHead]) -> float:
    return float(p_masks(np.asarray(appearance).reshape(1, -1), heads)[0])
