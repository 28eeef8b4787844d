"""Single-image liveness: is the face in this picture a live person or a presentation attack
(a printed photo, a phone or monitor screen held up to the camera)?

The answer is a linear head (:mod:`openiai.vision.heads`, ``trained/liveness.npz``, trained by
``tools/train_liveness.py`` on the shared NUAA and phone-capture sets) over the MiniFASNet
two-scale ensemble's features (:class:`openiai.vision.models.minifasnet.MiniFASNet`: both nets'
128-d embeddings and softmax outputs). Upstream's own answer (the mean of the two softmax
"real" probabilities) ranks YuNet-cropped webcam faces poorly (MODELS.md: NUAA AUC 0.90,
77 % of live faces refused at 0.5); the head re-weights the same features.

The head's output is a logit whose 0 is the *operating point*: the training tool folds into its
bias the threshold that, on faces held out of training, refuses about 5 % of live faces. Each
action maps that logit onto its documented scale so its documented threshold lands on the
operating point: ``Score = 100 * sigmoid(logit + logit(threshold / 100))``, i.e. Score 40 for
DetectLiveFaceAccurate and 87 for DetectLiveFace mean the same decision. ``openiai eval
liveness`` prints what that decision costs (APCER, BPCER) on people held out of training.

Views: DetectLiveFace scores one crop per net; DetectLiveFaceAccurate (documented as the
high-precision variant) also scores the mirrored crops and averages the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..vision import heads as _heads
from ..vision.types import Face

MODEL = "minifasnet"
HEADS = "liveness"  # trained/liveness.npz
HEAD = "live"


@dataclass(frozen=True)
class Mode:
    """One action's view of the liveness check."""

    action: str
    accurate: bool  # mirrored views too
    threshold: float  # the documented Score threshold: the operating point
    documented: tuple[float, ...]  # the thresholds the docs name, reported by the eval
    min_face_size: int  # face box height the action requires, in pixels

    def score(self, logit):
        """Logit (0 = operating point) -> the action's 0..100 Score."""
        z = np.asarray(logit, np.float64) + math.log(self.threshold / (100.0 - self.threshold))
        return 100.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


# DetectLiveFaceAccurate: "thresholds 5, 10, 40, 70 and 90; we recommend 40", and "the face
# must be greater than 100*100 px".
ACCURATE = Mode("DetectLiveFaceAccurate", True, 40.0, (5.0, 10.0, 40.0, 70.0, 90.0), 100)
# DetectLiveFace: "Score ... above 87 can be judged live"; no face size is documented, so the
# detector's documented default minimum (34 px, as DetectFace) applies.
BASIC = Mode("DetectLiveFace", False, 87.0, (87.0,), 34)


class LivenessEstimator:
    """Runs the ensemble and the head for one face; one instance per pipeline."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self._head: _heads.LinearHead | None = None

    def head(self) -> _heads.LinearHead:
        if self._head is None:
            self._head = _heads.load_heads(HEADS)[HEAD]
        return self._head

    def view_features(self, pixels: np.ndarray, face: Face, accurate: bool) -> np.ndarray:
        """(views, d) features of one face: one view, or two (the crop and its mirror)."""
        return self.pipeline.infer(MODEL, lambda m: m.features(pixels, [face], flips=accurate),
                                   stage_name="liveness")[0]

    def logit(self, pixels: np.ndarray, face: Face, mode: Mode) -> float:
        """The head's logit (0 = operating point), averaged over the mode's views."""
        views = self.view_features(pixels, face, mode.accurate)
        return float(np.mean(self.head()(views)))

    def score(self, pixels: np.ndarray, face: Face, mode: Mode) -> float:
        return float(mode.score(self.logit(pixels, face, mode)))

    # For the evaluation and training tools.
    def view_dim(self) -> int:
        return self.pipeline.zoo.get(MODEL).VIEW_DIM

    def geometry_key(self) -> str:
        from ..vision.models.minifasnet import CROPS

        return repr(CROPS)

    def upstream_p_real(self, feats: np.ndarray) -> np.ndarray:
        """Upstream's score (mean softmax P(real) of both nets) over the first view."""
        return self.pipeline.zoo.get(MODEL).p_real(feats[:, 0])
