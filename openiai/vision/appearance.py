"""Face attributes from SFace's appearance vector: the shipped ``appearance`` heads, applied.

The heads (:mod:`openiai.vision.heads`, trained by ``tools/train_attribute_heads.py`` on
CelebA-HQ with identities held out) read the 3072-float vector that
:meth:`openiai.vision.models.sface.SFaceAppearance.appearance` returns (SFace's conv_12 and
conv_14 activations on a 96 px crop, pooled).
The server and the evaluation (:mod:`openiai.bench.celeba`) both go through
:func:`appearance_attributes`, so the figures in the manifest are the server's own.
"""

from __future__ import annotations

import numpy as np

from .heads import LinearHead

HEADS_NAME = "appearance"
# The yes/no heads the training tool ships (names are the interface other code reads), and the
# one class head. ``male`` is a reference figure; ``attractive`` feeds the Beauty score.
BINARY = ("eyeglasses", "hat", "smiling", "mouth_open", "beard", "bangs", "bald", "attractive",
          "bushy_eyebrows", "arched_eyebrows", "narrow_eyes", "heavy_makeup", "male")
HAIR_COLOR = "hair_color"
HAIR_CLASSES = ("black", "blond", "brown", "gray")

def appearance_attributes_batch(heads: dict[str, LinearHead],
                                appearance: np.ndarray) -> list[dict[str, object]]:
    """(n, 3072) appearance vectors -> per face: head name -> P(yes), or for a softmax head a
    dict class -> probability. All heads of a batch run as one matrix product each."""
    x = np.atleast_2d(np.asarray(appearance, np.float32))
    out: list[dict[str, object]] = [{} for _ in range(len(x))]
    for name, head in heads.items():
        p = head(x)
        for i in range(len(x)):
            if head.link == "softmax":
                out[i][name] = {c: float(v) for c, v in zip(head.classes, p[i])}
            else:
                out[i][name] = float(p[i])
    return out


def appearance_attributes(heads: dict[str, LinearHead],
                          appearance_row: np.ndarray) -> dict[str, object]:
    """One face's appearance vector -> head name -> probability (class probabilities for
    ``hair_color``)."""
    return appearance_attributes_batch(heads, np.asarray(appearance_row).reshape(1, -1))[0]
