"""Age and gender on held-out faces, through the server's own path.

* age: mean absolute error in years on UTKFace test adults (18-65; floor <= 7.5);
* gender: accuracy on UTKFace test adults (floor >= 95 %), balanced accuracy on CelebA-HQ test
  identities (floor >= 97 %).

Splits: :mod:`openiai.bench.attribute_data`. Each face: YuNet (retried with a border on a miss),
:meth:`AttributeEstimator.outputs`, then :func:`openiai.vision.demographics.ages` /
:func:`~openiai.vision.demographics.p_males` with the shipped heads. Faces YuNet misses get no
answer through the API: they are counted in ``yunet_miss_rate`` rows, not in the figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..vision import demographics
from . import attribute_data as ad

ADULT = (18, 65)


def _row(attribute, dataset, metric, value, n, floor=None, higher=True) -> dict:
    return {"attribute": attribute, "set": dataset, "metric": metric, "value": float(value),
            "floor": floor, "higher_is_better": higher, "n": int(n)}




def evaluate_demographics(testdata: Path, limit: int | None = None, pipeline=None,
                          cache: Path | None = None) -> list[dict]:
    """Rows for age and gender; ``limit`` caps the test images per set (a quick run);
    ``cache``: a folder for the per-face outputs (:func:`attribute_data.outputs`)."""
    from ..services.attributes import AttributeEstimator
    from .evaluate import face_pipeline

    pipe = pipeline or face_pipeline()
    heads = AttributeEstimator(pipe).heads(demographics.HEADS)
    which = ("age", "gender")
    rows = []

    items = [i for i in ad.utkface(testdata) if not i.train and ADULT[0] <= i.label <= ADULT[1]][:limit]
    d = ad.outputs(pipe, items, which, cache and Path(cache) / f"eval_utkface_{len(items)}.npz")
    ok = d["found"].astype(bool)
    age = np.array([i.label for i in items])[ok]
    male = np.array([i.extra for i in items])[ok]
    pred = demographics.ages(d["age_probs"][ok], d["appearance"][ok], heads)
    pm = demographics.p_males(d["gender_p"][ok], d["appearance"][ok], heads)
    rows += [
        _row("age", "utkface_test_adults", "mae_years", np.abs(pred - age).mean(), ok.sum(), 7.5, False),
        _row("gender", "utkface_test_adults", "accuracy", np.mean((pm >= 0.5) == male), ok.sum(), 0.95),
        _row("face", "utkface_test_adults", "yunet_miss_rate", 1 - ok.mean(), len(items), None, False),
    ]

    items = [i for i in ad.celeba_hq(testdata) if not i.train][:limit]
    d = ad.outputs(pipe, items, ("gender",), cache and Path(cache) / f"eval_celeba_{len(items)}.npz")
    ok = d["found"].astype(bool)
    male = np.array([i.label for i in items])[ok]
    pm = demographics.p_males(d["gender_p"][ok], d["appearance"][ok], heads)
    rows += [
        _row("gender", "celeba_hq_test", "balanced_accuracy", ad.balanced_accuracy_at_half(pm, male), ok.sum(), 0.97),
        _row("face", "celeba_hq_test", "yunet_miss_rate", 1 - ok.mean(), len(items), None, False),
    ]
    return rows
