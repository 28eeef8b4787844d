"""Measure a recognizer's impostor-cosine distribution on LFW and write its score table.

Every LFW image (9,056) is embedded once through the production pipeline
(:func:`openiai.bench.evaluate.embed_files`); the cosines of all cross-identity pairs
(~41 M) form the impostor distribution. For each FAR f in 0.5 .. 1e-6 the table stores the
cosine c_f such that a fraction f of the impostor pairs have cosine >= c_f. A FAR is kept
only if at least MIN_TAIL_PAIRS impostor pairs lie at or above it, so the anchor is measured,
not extrapolated. :mod:`openiai.vision.scores` turns these anchors into the score map.

    python -m openiai.bench.calibrate [--model-version 2.0|3.0] [--lfw DIR] [--cache FILE.npz]

``--model-version`` picks the recognizer (3.0: SFace, ``calibration.json``; 2.0: dlib's ResNet,
``calibration_dlib_resnet.json``: :func:`openiai.vision.scores.calibration_path`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

import numpy as np

from openiai.bench import evaluate
from openiai.core import versions
from openiai.bench.evaluate import face_pipeline
from openiai.vision import scores
from openiai.vision.models.files import sha256_of

FARS = (0.5, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# An anchor needs this many impostor pairs above it. At 1e-6 LFW offers 41 pairs, most of
# them label noise (evaluate.ALIASES), so that anchor is left out rather than fitted to errors.
MIN_TAIL_PAIRS = 100


def impostor_cosines(emb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.concatenate(list(evaluate.impostor_blocks(emb, ids)))


def build_table(impostors: np.ndarray, min_tail_pairs: int = MIN_TAIL_PAIRS) -> list[dict]:
    desc = np.sort(impostors)[::-1]
    n = len(desc)
    rows = []
    for far in FARS:
        k = int(round(far * n))  # the k-th largest cosine: `k` impostors at or above it
        if k < min_tail_pairs:
            continue
        rows.append({"far": far, "cosine": round(float(desc[k - 1]), 6), "pairs_at_or_above": k})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=None, help="LFW folder (default $OPENIAI_TESTDATA/lfw)")
    ap.add_argument("--workers", type=int, default=2, help="images embedded concurrently")
    ap.add_argument("--cache", type=Path, default=None, help=".npz embedding cache (shared with eval)")
    ap.add_argument("--model-version", choices=versions.names(), default=versions.DEFAULT,
                    help="FaceModelVersion whose recognizer is calibrated (default %(default)s)")
    ap.add_argument("--sample", type=int, default=None,
                    help="calibrate on the images of this many pairs.txt pairs (seeded sample, as "
                         "eval lfw --sample) instead of every LFW image")
    ap.add_argument("--min-tail-pairs", type=int, default=MIN_TAIL_PAIRS,
                    help="impostor pairs an anchor needs above it (default %(default)s)")
    # The shipped table decides every Score the server answers: replacing it is never a side
    # effect of trying the tool, only of asking for it by name.
    dest = ap.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", type=Path, help="write the score table to this file")
    dest.add_argument("--replace-shipped", action="store_true",
                      help="overwrite the shipped table of the version's recognizer")
    args = ap.parse_args(argv)
    recognizer = versions.get(args.model_version).recognizer
    if args.replace_shipped:
        args.out = scores.calibration_path(recognizer)
    lfw = evaluate.lfw_dir(args.lfw)
    paths = (evaluate.pair_images(evaluate.sample_pairs(evaluate.read_pairs(lfw / "pairs.txt", lfw), args.sample))
             if args.sample else evaluate.all_images(lfw))
    if not paths:
        print(f"no LFW images under {lfw}", file=sys.stderr)
        return 2
    # Centre face, not largest: the labelled person (see evaluate.pick_face).
    emb, status, seconds = evaluate.embed_files(paths, args.workers, args.cache, "calibrating", policy="centre",
                                              model_version=args.model_version)
    ids = evaluate.merge_aliases(paths)
    imp = impostor_cosines(emb, ids)
    rows = build_table(imp, args.min_tail_pairs)
    zoo = face_pipeline().zoo
    det, rec = zoo.path("yunet"), zoo.path(recognizer)
    table = {
        "about": "Impostor-cosine quantiles of the recognizer on LFW; see openiai/vision/scores.py.",
        "recognizer": rec.name,
        "recognizer_sha256": sha256_of(rec),
        "detector": det.name,
        "dataset": f"LFW deep-funneled, {len(paths)} images, {int(ids.max()) + 1} identities "
                   f"({len(evaluate.ALIASES)} LFW name aliases merged); face nearest the centre"
                   + (f"; the images of {args.sample} seeded pairs.txt pairs" if args.sample else ""),
        "impostor_pairs": int(len(imp)),
        "impostor_cosine_mean": round(float(imp.mean()), 6),
        "impostor_cosine_std": round(float(imp.std()), 6),
        "images_without_detection": int((status > 0).sum()),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "anchors": rows,
    }
    scores.anchors(args.model_version, table)  # refuse to write a non-monotone table
    args.out.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    for row in rows:
        print(f"FAR {row['far']:<7g} cosine >= {row['cosine']:.4f}  ({row['pairs_at_or_above']} pairs)")
    print(f"{len(imp)} impostor pairs from {len(paths)} images; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
