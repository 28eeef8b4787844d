"""Small linear heads over features the pipeline already computes (no network of their own).

A head is a standardisation (mean, scale) followed by one linear layer and a link:
``logistic`` (one yes/no probability), ``softmax`` (class probabilities) or ``identity`` (a
regression, e.g. age in years). Heads are trained offline by ``tools/train_attribute_heads.py``
on the shared labelled sets and ship as ``openiai/vision/trained/<set>.npz`` with a manifest
``<set>.json`` (the training command, the split, the measured figures and the npz's sha256).
Nothing trains at server start; a heads file whose digest differs from its manifest is refused.

Why not scikit-learn at run time: prediction is one matrix product and a link function, and
the server should not depend on a training library; the training tool uses scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADS_DIR = Path(__file__).resolve().parent / "trained"
LINKS = ("logistic", "softmax", "identity")


class HeadsIntegrityError(RuntimeError):
    """A heads file is missing, or differs from the digest in its manifest."""


@dataclass(frozen=True)
class LinearHead:
    name: str
    link: str  # one of LINKS
    mean: np.ndarray  # (d,) feature means of the training set
    scale: np.ndarray  # (d,) feature standard deviations (never 0)
    weights: np.ndarray  # (d, k); k = 1 for logistic and identity heads
    bias: np.ndarray  # (k,)
    classes: tuple[str, ...] = ()  # softmax: class names in column order

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(n, d) features -> (n,) probability / value, or (n, k) class probabilities."""
        x = (np.asarray(features, np.float32) - self.mean) / self.scale
        z = x @ self.weights + self.bias
        if self.link == "logistic":
            return 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -40, 40)))
        if self.link == "softmax":
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        return z[:, 0]


def logit(p, eps: float = 1e-6):
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps]: how a probability enters a head."""
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


def save_heads(name: str, heads: list[LinearHead], manifest: dict,
               folder: Path = HEADS_DIR) -> Path:
    """Write ``<name>.npz`` and ``<name>.json`` (``manifest`` plus the npz's sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    index = []
    for h in heads:
        if h.link not in LINKS:
            raise ValueError(f"head {h.name}: link must be one of {LINKS}")
        for part in ("mean", "scale", "weights", "bias"):
            arrays[f"{h.name}.{part}"] = np.asarray(getattr(h, part), np.float32)
        index.append({"name": h.name, "link": h.link, "classes": list(h.classes)})
    npz = folder / f"{name}.npz"
    with open(npz, "wb") as f:
        np.savez_compressed(f, **arrays)
    meta = dict(manifest, heads=index, sha256=_sha256(npz))
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return npz


def load_heads(name: str, folder: Path = HEADS_DIR) -> dict[str, LinearHead]:
    """The heads of ``<name>.npz``, after checking its digest against ``<name>.json``."""
    npz, manifest = folder / f"{name}.npz", folder / f"{name}.json"
    if not npz.is_file() or not manifest.is_file():
        raise HeadsIntegrityError(f"Attribute heads {npz} or {manifest} are missing.")
    meta = json.loads(manifest.read_text())
    actual = _sha256(npz)
    if actual != meta.get("sha256"):
        raise HeadsIntegrityError(
            f"{npz} has sha256 {actual}, its manifest says {meta.get('sha256')}; refusing it.")
    with np.load(npz) as data:
        return {h["name"]: LinearHead(
            name=h["name"], link=h["link"], classes=tuple(h.get("classes", ())),
            mean=data[f"{h['name']}.mean"], scale=data[f"{h['name']}.scale"],
            weights=data[f"{h['name']}.weights"], bias=data[f"{h['name']}.bias"])
            for h in meta["heads"]}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
