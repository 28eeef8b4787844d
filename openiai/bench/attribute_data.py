"""The labelled attribute sets under ``attributes/``, their train/test splits, and the per-face
network outputs of their images (through :meth:`AttributeEstimator.outputs
<openiai.services.attributes.AttributeEstimator.outputs>`, the server's path), optionally cached as npz.

Split rules (shared with other attribute work; do not change them):

* CelebA-HQ: ``zlib.crc32(str(identity).encode()) % 10 < 7`` -> train (identity-disjoint);
* UTKFace and the mask set (no identities given): ``zlib.crc32(filename.encode()) % 10 < 7``
  -> train.

UTKFace and CelebA(-HQ) are research-only data sets: heads trained on them are measured and
shipped with that noted in their manifest.
"""

from __future__ import annotations

import csv
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Tight 128 px crops (UTKFace) can leave YuNet without context; a face it misses is retried
# on the image with this border (fraction of the side, black) added all round.
PAD = 0.25
OUTPUTS = ("appearance", "age_probs", "gender_p", "expression", "mask_ssd")


@dataclass(frozen=True)
class Item:
    path: Path
    label: float  # age in years / 1 male / 1 masked, depending on the set
    train: bool
    group: str = ""  # CelebA identity; "" elsewhere
    extra: float = 0.0  # UTKFace: gender (1 male); CelebA: Smiling


def in_train(key: str) -> bool:
    """The split rule every attribute head and evaluation uses (see the module docstring)."""
    return zlib.crc32(key.encode()) % 10 < 7


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, classes: int = 2) -> float:
    """Mean recall over the classes present in ``y`` (``pred``: class indices)."""
    recalls = [float(np.mean(pred[y == c] == c)) for c in range(classes) if np.any(y == c)]
    return float(np.mean(recalls))


def balanced_accuracy_at_half(p: np.ndarray, y: np.ndarray) -> float:
    """Yes/no balanced accuracy of probabilities ``p`` (yes when p >= 0.5) against 0/1 ``y``."""
    return balanced_accuracy(np.asarray(y).astype(int), (np.asarray(p) >= 0.5).astype(int))


def utkface(testdata: Path) -> list[Item]:
    """UTKFace crops: label = age in years, extra = 1 if male (file gender 0 = male)."""
    items = []
    for p in sorted((Path(testdata) / "attributes" / "utkface").glob("*.jpg")):
        parts = p.name.split("_")
        if len(parts) < 4 or not parts[0].isdigit() or parts[1] not in ("0", "1"):
            continue  # a few UTKFace names lack a field
        items.append(Item(p, float(parts[0]), in_train(p.name), extra=float(parts[1] == "0")))
    return items


def celeba_hq(testdata: Path) -> list[Item]:
    """CelebA-HQ: label = Male (0/1), group = identity, extra = Smiling."""
    root = Path(testdata) / "attributes" / "celeba_hq"
    items = []
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            items.append(Item(root / "images" / row["file"], float(row["Male"]),
                              in_train(str(row["identity"])), group=str(row["identity"]),
                              extra=float(row["Smiling"])))
    return items


def mask_set(testdata: Path) -> list[Item]:
    """attributes/mask: label = 1 with a mask."""
    root = Path(testdata) / "attributes" / "mask"
    items = []
    for label, folder in ((1.0, "with_mask"), (0.0, "without_mask")):
        for p in sorted((root / folder).iterdir()):
            if p.is_file():
                items.append(Item(p, label, in_train(p.name)))
    return items


def find_face(pipe, pixels: np.ndarray):
    """(face, pixels it was found in, padded?) or (None, pixels, False). The largest face; if
    YuNet finds none, once more on the image with a black border."""
    faces = pipe.detect(pixels, min_face_size=20)
    if faces:
        return faces[0], pixels, False
    b = int(round(PAD * max(pixels.shape[:2])))
    padded = cv2.copyMakeBorder(pixels, b, b, b, b, cv2.BORDER_CONSTANT, value=0)
    faces = pipe.detect(padded, min_face_size=20)
    return (faces[0], padded, True) if faces else (None, pixels, False)


def outputs(pipe, items: list[Item], which: tuple[str, ...], cache: Path | None = None,
            log=None) -> dict[str, np.ndarray]:
    """Per item: ``api_rejected`` (the API would refuse the image), ``found``, ``padded`` (bool), ``box`` (4), ``landmarks`` (5, 2) and the
    raw outputs of ``which`` (rows of zeros where no face was found). Cached in ``cache``
    (an npz) when given, keyed by the item paths."""
    keys = np.array([str(it.path) for it in items])
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as d:
            if np.array_equal(d["keys"], keys) and all(w in d for w in _fields(which)):
                return {k: d[k] for k in d.files}
    rows: dict[str, list] = {k: [] for k in ("api_rejected", "found", "padded", "box", "landmarks", "score", *_fields(which))}
    from ..core.errors import ApiError
    from ..vision.image import decode_bytes

    from ..services.attributes import AttributeEstimator

    estimator = AttributeEstimator(pipe)
    t0 = time.time()
    for i, it in enumerate(items):
        data = it.path.read_bytes()
        try:
            pixels = decode_bytes(data).pixels
            rows["api_rejected"].append(False)
        except ApiError:
            # The API refuses it (e.g. a side under 64 px): measured anyway, and counted.
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            rows["api_rejected"].append(True)
        face, pix, padded = find_face(pipe, pixels)
        rows["found"].append(face is not None)
        rows["padded"].append(padded)
        rows["box"].append(face.box if face else np.zeros(4, np.float32))
        rows["landmarks"].append(face.landmarks if face else np.zeros((5, 2), np.float32))
        rows["score"].append(face.score if face else 0.0)
        raw = estimator.outputs(pix, [face], set(which))[0] if face else {}
        for k in _fields(which):
            rows[k].append(raw.get(k))
        if log and (i + 1) % 500 == 0:
            log(f"  {i + 1}/{len(items)} images, {time.time() - t0:.0f} s")
    out = {"keys": keys}
    for k, v in rows.items():
        if k in ("api_rejected", "found", "padded", "box", "landmarks", "score"):
            out[k] = np.asarray(v)
            continue
        proto = next((np.asarray(x, np.float32) for x in v if x is not None), np.zeros(1, np.float32))
        out[k] = np.stack([np.asarray(x, np.float32) if x is not None else np.zeros_like(proto) for x in v])
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **out)
    return out


def _fields(which: tuple[str, ...]) -> tuple[str, ...]:
    names = {"age": "age_probs", "gender": "gender_p", "expression": "expression", "mask": "mask_ssd"}
    fields = [names[w] for w in which]
    if {"age", "gender", "mask"} & set(which):
        fields.insert(0, "appearance")
    return tuple(fields)
