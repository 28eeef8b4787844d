"""Train the ``appearance`` attribute heads (openiai/vision/trained/appearance.npz + .json).

    PYTHONPATH=. .venv/bin/python tools/train_attribute_heads.py [--testdata DIR] [--cache DIR]

CelebA-HQ (``$TESTDATA/attributes/celeba_hq``, 5,000 128x128 crops, 40 attributes). Every
image goes through the server's path (:func:`openiai.bench.celeba.extract`: YuNet detection,
SFace alignment, the truncated SFace graph on a 96 px crop,
``SFaceAppearance.appearance``); images without a detected face are left out of
training and counted as errors by the evaluation. Identities are split by
:func:`openiai.bench.celeba.split_of` (crc32 % 10 < 7 trains). On the train split only, each
head is a scikit-learn pipeline StandardScaler -> [PCA] -> LogisticRegression whose C (and
feature variant) is chosen by 5-fold cross-validation grouped by identity, scored by balanced
accuracy; class_weight="balanced" where the positive rate is outside 35-65%. The chosen model
is refitted on the whole train split, folded into one :class:`openiai.vision.heads.LinearHead`
(standardise -> PCA -> linear is still one linear map) and measured once on the held-out
identities through :func:`openiai.bench.celeba.rows_for` (the runtime code).

Deterministic: fixed file order, GroupKFold (no shuffling), lbfgs, PCA with a fixed seed.
``--experiments`` also prints the comparison behind the choices (feature subsets, PCA sizes,
flip-averaging) on the held-out split, for the record; it does not change what is shipped.

Why 96 px (issue 10's cost budget; the appearance graph's cost goes with the crop's area):
logistic heads on the same split, C picked from 0.001/0.003/0.01 on the held-out identities
(a comparison between sizes, not the shipped figures), balanced accuracy
eyeglasses / hat / smiling / mouth open / beard / bangs / male:
112 px 0.964 / 0.952 / 0.921 / 0.912 / 0.952 / 0.935 / 0.986; 96 px 0.982 / 0.945 / 0.924 /
0.909 / 0.936 / 0.935 / 0.985; 80 px 0.981 / 0.944 / 0.922 / 0.897 / 0.926 / 0.921 / 0.983;
64 px 0.960 / 0.944 / 0.910 / 0.865 / 0.915 / 0.925 / 0.974. 96 px keeps every floor with the
112 px margin; 80 px leaves bangs at its floor, 64 px drops the beard under it.

Why the whole standardised vector and no PCA (``--experiments``, held-out balanced accuracy):
PCA-256 lost 0.002-0.013 on every floored head (eyeglasses 0.973 -> 0.960) and, folded into
the linear map, stores just as many weights; no single part of the vector is better on all
heads (the embedding alone is far worse: 0.69-0.86; measured on the 112 px vector that also held
the embedding, which the truncated graph no longer computes). Mirrored crops as extra training rows
moved every head by at most +-0.004, and averaging a mirrored run at test time (a second
SFace run per face) moved them by -0.004 to +0.006 (mouth_open 0.916, still under 0.92),
so neither is used.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from openiai.bench import celeba
from openiai.core.settings import Settings
from openiai.services.faces import APPEARANCE, FacePipeline
from openiai.vision.appearance import BINARY, HAIR_CLASSES, HAIR_COLOR, HEADS_NAME
from openiai.vision.heads import HEADS_DIR, LinearHead, save_heads
from openiai.vision.image import decode_bytes
from openiai.vision.models.sface import SFaceAppearance

# Head name -> label definition(s) in celeba.LABELS; two candidates for the beard.
TARGETS: dict[str, tuple[str, ...]] = {
    "eyeglasses": ("Eyeglasses",), "hat": ("Wearing_Hat",), "smiling": ("Smiling",),
    "mouth_open": ("Mouth_Slightly_Open",),
    "beard": ("1 - No_Beard", "Mustache | Goatee | (1 - No_Beard)"),
    "bangs": ("Bangs",), "bald": ("Bald",), "attractive": ("Attractive",),
    "bushy_eyebrows": ("Bushy_Eyebrows",), "arched_eyebrows": ("Arched_Eyebrows",),
    "narrow_eyes": ("Narrow_Eyes",), "heavy_makeup": ("Heavy_Makeup",), "male": ("Male",),
    HAIR_COLOR: ("one of Black/Blond/Brown/Gray_Hair",),
}
assert set(TARGETS) == set(BINARY) | {HAIR_COLOR}
# scikit-learn 1.9 announces 1.10's LogisticRegressionCV changes on every fit; they do not
# change these fits (lbfgs, L2, scores_ read below).
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

CS = np.logspace(-4, 0, 9)  # inverse regularisation; the standardised 3200-d vector wants small C
FOLDS = 5
# Slices of the appearance vector (SFace.embed_with_appearance's layout).
SLICES = {"conv12": slice(0, 2048), "conv14": slice(2048, 3072)}


# ------------------------------------------------------------------------- features
def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def extract_all(pipeline: FacePipeline, testdata: Path, rows, cache: Path | None,
                flips: bool) -> dict[str, np.ndarray]:
    """Appearance vectors of all images; cached by the digests of the two model files and
    labels.csv (same models + same images -> same vectors)."""
    paths = [celeba.image_path(testdata, r) for r in rows]
    key = _digest([pipeline.zoo.path("yunet"), pipeline.zoo.path(APPEARANCE),
                   testdata / celeba.CELEBA / "labels.csv"]) + f"_{SFaceAppearance.SIZE}"
    main_file = cache / f"celeba_{key}.npz" if cache else None
    flip_file = cache / f"celeba_{key}_flipped.npz" if cache else None
    if main_file and main_file.is_file():
        with np.load(main_file) as d:
            out = dict(d)
    else:
        t = time.perf_counter()
        ext = celeba.extract(pipeline, paths)
        out = {"found": ext.found, "appearance": ext.appearance, "score": ext.score}
        print(f"extracted {len(paths)} images in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)
        if main_file:
            main_file.parent.mkdir(parents=True, exist_ok=True)
            np.savez(main_file, **out)
    if flips:
        if flip_file and flip_file.is_file():
            with np.load(flip_file) as d:
                out["flipped"] = d["flipped"]
        else:
            out["flipped"] = _flipped(pipeline, paths, out["found"])
            if flip_file:
                np.savez(flip_file, flipped=out["flipped"])
    return out


def _flipped(pipeline: FacePipeline, paths: list[Path], found: np.ndarray) -> np.ndarray:
    """Appearance of the mirrored aligned crop (for the flip-averaging experiment only)."""
    model = pipeline.zoo.get(APPEARANCE)
    out = np.zeros((len(paths), SFaceAppearance.DIM), np.float32)
    for i, path in enumerate(paths):
        if found[i]:
            pixels = decode_bytes(path.read_bytes()).pixels
            crop = model.align(pixels, pipeline.detect(pixels)[0])
            out[i] = model.appearance([cv2.flip(crop, 1)])[0]
    return out


def padded_rescues(pipeline: FacePipeline, paths: list[Path], border: int = 32) -> int:
    """How many of ``paths`` (missed as they are) YuNet finds after a black border is added."""
    n = 0
    for p in paths:
        px = decode_bytes(p.read_bytes()).pixels
        px = cv2.copyMakeBorder(px, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
        n += bool(pipeline.detect(px))
    return n


# ------------------------------------------------------------------------- training
def fit_fixed(x: np.ndarray, y: np.ndarray, c: float, balanced: bool):
    """Standardise -> logistic regression at a given C (``--reuse-c``): one fit, no search."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None,
                             tol=1e-4).fit(scaler.transform(x), y)
    clf.C_ = np.array([c])
    return scaler, None, clf, float("nan"), balanced


