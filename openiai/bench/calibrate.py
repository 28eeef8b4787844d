"""Measure a recognizer's impostor-cosine distribution on LFW and write its score table.

Every LFW image (9,056) is embedded once through the production pipeline
(:func:`openiai.bench.evaluate.embed_files`); the cosines of all cross-identity pairs
(~41 M) form the impostor distribution. For each FAR f in 0.5 .. 1e-6 the table stores the
cosine c_f such that a fraction f of the impostor pairs have cosine >= c_f. A FAR is kept
only if at least MIN_TAIL_PAIRS impostor pairs lie at or above it, so the anchor is measured,
not extrapolated. :mod:`openiai.vision.scores` turns these anchors into the score map.

    python -m openiai.bench.calibrate [--model-version 2.0|3.0] [--lfw DIR] [--cache FILE.npz]

``--model-version`` picks the recognizer (3.0: SFace, ``calibration.json``; 2.0: dlib's ResNet,
``calibration_dlib_resnet.json``: :func:`openiai.vision.scores.calibration_path`), or an
operator's own version (``<data>/models/N.M.toml``, :mod:`openiai.vision.models.own`), whose
table is written where its config's ``calibration`` points unless ``--out`` says otherwise.

``--folders DIR`` calibrates on the operator's own labelled photos instead of LFW: ``DIR/<person>/
*.jpg`` (a folder per person; png, bmp, webp too). Each photo's largest face is embedded, as the
API would; photos without a face are skipped and counted. Cross-folder pairs are the impostors,
same-folder pairs the genuine ones (their TAR at each anchor is printed). An anchor at FAR f
needs ``--min-tail-pairs``/f impostor pairs: 100 at 1e-3 means 100,000 pairs (about 450 photos
of many people), 1e-5 ten million (about 4,500 photos); anchors the folders cannot measure are
left out and said so.
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
from openiai.core.settings import Settings, SettingsError
from openiai.services.faces import FacePipeline
from openiai.vision import scores
from openiai.vision.models.files import sha256_of

FARS = (0.5, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# An anchor needs this many impostor pairs above it. At 1e-6 LFW offers 41 pairs, most of
# them label noise (evaluate.ALIASES), so that anchor is left out rather than fitted to errors.
MIN_TAIL_PAIRS = 100
# --extrapolate fills anchors down to this FAR (3.0's score 60; the own versions' top anchor).
EXTRAPOLATE_TO = 1e-5
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def impostor_cosines(emb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.concatenate(list(evaluate.impostor_blocks(emb, ids)))


def genuine_cosines(emb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Cosines of all same-identity pairs i < j."""
    out = []
    for person in np.unique(ids):
        e = emb[ids == person]
        if len(e) > 1:
            sims = e @ e.T
            out.append(sims[np.triu_indices(len(e), 1)])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def folder_images(root: Path) -> tuple[list[Path], list[str]]:
    """(photos, person of each) of ``root/<person>/<photo>``, sorted."""
    paths, people = [], []
    for person in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for photo in sorted(person.iterdir()):
            if photo.suffix.lower() in IMAGE_SUFFIXES and photo.is_file():
                paths.append(photo)
                people.append(person.name)
    return paths, people


def embed_largest(pipeline: FacePipeline, path: Path, model_version: str) -> np.ndarray | None:
    """The feature of the photo's largest face (as the API picks it), None without a face."""
    from openiai.vision.image import decode_bytes

    try:
        pixels = decode_bytes(Path(path).read_bytes()).pixels
    except Exception:  # an unreadable photo is skipped like a photo without a face
        return None
    faces = pipeline.detect(pixels, min_face_size=34, max_faces=1)
    if not faces:
        faces = pipeline.detect(pixels, min_face_size=34, max_faces=1,
                                score_threshold=evaluate.RETRY_SCORE_THRESHOLD)
    return pipeline.feature(pixels, faces[0], model_version) if faces else None


def embed_with(pipeline: FacePipeline, paths: list[Path], model_version: str, workers: int,
               one) -> list:
    from concurrent.futures import ThreadPoolExecutor

    pipeline.warmup(("yunet", versions.get(model_version).recognizer))
    with evaluate.progress_bar() as bar, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        task = bar.add_task("calibrating", total=len(paths))
        out = []
        for result in pool.map(lambda p: one(pipeline, p, model_version), paths):
            out.append(result)
            bar.advance(task)
    return out


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


