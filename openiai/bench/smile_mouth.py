"""Smile and mouth-open on CelebA-HQ's held-out identities, through the server's code.

:func:`extract` runs every CelebA-HQ image through YuNet and
:meth:`openiai.services.attributes.AttributeEstimator.outputs` (appearance vector, expression
net, mesh) and builds :func:`openiai.vision.mouth.features`; ``tools/train_smile_mouth.py``
trains on the train identities, :func:`evaluate_smile_mouth` scores the shipped heads on the
others (``crc32(identity) % 10 >= 7``). A face YuNet misses counts as a wrong answer.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .attribute_data import balanced_accuracy_at_half, celeba_hq, find_face
from ..vision.models.sface import SFaceAppearance

LABELS = {"smiling": "Smiling", "mouth_open": "Mouth_Slightly_Open"}
FLOOR = 0.92  # issue 10's floor for both


def extract(testdata: Path, cache: Path | None = None, limit: int | None = None,
            test_only: bool = False):
    """Per CelebA-HQ image: ``x`` (the :func:`openiai.vision.mouth.features` row, by the
    shipped appearance heads), the appearance vector, found/train/identity and the labels.
    The network outputs are cached (``cache``) without the appearance heads' logits, which are
    computed here from the heads shipped now (so a cache outlives retrained heads)."""
    from ..services.attributes import AttributeEstimator
    from ..vision import mouth
    from ..vision.appearance import HEADS_NAME, appearance_attributes_batch
    from .evaluate import face_pipeline

    d = extract_outputs(testdata, cache, limit, test_only)
    heads = AttributeEstimator(face_pipeline()).heads(HEADS_NAME)
    probs = appearance_attributes_batch(heads, d["appearance"])
    logits = np.stack([mouth.head_logits(p) for p in probs]) if len(probs) else np.zeros((0, 2))
    x = np.concatenate([logits, d["rest"]], axis=1).astype(np.float32)
    x[~d["found"]] = 0.0
    return dict(d, x=x)


def extract_outputs(testdata: Path, cache: Path | None = None, limit: int | None = None,
                    test_only: bool = False) -> dict:
    from ..services.attributes import AttributeEstimator
    from ..vision import mouth
    from .evaluate import face_pipeline

    items = celeba_hq(testdata)
    if test_only:
        items = [it for it in items if not it.train]
    if limit:
        items = [it for it in items if not it.train][:limit] + [it for it in items if it.train][:limit]
    keys = np.array([it.path.name for it in items])
    if cache and cache.is_file():
        with np.load(cache) as d:
            if np.array_equal(d["keys"], keys) and "rest" in d.files:
                return {k: d[k] for k in d.files}
    labels = {}
    with open(Path(testdata) / "attributes" / "celeba_hq" / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            labels[row["file"]] = row
    pipe = face_pipeline()
    estimator = AttributeEstimator(pipe)
    rows, vectors, found = [], [], []
    started = time.time()
    for i, it in enumerate(items):
        pixels = cv2.imread(str(it.path), cv2.IMREAD_COLOR)
        face, pix, _ = find_face(pipe, pixels)
        if face is None:
            rows.append(np.zeros(10, np.float32))
            vectors.append(np.zeros(SFaceAppearance.DIM, np.float32))
            found.append(False)
            continue
        o = estimator.outputs(pix, [face], {"appearance", "expression", "mesh"})[0]
        rows.append(mouth.expression_and_shape(o["expression"], o["mesh"]))
        vectors.append(o["appearance"])
        found.append(True)
        if (i + 1) % 500 == 0:
            print(f"  {i + 1}/{len(items)} images, {time.time() - started:.0f} s", file=sys.stderr)
    out = {"keys": keys, "rest": np.stack(rows), "appearance": np.stack(vectors),
           "found": np.array(found),
           "train": np.array([it.train for it in items]),
           "identity": np.array([it.group for it in items]),
           **{name: np.array([int(labels[k][col]) for k in keys])
              for name, col in LABELS.items()}}
    if cache:
        np.savez(cache, **out)
    return out



def evaluate_smile_mouth(testdata: Path, limit: int | None = None,
                         cache: Path | None = None) -> list[dict]:
    from ..services.attributes import AttributeEstimator
    from ..vision import mouth
    from .evaluate import face_pipeline

    d = extract(testdata, cache, limit, test_only=True)  # only held-out rows are scored
    heads = AttributeEstimator(face_pipeline()).heads(mouth.HEADS)
    test = ~d["train"]
    found = d["found"][test]
    rows = []
    for name, label in LABELS.items():
        y = d[name][test]
        p = heads[name](d["x"][test]) if len(y) else np.zeros(0)
        p = np.where(found, p, np.where(y == 1, 0.0, 1.0))
        rows.append({"attribute": f"{name} ({label})",
                     "set": "CelebA-HQ held-out identities", "metric": "balanced accuracy",
                     "value": balanced_accuracy_at_half(p, y), "floor": FLOOR, "higher_is_better": True,
                     "n": int(len(y))})
    return rows