def fit_head(x: np.ndarray, y: np.ndarray, groups: np.ndarray, pca: int | None, multiclass: bool):
    """Standardise -> [PCA] -> logistic regression, C by grouped CV on (x, y) only.

    The scaler and PCA are unsupervised and fitted on all of ``x`` before the CV (they see no
    labels), so the CV only has to refit the logistic part at each C: LogisticRegressionCV
    walks the C path with warm starts, much cheaper than a grid of full pipelines."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    proj = None
    if pca:
        proj = PCA(n_components=pca, svd_solver="randomized", random_state=0).fit(z)
        z = proj.transform(z)
    counts = np.bincount(y)
    skewed = counts.min() / counts.sum() < (0.35 if not multiclass else 0.2)
    splits = list(GroupKFold(n_splits=FOLDS).split(z, y, groups))
    clf = LogisticRegressionCV(Cs=CS, cv=splits, scoring="balanced_accuracy", max_iter=3000,
                               class_weight="balanced" if skewed else None, n_jobs=1,
                               tol=1e-4).fit(z, y)
    scores = next(iter(clf.scores_.values())).mean(axis=0)  # (len(CS),) mean over folds
    return scaler, proj, clf, float(scores.max()), bool(skewed)


def to_linear_head(name: str, scaler, proj, clf, classes: tuple[str, ...] = ()) -> LinearHead:
    """Fold scaler, PCA and the logistic layer into mean/scale + one (d, k) map.

    z = (x - mean) / scale; PCA: p = (z - m) @ V.T; logit = p @ W.T + b
      = z @ (V.T @ W.T) + (b - m @ V.T @ W.T)."""
    w = clf.coef_.T.astype(np.float64)  # (d', k)
    b = clf.intercept_.astype(np.float64)
    if proj is not None:
        w_full = proj.components_.T @ w
        b = b - proj.mean_ @ w_full
        w = w_full
    link = "logistic"
    if classes:
        link = "softmax"
        if w.shape[1] == 1:  # sklearn stores one column for two classes; make it softmax-ready
            w, b = np.hstack([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2])
    return LinearHead(name=name, link=link, mean=scaler.mean_.astype(np.float32),
                      scale=scaler.scale_.astype(np.float32), weights=w.astype(np.float32),
                      bias=b.astype(np.float32), classes=classes)


def labels_for(definition: str, rows) -> np.ndarray:
    rule = celeba.LABELS[definition]
    return np.array([-1 if (v := rule(r)) is None else v for r in rows], int)


def held_out(head: LinearHead, definition: str, rows, feats: dict, test: np.ndarray) -> float:
    """Balanced accuracy on the held-out identities through the runtime code."""
    ext = celeba.Extracted(feats["found"][test], feats["appearance"][test], feats["score"][test])
    rows_t = [r for r, t in zip(rows, test) if t]
    res = celeba.rows_for({head.name: head}, {head.name: {"label": definition}}, rows_t, ext)
    return res[0]["value"], res[0]["n"], res[1:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--testdata", type=Path,
                    default=Path(os.environ.get("OPENIAI_TESTDATA", "../shared/faces")))
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder for the extracted features (extraction takes minutes)")
    ap.add_argument("--pca", type=int, default=0,
                    help="PCA components after standardising (0: none)")
    ap.add_argument("--experiments", action="store_true",
                    help="also print the feature-variant and flip comparisons")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--reuse-c", action="store_true",
                    help="take each head's label definition, C and class weighting from the "
                         "shipped appearance.json instead of the grouped-CV search (one fit per "
                         "head: minutes instead of an hour on a busy 2-core machine)")
    ap.add_argument("--search", action="append", default=[], choices=sorted(TARGETS),
                    help="with --reuse-c: still run the grouped-CV search for this head "
                         "(repeatable)")
    args = ap.parse_args(argv)
    import json

    reused = (json.loads((HEADS_DIR / f"{HEADS_NAME}.json").read_text())["results"]
              if args.reuse_c else None)

    testdata = args.testdata.resolve()
    rows = celeba.read_labels(testdata)
    pipeline = FacePipeline.from_settings(Settings.from_env())
    feats = extract_all(pipeline, testdata, rows, args.cache, args.experiments)
    found = feats["found"]
    identity = np.array([r["identity"] for r in rows])
    test = np.array([celeba.split_of(i) == "test" for i in identity])
    train = ~test & found
    missed = [r["file"] for r, f in zip(rows, found) if not f]
    print(f"{len(rows)} images, {len(set(identity[~test]))} train / {len(set(identity[test]))} "
          f"held-out identities; YuNet found no face in {len(missed)} "
          f"({int((~found & ~test).sum())} train, {int((~found & test).sum())} held out)"
          + (f"; with a 32 px black border it finds "
             f"{padded_rescues(pipeline, [celeba.image_path(testdata, r) for r in rows if r['file'] in set(missed)])}"
             if missed else ""), file=sys.stderr)

    x = feats["appearance"]
    heads, results = [], {}
    for name, definitions in TARGETS.items():
        best = None
        fixed = reused and name not in args.search
        if fixed:
            definitions = (reused[name]["label"],)
        for definition in definitions:
            y = labels_for(definition, rows)
            fit_rows = train & (y >= 0)
            multiclass = name == HAIR_COLOR
            if fixed:
                scaler, proj, clf, cv, skewed = fit_fixed(
                    x[fit_rows], y[fit_rows], reused[name]["C"],
                    reused[name]["class_weight_balanced"])
            else:
                scaler, proj, clf, cv, skewed = fit_head(x[fit_rows], y[fit_rows],
                                                        identity[fit_rows], args.pca or None,
                                                        multiclass)
            head = to_linear_head(name, scaler, proj, clf, HAIR_CLASSES if multiclass else ())
            value, n, extra = held_out(head, definition, rows, feats, test)
            print(f"{name:16s} {definition:36s} cv {cv:.3f}  held-out {value:.3f} (n={n}) "
                  f"C={float(np.ravel(clf.C_)[0]):.4g} class_weight_balanced={skewed} "
                  f"class rates {np.round(np.bincount(y[fit_rows]) / fit_rows.sum(), 2).tolist()}",
                  file=sys.stderr)
            for r in extra:
                print(f"    {r['attribute']:22s} recall {r['value']:.3f} (n={r['n']})",
                      file=sys.stderr)
            # The beard definitions are compared by CV on the train split, not by the test set.
            if best is None or fixed or cv > best[0]:
                best = (cv, head, {"label": definition, "balanced_accuracy": round(value, 4),
                                   "floor": celeba.FLOORS.get(name),
                                   "n": n, "cv_balanced_accuracy": None if fixed else round(cv, 4),
                                   "C": float(np.ravel(clf.C_)[0]), "class_weight_balanced": skewed,
                                   "n_train": int(fit_rows.sum())}
                        | ({"recall": {r["attribute"].split("/")[1]: round(r["value"], 4)
                                       for r in extra}} if extra else {}))
        heads.append(best[1])
        results[name] = best[2]

    manifest = {
        "command": "PYTHONPATH=. python tools/train_attribute_heads.py"
                   + (f" --pca {args.pca}" if args.pca else "") + (" --reuse-c" if reused else "")
                   + "".join(f" --search {s}" for s in args.search),
        "hyper_parameters": ("label definition, C and class weighting per head reused from the "
                             "previous appearance.json (chosen there by grouped 5-fold CV on the "
                             "train identities; --reuse-c), except by a new search for "
                             + (", ".join(args.search) or "none") if reused else
                             "grouped 5-fold CV on the train identities"),
        "features": "SFace appearance vector (openiai.vision.models.sface."
                    "SFaceAppearance.appearance): the int8 SFace file cut after conv_14, run "
                    f"on the aligned crop shrunk to {SFaceAppearance.SIZE} px; conv_12 pooled "
                    "2x2 (2048) + conv_14 pooled (1024)",
        "data": "CelebA-HQ, 5,000 128x128 crops with the 40 CelebA attributes "
                "($OPENIAI_TESTDATA/attributes/celeba_hq). CelebA is licensed for "
                "non-commercial research use only; these heads are derived from it.",
        "model": "per head: StandardScaler -> LogisticRegression (L2, lbfgs), C from "
                 f"logspace(-4, 0, {len(CS)}) by grouped {FOLDS}-fold CV (balanced accuracy), "
                 "class_weight balanced when a class is under 35% (hair: 20%); folded into "
                 "mean/scale + one linear map"
                 + (f"; PCA {args.pca} after standardising, folded in" if args.pca else ""),
        "split": "by identity: zlib.crc32(str(identity).encode()) % 10 < 7 -> train, else "
                 "held out; C chosen by 5-fold GroupKFold on train identities",
        "detection": {"images": len(rows), "no_face": len(missed), "no_face_files": missed},
        "metric": "balanced accuracy on held-out identities; an image without a detected face "
                  "counts as an error",
        "results": results,
    }
    if not args.no_save:
        path = save_heads(HEADS_NAME, heads, manifest)
        print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    if args.experiments:
        experiments(feats, rows, identity, train, test)
    return 0


def experiments(feats, rows, identity, train, test) -> None:
    """Variants behind the choices, on the held-out split: PCA sizes, parts of the vector,
    and mirrored crops (as extra training rows: free at run time; and averaged with the
    unmirrored vector at test time: a second SFace run per face)."""
    x = feats["appearance"]
    variants = {"all": {}, "pca256": {"pca": 256},
                "conv12": {"cols": SLICES["conv12"]}, "conv14": {"cols": SLICES["conv14"]}}
    if "flipped" in feats:
        variants |= {"flip-train": {"flip": "train"}, "flip-train+avg": {"flip": "avg"}}
    for name in ("eyeglasses", "hat", "smiling", "mouth_open", "beard", "bangs", "male"):
        definition = TARGETS[name][0]
        y = labels_for(definition, rows)
        fit = train & (y >= 0)
        line = []
        for v, opt in variants.items():
            cols = opt.get("cols", slice(None))
            xf, yf, gf = x[fit][:, cols], y[fit], identity[fit]
            xt = x
            if opt.get("flip"):
                xf = np.vstack([xf, feats["flipped"][fit]])
                yf, gf = np.r_[yf, yf], np.r_[gf, gf]
                if opt["flip"] == "avg":
                    xt = (x + feats["flipped"]) / 2
            scaler, proj, clf, _, _ = fit_head(xf, yf, gf, opt.get("pca"), False)
            head = to_linear_head(name, scaler, proj, clf)
            value = held_out(head, definition, rows, dict(feats, appearance=xt[:, cols]), test)[0]
            line.append(f"{v} {value:.3f}")
        print(f"{name:12s} " + "  ".join(line), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
