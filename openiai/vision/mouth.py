"""Smile and mouth-open: one small logistic head each over what the pipeline already has.

CelebA-HQ's Smiling and Mouth_Slightly_Open are each read three ways, every one short of the
0.92 balanced-accuracy floor alone (held-out identities): the appearance heads (0.915, 0.910),
the expression net's "happy" (smiling) and the mesh's inner-lip gap (mouth open, 0.919). They
err on different faces, so :func:`features` stacks them: the two appearance heads' logits, the
expression net's 7 log-probabilities, and the mesh's mouth geometry
(:func:`openiai.vision.mesh.mouth_shape`). ``tools/train_smile_mouth.py`` trains the heads
(``vision/trained/smile_mouth.npz``) on the CelebA-HQ train identities; the held-out figures are
in its manifest and in ``openiai eval attributes``.
"""

from __future__ import annotations

import numpy as np

from .heads import LinearHead, logit
from .mesh import Mesh, mouth_shape

HEADS = "smile_mouth"


def features(appearance_heads: dict, expression: np.ndarray, mesh: Mesh) -> np.ndarray:
    """(12,): logits of the appearance heads ``smiling`` and ``mouth_open``, the expression
    net's log-probabilities (its class order), and the mouth geometry (opening, width, lift)."""
    return np.concatenate([head_logits(appearance_heads),
                           expression_and_shape(expression, mesh)]).astype(np.float32)


def head_logits(appearance_heads: dict) -> np.ndarray:
    """(2,): the first two columns of :func:`features`."""
    return np.array([logit(float(appearance_heads["smiling"])),
                     logit(float(appearance_heads["mouth_open"]))], np.float32)


def expression_and_shape(expression: np.ndarray, mesh: Mesh) -> np.ndarray:
    """(10,): the other columns of :func:`features` (what no appearance head changes)."""
    return np.concatenate([np.log(np.maximum(np.asarray(expression, np.float32).reshape(-1), 1e-6)),
                           mouth_shape(mesh)]).astype(np.float32)


def smile_and_mouth(heads: dict[str, LinearHead], row: np.ndarray) -> tuple[float, float]:
    """(P(smiling), P(mouth open)) of one face from its :func:`features` row."""
    x = np.asarray(row, np.float32).reshape(1, -1)
    return float(heads["smiling"](x)[0]), float(heads["mouth_open"](x)[0])
