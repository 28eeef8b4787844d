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


def extract(testdata: Path, cache: Path | None = None, limit: int | None = None):
    from ..services.attributes import AttributeEstimator
    from ..vision import mouth
    from ..vision.appearance import HEADS_NAME, appearance_attributes
    from .evaluate import face_pipeline

    items = celeba_hq(testdata)
    if limit:
        items = [it for it in items if not it.train][:limit] + [it for it in items if it.train][:limit]
    keys = np.array([it.path.name for it in items])
    if cache and cache.is_file():
        with np.load(cache) as d:
            if np.array_equal(d["keys"], keys):
                return {k: d[k] for k in d.files}
    labels = {}
    with open(Path(testdata) / "attributes" / "celeba_hq" / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            labels[row["file"]] = row
    pipe = face_pipeline()
    estimator = AttributeEstimator(pipe)
    heads = estimator.heads(HEADS_NAME)
    rows, vectors, found = [], [], []
    started = time.time()
    for i, it in enumerate(items):
        pixels = cv2.imread(str(it.path), cv2.IMREAD_COLOR)
        face, pix, _ = find_face(pipe, pixels)
        if face is None:
            rows.append(np.zeros(12, np.float32))
            vectors.append(np.zeros(SFaceAppearance.DIM, np.float32))
            found.append(False)
            continue
        o = estimator.outputs(pix, [face], {"appearance", "expression", "mesh"})[0]
        rows.append(mouth.features(appearance_attributes(heads, o["appearance"]),
                                   o["expression"], o["mesh"]))
        vectors.append(o["appearance"])
        found.append(True)
        if (i + 1) % 500 == 0:
            print(f"  {i + 1}/{len(items)} images, {time.time() - started:.0f} s", file=sys.stderr)
    out = {"keys": keys, "x": np.stack(rows), "appearance": np.stack(vectors),
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

    d = extract(testdata, cache, limit)
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