def extrapolate(impostors: np.ndarray, rows: list[dict], down_to: float = EXTRAPOLATE_TO) -> list[dict]:
    """``rows`` plus the FARs down to ``down_to`` that they lack, each at the cosine a normal
    distribution fitted to the impostor cosines (their mean and standard deviation) puts it,
    marked ``"extrapolated"``; kept above the measured anchors so the map stays increasing.
    For SFace on 30 LFW people x 4 photos (6,960 impostor pairs) this gave 0.3608 / 0.4151 /
    0.4624 at 1e-3 / 1e-4 / 1e-5, where all 41 M LFW pairs measure 0.3582 / 0.4146 / 0.4647.
    Another network's impostor tail may be heavier than a normal one: then the extrapolated
    anchors are too low and its scores there too generous."""
    from statistics import NormalDist

    mean, std = float(impostors.mean()), float(impostors.std())
    have = {r["far"] for r in rows}
    top = max((r["cosine"] for r in rows), default=-1.0)
    out = list(rows)
    for far in FARS:
        if far < down_to or far in have or (rows and far > min(have)):
            continue
        cosine = max(round(mean + std * NormalDist().inv_cdf(1.0 - far), 6), round(top + 1e-4, 6))
        top = cosine
        out.append({"far": far, "cosine": cosine,
                    "pairs_at_or_above": int((impostors >= cosine).sum()),
                    "extrapolated": f"normal fit (mean {mean:.4f}, std {std:.4f})"})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=None, help="LFW folder (default $OPENIAI_TESTDATA/lfw)")
    ap.add_argument("--folders", type=Path, default=None,
                    help="your own labelled photos instead of LFW: DIR/<person>/<photos>, a "
                         "folder per person")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="data directory whose models/N.M.toml define your own versions "
                         "(OPENIAI_DATA_DIR, default ./data)")
    ap.add_argument("--workers", type=int, default=2, help="images embedded concurrently")
    ap.add_argument("--cache", type=Path, default=None,
                    help=".npz embedding cache (shared with eval; LFW and built-in versions)")
    ap.add_argument("--model-version", default=versions.DEFAULT,
                    help="FaceModelVersion whose recognizer is calibrated: 2.0, 3.0 or one of "
                         "the data directory's own (default %(default)s)")
    ap.add_argument("--sample", type=int, default=None,
                    help="calibrate on the images of this many pairs.txt pairs (seeded sample, as "
                         "eval lfw --sample) instead of every LFW image")
    ap.add_argument("--min-tail-pairs", type=int, default=MIN_TAIL_PAIRS,
                    help="impostor pairs an anchor needs above it (default %(default)s)")
    ap.add_argument("--extrapolate", action="store_true",
                    help="fill the anchors too rare to measure (down to FAR 1e-5) from a normal "
                         "fit of the impostor cosines, marked extrapolated in the table")
    # The shipped table decides every Score the server answers: replacing it is never a side
    # effect of trying the tool, only of asking for it by name.
    dest = ap.add_mutually_exclusive_group()
    dest.add_argument("--out", type=Path, help="write the score table to this file (an own "
                      "version's default: where its config's calibration points)")
    dest.add_argument("--replace-shipped", action="store_true",
                      help="overwrite the shipped table of the version's recognizer")
    args = ap.parse_args(argv)
    try:
        # The data directory's own versions, installed even before their first table.
        # The shipped table is the float file's (its recognizer_sha256): int8 shares it, as
        # measured (README "Fast inference"), but is not what defines it.
        pipeline = FacePipeline.from_settings(
            Settings.from_env(data_dir=args.data_dir,
                              inference="float" if args.replace_shipped else None),
            require_tables=False)
        spec = versions.get(args.model_version)
    except (SettingsError, versions.UnknownModelVersion) as exc:
        print(f"openiai calibrate: {exc}", file=sys.stderr)
        return 2
    recognizer, own = spec.recognizer, spec.table is not None
    if args.replace_shipped and own:
        print(f"openiai calibrate: {spec.name} is your own version; its table goes where its "
              "config's calibration points (or --out), not over a shipped one", file=sys.stderr)
        return 2
    if args.replace_shipped:
        args.out = scores.calibration_path(recognizer)
    elif args.out is None and own:
        args.out = Path(spec.table)
    elif args.out is None:
        print("openiai calibrate: give --out FILE (or --replace-shipped)", file=sys.stderr)
        return 2
    if args.folders:
        if not args.folders.is_dir():
            print(f"openiai calibrate: --folders {args.folders} is not a folder", file=sys.stderr)
            return 2
        paths, people = folder_images(args.folders)
        if len(set(people)) < 2:
            print(f"openiai calibrate: {args.folders} needs photos in at least two person "
                  "folders (DIR/<person>/<photo>)", file=sys.stderr)
            return 2
        found = embed_with(pipeline, paths, spec.name, args.workers, embed_largest)
        keep = [i for i, f in enumerate(found) if f is not None]
        status = np.array([0 if f is not None else 1 for f in found], np.int8)
        emb = np.array([found[i] for i in keep], np.float32).reshape(len(keep), spec.dim)
        _, ids = np.unique([people[i] for i in keep], return_inverse=True)
        dataset = (f"{args.folders.resolve()}: {len(keep)} photos with a face of "
                   f"{len(set(people[i] for i in keep))} people (a folder per person); largest face")
    else:
        lfw = evaluate.lfw_dir(args.lfw)
        paths = (evaluate.pair_images(evaluate.sample_pairs(evaluate.read_pairs(lfw / "pairs.txt", lfw), args.sample))
                 if args.sample else evaluate.all_images(lfw))
        if not paths:
            print(f"no LFW images under {lfw}", file=sys.stderr)
            return 2
        # Centre face, not largest: the labelled person (see evaluate.pick_face).
        if own:  # embed_files builds the server's pipeline, which wants the table made here
            found = embed_with(pipeline, paths, spec.name, args.workers,
                               lambda pl, p, v: evaluate.embed_file(pl, p, "centre", v))
            emb = np.array([f[0] for f in found], np.float32)
            status = np.array([f[1] for f in found], np.int8)
        else:
            emb, status, _seconds = evaluate.embed_files(paths, args.workers, args.cache, "calibrating",
                                                         policy="centre", model_version=args.model_version,
                                                         engine=pipeline)
        ids = evaluate.merge_aliases(paths)
        dataset = (f"LFW deep-funneled, {len(paths)} images, {int(ids.max()) + 1} identities "
                   f"({len(evaluate.ALIASES)} LFW name aliases merged); face nearest the centre"
                   + (f"; the images of {args.sample} seeded pairs.txt pairs" if args.sample else ""))
    imp = impostor_cosines(emb, ids)
    gen = genuine_cosines(emb, ids)
    rows = build_table(imp, args.min_tail_pairs)
    if rows and args.extrapolate:
        rows = extrapolate(imp, rows)
    if not rows:
        print(f"openiai calibrate: only {len(imp)} impostor pairs; no FAR can be measured with "
              f"{args.min_tail_pairs} pairs above it (more people or photos, or a lower "
              "--min-tail-pairs)", file=sys.stderr)
        return 2
    det, rec = pipeline.zoo.path("yunet"), pipeline.zoo.path(recognizer)
    table = {
        "about": "Impostor-cosine quantiles of the recognizer; see openiai/vision/scores.py.",
        "recognizer": rec.name,
        "recognizer_sha256": sha256_of(rec),
        "detector": det.name,
        "dataset": dataset,
        "impostor_pairs": int(len(imp)),
        "genuine_pairs": int(len(gen)),
        "impostor_cosine_mean": round(float(imp.mean()), 6),
        "impostor_cosine_std": round(float(imp.std()), 6),
        "images_without_detection": int((status > 0).sum()),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "anchors": rows,
    }
    scores.anchors(spec.name, table)  # refuse to write a non-monotone table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    anchors = versions.get(spec.name).anchor_scores
    for row in rows:
        tar = f"  TAR {float((gen >= row['cosine']).mean()):.3f}" if len(gen) else ""
        how = "normal fit" if row.get("extrapolated") else f"{row['pairs_at_or_above']} pairs"
        print(f"FAR {row['far']:<7g} cosine >= {row['cosine']:.4f}  score {anchors.get(row['far'], '-')}"
              f"  ({how}){tar}")
    missing = [f for f in FARS if f not in {r["far"] for r in rows} and f in anchors]
    if missing:
        print(f"not measurable with {len(imp)} impostor pairs: FAR {', '.join(f'{f:g}' for f in missing)} "
              f"(scores {', '.join(f'{anchors[f]:g}' for f in missing)}); above the last anchor "
              "scores rise linearly to 100 and mean no measured FAR"
              + ("" if args.extrapolate else " (--extrapolate fills them from a normal fit)"))
    print(f"{len(imp)} impostor and {len(gen)} genuine pairs from {len(emb)} images "
          f"({int((status > 0).sum())} without a face{' skipped' if args.folders else ''}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
