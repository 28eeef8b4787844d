"""CompareMaskFace's comparison: whole face when neither face wears a mask, upper face when one
does.

Each face is embedded once by the version's recognizer and checked for a mask by the attribute
work's mask head over SFace's appearance vector (:func:`openiai.vision.masks.p_masks`). When either face is masked, both are compared on their
upper halves (:mod:`openiai.vision.upper_face`), and the cosine maps to the Score through the
table measured for that comparison (``mask_calibration.json``), so 40/50/60 keep meaning FAR
1e-3/1e-4/1e-5 on masked pairs; otherwise the whole-face cosine maps through CompareFace's
table, and CompareMaskFace answers what CompareFace would. Why not always the upper face:
``openiai eval maskcompare`` measures both, and on unmasked pairs the whole face is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..vision import masks
from ..vision.types import Face
from .attributes import AttributeEstimator
from .faces import FacePipeline

MASKED = 0.5  # p(mask) at or above this sends the pair down the upper-face path


@dataclass
class MaskComparison:
    cosine: float
    p_mask: tuple[float, ...]  # per face
    table: str  # the score table (vision.scores.TABLES) the cosine maps through

    @property
    def masked(self) -> bool:
        return self.table == "mask"


def compare_masked(pipeline: FacePipeline, estimator: AttributeEstimator,
                   items: list[tuple[np.ndarray, Face]], model_version: str = "3.0") -> MaskComparison:
    """Compare two faces (``items``: (pixels, face) each) as CompareMaskFace does."""
    emb = pipeline.features_of(items, model_version)
    appearance = pipeline.appearance(items)
    p = masks.p_masks(appearance, estimator.heads(masks.HEADS))
    if bool((p >= MASKED).any()):
        upper = pipeline.features_of(items, model_version, upper_face=True)
        return MaskComparison(float(np.dot(upper[0], upper[1])), tuple(map(float, p)), "mask")
    return MaskComparison(float(np.dot(emb[0], emb[1])), tuple(map(float, p)), "compare")
