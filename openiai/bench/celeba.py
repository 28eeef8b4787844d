"""CelebA-HQ attribute evaluation of the shipped appearance heads, through the server's code.

Each image goes the way a request's face does: :func:`openiai.vision.image.decode_bytes` ->
``FacePipeline.detect`` (largest face, MinFaceSize 34, the default score threshold) ->
``FacePipeline.appearance`` (SFace alignment and one run for embedding + appearance vector) ->
:func:`openiai.vision.appearance.appearance_attributes_batch` over ``load_heads("appearance")``.
The images are tight 128x128 crops; YuNet finds a face in them as they are, so nothing is
padded (the training tool prints how many it misses). A face YuNet misses is scored as a
wrong answer for every head, never dropped.

The identity split (:func:`split_of`) is shared with ``tools/train_attribute_heads.py`` and
other engineers' heads: ``crc32(identity) % 10 < 7`` trains, the rest is held out.
CelebA is for non-commercial research use; the figures are measurements, the images are never
copied into the repository.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from openiai.services.faces import FacePipeline
from openiai.vision.appearance import HEADS_NAME, appearance_attributes_batch
from openiai.vision.heads import HEADS_DIR, load_heads
from openiai.vision.models.sface import SFaceAppearance

from .attribute_data import balanced_accuracy, in_train
from openiai.vision.image import decode_bytes

SET_NAME = "CelebA-HQ held-out identities"
CELEBA = Path("attributes") / "celeba_hq"
# Issue 10's floors (balanced accuracy on held-out identities); other heads have none.
# Smiling and mouth open are answered by the stacked heads of openiai.vision.mouth (scored with
# their floor by openiai.bench.smile_mouth); here their appearance heads are ingredients.
FLOORS = {"eyeglasses": 0.92, "hat": 0.92, "beard": 0.92, "bangs": 0.92}
# In the order of openiai.vision.appearance.HAIR_CLASSES (black, blond, brown, gray).
HAIR_COLUMNS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")

Row = dict[str, str]


def _col(name: str) -> Callable[[Row], int]:
    return lambda r: int(r[name])


# Label definitions by name; the manifest records which one each head was trained on (the
# beard head has two candidates, the training tool keeps the better defined).
LABELS: dict[str, Callable[[Row], int | None]] = {
    "Eyeglasses": _col("Eyeglasses"),
    "Wearing_Hat": _col("Wearing_Hat"),
    "Smiling": _col("Smiling"),
    "Mouth_Slightly_Open": _col("Mouth_Slightly_Open"),
    "1 - No_Beard": lambda r: 1 - int(r["No_Beard"]),
    "Mustache | Goatee | (1 - No_Beard)":
        lambda r: int(bool(int(r["Mustache"]) or int(r["Goatee"]) or not int(r["No_Beard"]))),
    "Bangs": _col("Bangs"),
    "Bald": _col("Bald"),
    "Attractive": _col("Attractive"),
    "Bushy_Eyebrows": _col("Bushy_Eyebrows"),
    "Arched_Eyebrows": _col("Arched_Eyebrows"),
    "Narrow_Eyes": _col("Narrow_Eyes"),
    "Heavy_Makeup": _col("Heavy_Makeup"),
    "Male": _col("Male"),
    # Class index in HAIR_CLASSES, or None unless exactly one of the four colours is set.
    "one of Black/Blond/Brown/Gray_Hair":
        lambda r: ([int(r[c]) for c in HAIR_COLUMNS].index(1)
                   if sum(int(r[c]) for c in HAIR_COLUMNS) == 1 else None),
}


def split_of(identity: str | int) -> str:
    """The shared identity split: 70% of identities train, 30% are held out."""
    return "train" if in_train(str(identity)) else "test"


def read_labels(testdata: Path) -> list[Row]:
    """labels.csv rows in file order (file, identity, the 40 attributes as '0'/'1')."""
    with open(Path(testdata) / CELEBA / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def image_path(testdata: Path, row: Row) -> Path:
    return Path(testdata) / CELEBA / "images" / row["file"]


@dataclass
class Extracted:
    found: np.ndarray  # (n,) bool: YuNet found a face
    appearance: np.ndarray  # (n, SFaceAppearance.DIM) float32; zeros where nothing was found
    score: np.ndarray  # (n,) detector score, 0 where nothing was found


def extract(pipeline: FacePipeline, paths: list[Path]) -> Extracted:
    """Appearance vectors of the largest face of each image, one image per run (as a request)."""
    found = np.zeros(len(paths), bool)
    score = np.zeros(len(paths), np.float32)
    rows = np.zeros((len(paths), SFaceAppearance.DIM), np.float32)
    for i, path in enumerate(paths):
        pixels = decode_bytes(Path(path).read_bytes()).pixels
        faces = pipeline.detect(pixels)
        if not faces:
            continue
        appearance = pipeline.appearance([(pixels, faces[0])])
        found[i], score[i], rows[i] = True, faces[0].score, appearance[0]
    return Extracted(found, rows, score)


def recalls(y: np.ndarray, pred: np.ndarray, classes: int) -> list[float | None]:
    return [float(np.mean(pred[y == c] == c)) if np.any(y == c) else None
            for c in range(classes)]


def head_labels(manifest_heads: dict, name: str, rows: list[Row]) -> np.ndarray:
    """Labels of ``rows`` for head ``name`` by the definition its manifest records; -1 where
    a row has none (hair colour outside the four classes)."""
    rule = LABELS[manifest_heads[name]["label"]]
    return np.array([-1 if (v := rule(r)) is None else v for r in rows], int)


def predictions(heads, appearance: np.ndarray, found: np.ndarray, name: str,
                y: np.ndarray) -> np.ndarray:
    """Class index per image; a missed face gets a wrong class (it counts as an error)."""
    probs = appearance_attributes_batch({name: heads[name]}, appearance)
    if heads[name].link == "softmax":
        pred = np.array([int(np.argmax([p[name][c] for c in heads[name].classes])) for p in probs])
        wrong = (np.maximum(y, 0) + 1) % len(heads[name].classes)
    else:
        pred = np.array([int(p[name] > 0.5) for p in probs])
        wrong = 1 - np.maximum(y, 0)
    return np.where(found, pred, wrong)


def rows_for(heads, manifest_heads: dict, rows: list[Row], ext: Extracted) -> list[dict]:
    """Result rows (one per head, plus per-class hair recalls) for extracted test images."""
    out = []
    for name, head in heads.items():
        y = head_labels(manifest_heads, name, rows)
        keep = y >= 0
        pred = predictions(heads, ext.appearance[keep], ext.found[keep], name, y[keep])
        k = len(head.classes) if head.link == "softmax" else 2
        out.append({"attribute": name, "set": SET_NAME, "metric": "balanced accuracy",
                    "value": balanced_accuracy(y[keep], pred, k), "floor": FLOORS.get(name),
                    "higher_is_better": True, "n": int(keep.sum())})
        if head.link == "softmax":
            for c, (cls, r) in enumerate(zip(head.classes, recalls(y[keep], pred, k))):
                if r is not None:
                    out.append({"attribute": f"{name}/{cls}", "set": SET_NAME, "metric": "recall",
                                "value": r, "floor": None, "higher_is_better": True,
                                "n": int((y[keep] == c).sum())})
    return out


def evaluate_celeba(testdata: Path, limit: int | None = None,
                    pipeline: FacePipeline | None = None) -> list[dict]:
    """Held-out balanced accuracy of every shipped appearance head (first ``limit`` test images
    in labels.csv order), recomputed from the images through the runtime code."""
    heads = load_heads(HEADS_NAME)
    manifest = json.loads((HEADS_DIR / f"{HEADS_NAME}.json").read_text())
    rows = [r for r in read_labels(testdata) if split_of(r["identity"]) == "test"][:limit]
    if pipeline is None:
        from .evaluate import face_pipeline

        pipeline = face_pipeline()
    ext = extract(pipeline, [image_path(testdata, r) for r in rows])
    out = rows_for(heads, manifest["results"], rows, ext)
    out.append({"attribute": "face detected", "set": SET_NAME, "metric": "detection rate",
                "value": float(ext.found.mean()) if len(rows) else 0.0, "floor": None,
                "higher_is_better": True, "n": len(rows)})
    return out

