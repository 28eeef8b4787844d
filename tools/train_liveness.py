"""Train the liveness head (openiai/vision/trained/liveness.npz + .json) and tune the crops.

Usage:
    python tools/train_liveness.py --grid      # crop geometry: held-out AUC per candidate
    python tools/train_liveness.py             # fit and write the head for the shipped CROPS

The head is a logistic regression over the MiniFASNet two-scale features of YuNet's largest
face (both nets' 128-d embeddings and softmax outputs, each view a row: the crop and its
mirror), fitted on every NUAA subject and every phone capture; its bias carries the operating
point (see openiai/services/liveness.py), chosen on held-out folds so that ~5 % of live faces
are refused. Fitting and folds are openiai.bench.liveness's (the same code the evaluation
re-runs per fold), so the figures in the manifest are the evaluation's.

``--grid`` scores crop geometries (scale per net, square box, downward shift) by the
subject-held-out AUC on NUAA and the 5-fold AUC on the phone captures. NUAA's pictures are
tight face crops, so the scaled box is clipped to the whole image for every candidate; the
geometry matters mostly for the phone captures. Features are cached under --cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from openiai.bench import liveness as lv  # noqa: E402
from openiai.core.settings import Settings  # noqa: E402
from openiai.services.faces import FacePipeline  # noqa: E402
from openiai.services.liveness import ACCURATE, BASIC, HEAD, HEADS, LivenessEstimator  # noqa: E402
from openiai.vision import heads as _heads  # noqa: E402
from openiai.vision.models import minifasnet  # noqa: E402
from openiai.vision.models.minifasnet import Crop  # noqa: E402


def boxes(pipeline, items, cache: Path) -> dict[str, np.ndarray]:
    """Largest YuNet face box per image (cached; detection does not depend on the crops)."""
    import cv2

    path = cache / "liveness-boxes.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    for item in items:
        if str(item.path) not in known:
            faces = pipeline.detect(cv2.imread(str(item.path), cv2.IMREAD_COLOR), max_faces=1)
            known[str(item.path)] = [float(v) for v in faces[0].box] if faces else None
    path.write_text(json.dumps(known))
    return known


def grid_features(pipeline, items, known, crops, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from openiai.vision.types import Face

    key = hashlib.sha256(repr((crops, [str(i.path) for i in items])).encode()).hexdigest()[:16]
    path = cache / f"liveness-grid-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["feats"], z["found"]
    model = pipeline.zoo.get("minifasnet")
    feats = np.zeros((len(items), 2, model.VIEW_DIM), np.float32)
    found = np.zeros(len(items), bool)
    for i, item in enumerate(items):
        box = known[str(item.path)]
        if box is None:
            continue
        face = Face(box=np.array(box, np.float32), score=1.0, landmarks=np.zeros((5, 2)))
        pixels = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        feats[i] = model.features(pixels, [face], flips=True, crops=crops)[0]
        found[i] = True
    np.savez(path, feats=feats, found=found)
    return feats, found


def held_out(parts: dict) -> dict:
    """The evaluation's held-out figures per set (openiai.bench.liveness.cross_validate)."""
    feats, y, groups, sets = lv.joint(parts)
    both, first = lv.cross_validate(feats, y, groups, lv.outer_folds(sets, groups, y))
    out = {}
    for name in parts:
        r = sets == name
        out[name] = {"auc": lv.roc_auc(both[r], y[r]), "auc_1view": lv.roc_auc(first[r], y[r]),
                     "accurate": lv.rates(ACCURATE.score(both[r]), y[r], ACCURATE.threshold),
                     "basic": lv.rates(BASIC.score(first[r]), y[r], BASIC.threshold)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--testdata", type=Path, default=Settings.from_env().testdata_dir)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/live_cache"))
    ap.add_argument("--grid", action="store_true", help="score crop geometries, write nothing")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    pipeline = FacePipeline.from_settings(Settings.from_env())
    data = {}
    for name in lv.SETS:
        items = lv.list_set(args.testdata, name)
        data[name] = (items, np.array([i.live for i in items], float),
                      np.array([i.group for i in items]))
    known = boxes(pipeline, [i for d in data.values() for i in d[0]], args.cache)

    if args.grid:
        candidates = [(Crop(a, sq, sh), Crop(b, sq, sh)) for a, b in ((2.7, 4.0), (2.0, 3.2),
                      (2.2, 3.6), (3.2, 4.8)) for sq in (False, True) for sh in (0.0, 0.1)]
        for crops in candidates:
            parts, upstream = {}, []
            for name, (items, y, groups) in data.items():
                feats, found = grid_features(pipeline, items, known, crops, args.cache)
                parts[name] = (feats[found], y[found], groups[found])
                up = lv.roc_auc(minifasnet.MiniFASNet.p_real(feats[found][:, 0]), y[found])
                upstream.append(f"{name} {up:.3f}")
            figures = held_out(parts)
            print(f"{crops}: " + "; ".join(
                f"{n} AUC {r['auc']:.3f} (1 view {r['auc_1view']:.3f}), Accurate BPCER "
                f"{r['accurate']['bpcer']:.3f} APCER {r['accurate']['apcer']:.3f}"
                for n, r in figures.items()) + "; upstream AUC " + ", ".join(upstream),
                flush=True)
        return 0

    # The shipped head: every image of both sets, the shipped crops.
    crops = minifasnet.CROPS
    parts = {}
    for name, (items, y, groups) in data.items():
        feats, found = grid_features(pipeline, items, known, crops, args.cache)
        parts[name] = (feats[found], y[found], groups[found])
    figures = held_out(parts)
    feats, y, groups, _ = lv.joint(parts)
    # Inner folds for the threshold: whole NUAA subjects and single phone images, dealt
    # round-robin into lv.INNER_FOLDS folds.
    mean, scale, w, b = lv.fit_with_threshold(feats, y, groups, by_group=True)
    head = _heads.LinearHead(name=HEAD, link="identity", mean=mean, scale=scale,
                             weights=w.reshape(-1, 1).astype(np.float32),
                             bias=np.array([b], np.float32))
    manifest = {
        "command": "python tools/train_liveness.py",
        "what": "logit of 'live' over MiniFASNet V2+V1SE features (embeddings + softmax) of "
                "YuNet's largest face, per view; logit 0 = operating point (~5 % of held-out "
                "live faces refused)",
        "crops": repr(crops),
        "l2": lv.L2, "target_bpcer": lv.TARGET_BPCER,
        "training": {name: {"live": int(d[1].sum()), "attack": int((1 - d[1]).sum())}
                     for name, d in data.items()},
        "held_out": figures,
    }
    npz = _heads.save_heads(HEADS, [head], manifest)
    print(json.dumps(figures, indent=1, default=float))
    print(f"wrote {npz}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
