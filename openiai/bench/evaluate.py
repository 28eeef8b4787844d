"""``openiai eval lfw``: the LFW verification protocol through the production engine code.

Every image goes through exactly what a request does: :func:`openiai.vision.image.decode_bytes`
-> ``engine.detect`` (largest face, MinFaceSize 34, as the API; ``--face centre`` picks the
labelled person instead, see :func:`pick_face`) -> ``engine.features``. When YuNet finds
no face at its default threshold the image is retried at score 0.3, and if that also fails
the face is assumed to be centred (LFW images are centred crops) and the 5-point template is
placed on the central half of the image. Both fallbacks are counted and printed, so a
regression in detection shows up as a number rather than as a crash.

Reported: 10-fold accuracy (threshold picked on 9 folds, tested on the 10th), TAR at FAR
1e-3 / 1e-4 over the 3,000 impostor pairs of pairs.txt, TAR at the calibrated scores 40 / 50 /
60 (whose FARs come from ~40 M cross-identity pairs), the FAR actually measured at those
scores on all cross-identity pairs of the 9,056 images, and throughput.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openiai.vision.align import TEMPLATE
from openiai.core import versions
from openiai.core.settings import Settings
from openiai.services.faces import FacePipeline
from openiai.vision.models import DEFAULT_SCORE_THRESHOLD
from openiai.vision.types import Face

OK, LOW_THRESHOLD, CENTRED = 0, 1, 2
RETRY_SCORE_THRESHOLD = 0.3


def face_pipeline() -> FacePipeline:
    """The server's face pipeline, configured from the environment as the server would be."""
    return FacePipeline.from_settings(Settings.from_env())


def testdata_dir() -> Path:
    return Settings.from_env().testdata_dir


def lfw_dir(root: Path | None = None) -> Path:
    return Path(root) if root else testdata_dir() / "lfw"


def image_path(lfw: Path, name: str, number: int) -> Path:
    return lfw / "images" / name / f"{name}_{int(number):04d}.jpg"


@dataclass
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def read_pairs(path: Path, lfw: Path) -> list[Pair]:
    """pairs.txt (``10\\t300`` header, folds of same then different) or pairsDevTest.txt."""
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    header = lines[0]
    if len(header) == 2:
        folds, per = int(header[0]), int(header[1])
    else:
        folds, per = 1, int(header[0])
    pairs = []
    for k, parts in enumerate(lines[1:]):
        fold = min(k // (2 * per), folds - 1)
        if len(parts) == 3:
            pairs.append(Pair(image_path(lfw, parts[0], parts[1]), image_path(lfw, parts[0], parts[2]), True, fold))
        else:
            pairs.append(Pair(image_path(lfw, parts[0], parts[1]), image_path(lfw, parts[2], parts[3]), False, fold))
    return pairs


def sample_pairs(pairs: list[Pair], n: int | None) -> list[Pair]:
    """The first ``n`` pairs of a seeded shuffle (all when ``n`` is None), in file order: a
    smaller sample is part of a larger one, so one embedding cache serves both. For a
    recognizer too slow to embed all of LFW here (dlib's ResNet: ~0.12 CPU-s a face)."""
    if not n or n >= len(pairs):
        return list(pairs)
    order = list(range(len(pairs)))
    random.Random(0).shuffle(order)
    return [pairs[i] for i in sorted(order[:n])]


def pair_images(pairs: list[Pair]) -> list[Path]:
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


def all_images(lfw: Path) -> list[Path]:
    return sorted((lfw / "images").glob("*/*.jpg"))


def centred_face(h: int, w: int) -> Face:
    side = 0.5 * min(h, w)
    x0, y0 = (w - side) / 2, (h - side) / 2
    lm = TEMPLATE / 112.0 * side + np.array([x0, y0], np.float32)
    return Face(box=np.array([x0, y0, side, side], np.float32), score=0.0, landmarks=lm.astype(np.float32))


def pick_face(faces: list[Face], h: int, w: int, policy: str) -> list[Face]:
    """'largest' (what the API does) or 'centre': the face nearest the image centre among
    those at least half as tall as the largest. LFW images are centred on the labelled person,
    and in photos with two people the largest face is sometimes the other one, which would
    put genuine "same person" pairs into the impostor set."""
    if not faces or policy == "largest":
        return faces[:1]
    tallest = max(f.box[3] for f in faces)
    big = [f for f in faces if f.box[3] >= 0.5 * tallest]
    centre = np.array([w / 2, h / 2])
    return [min(big, key=lambda f: float(np.linalg.norm(f.box[:2] + f.box[2:] / 2 - centre)))]


def embed_file(engine, path: Path, policy: str = "largest",
               model_version: str = versions.DEFAULT) -> tuple[np.ndarray, int]:
    from openiai.vision.image import decode_bytes

    pixels = decode_bytes(Path(path).read_bytes()).pixels
    h, w = pixels.shape[:2]
    many = 1 if policy == "largest" else 10
    faces, status = engine.detect(pixels, min_face_size=34, max_faces=many), OK
    if not faces:
        faces = engine.detect(pixels, min_face_size=34, max_faces=many,
                              score_threshold=RETRY_SCORE_THRESHOLD)
        status = LOW_THRESHOLD
    faces = pick_face(faces, h, w, policy)
    if not faces:
        faces, status = [centred_face(h, w)], CENTRED
    return engine.feature(pixels, faces[0], model_version), status


def progress_bar():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )


def embed_files(
    paths: list[Path], workers: int = 2, cache: Path | None = None, label: str = "embedding", policy: str = "largest",
    model_version: str = versions.DEFAULT, engine: FacePipeline | None = None,
):
    """(n, dim) embeddings under ``model_version``, per-image fallback status, seconds; `cache`
    (.npz) skips recomputation when it was written by the same recognizer file (float and int8
    SFace are one version but two files: OPENIAI_INFERENCE). ``engine``: the server's pipeline
    from the environment unless given."""
    engine = engine or face_pipeline()  # models load lazily: cheap until something runs
    recognizer_file = engine.zoo.path(versions.get(model_version).recognizer).name
    keys = np.array([str(Path(p).resolve()) for p in paths])
    if cache and Path(cache).is_file():
        data = np.load(cache, allow_pickle=False)
        index = {k: i for i, k in enumerate(data["paths"])}
        cached_version = str(data["version"]) if "version" in data.files else versions.DEFAULT
        if ("policy" in data.files and str(data["policy"]) == policy and cached_version == model_version
                and "recognizer" in data.files and str(data["recognizer"]) == recognizer_file
                and all(k in index for k in keys)):
            sel = np.array([index[k] for k in keys], dtype=np.int64)
            return data["emb"][sel], data["status"][sel], float(data["seconds"]) * len(keys) / len(data["paths"])
    engine.warmup(("yunet", versions.get(model_version).recognizer))
    emb = np.zeros((len(paths), versions.get(model_version).dim), np.float32)
    status = np.zeros(len(paths), np.int8)
    start = time.perf_counter()
    with progress_bar() as bar, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        task = bar.add_task(label, total=len(paths))
        for i, (vec, st) in enumerate(pool.map(lambda p: embed_file(engine, p, policy, model_version), paths)):
            emb[i], status[i] = vec, st
            bar.advance(task)
    seconds = time.perf_counter() - start
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, paths=keys, emb=emb, status=status, seconds=np.float64(seconds), policy=np.str_(policy),
                 version=np.str_(model_version), recognizer=np.str_(recognizer_file))
    return emb, status, seconds


# LFW files some people under two names; their cross-"identity" pairs are genuine, not
# impostors. Found by listing the identity pairs with the most cosines above 0.45.
ALIASES = (
    ("Choi_Sung-hong", "Sung_Hong_Choi"),
    ("Joseph_Blatter", "Sepp_Blatter"),
    ("Mireya_Elisa_Moscoso_Rodriguez", "Mireya_Moscoso"),
    ("John_Gruden", "Jon_Gruden"),
    ("Nan_Wang", "Wang_Nan"),
    ("Hasan_Wirayuda", "Hassan_Wirajuda"),
    ("Chyung_Dai-chul", "Dai_Chul_Chyung"),
)


def cached_embeddings(cache: Path, paths: list[Path]) -> np.ndarray:
    """The embeddings of ``paths`` from an ``embed_files`` cache, which must hold them all."""
    data = np.load(cache, allow_pickle=False)
    index = {k: i for i, k in enumerate(data["paths"])}
    keys = [str(Path(p).resolve()) for p in paths]
    missing = [k for k in keys if k not in index]
    if missing:
        raise SystemExit(f"{cache} lacks {len(missing)} of the {len(keys)} images, e.g. {missing[0]}")
    return data["emb"][np.array([index[k] for k in keys], dtype=np.int64)]


def _recognizer_of(cache: Path) -> str:
    data = np.load(cache, allow_pickle=False)
    return str(data["recognizer"]) if "recognizer" in data.files else "recognizer file not recorded"


def merge_aliases(paths: list[Path]) -> np.ndarray:
    """Identity ids with each alias pair counted as one person."""
    canon = {b: a for a, b in ALIASES}
    names = [canon.get(Path(p).parent.name, Path(p).parent.name) for p in paths]
    _, ids = np.unique(names, return_inverse=True)
    return ids


def identities(paths: list[Path]) -> np.ndarray:
    names = [Path(p).parent.name for p in paths]
    _, ids = np.unique(names, return_inverse=True)
    return ids


def impostor_blocks(emb: np.ndarray, ids: np.ndarray, block: int = 1024,
                    other: np.ndarray | None = None):
    """Yield the cosines of all cross-identity pairs i < j, block by block (float32); with
    ``other`` (the same images embedded another way), image i from ``emb`` against image j
    from ``other``."""
    n = len(emb)
    other = emb if other is None else other
    for s in range(0, n, block):
        e = min(n, s + block)
        sims = emb[s:e] @ other[s:].T  # rows s..e against columns s..n
        rows = np.arange(s, e)[:, None]
        cols = np.arange(s, n)[None, :]
        mask = (cols > rows) & (ids[s:e, None] != ids[None, s:])
        yield sims[mask]


def ten_fold_accuracy(cos: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float, float]:
    """Mean/std of per-fold accuracy and the mean threshold (cosine)."""
    accs, thrs = [], []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        c, s = cos[train], same[train]
        order = np.argsort(c)
        c, s = c[order], s[order]
        # accuracy of "same iff cos > t" for t between consecutive sorted values
        diff_below = np.concatenate([[0], np.cumsum(~s)])  # impostors at or below each cut
        same_above = np.concatenate([[s.sum()], s.sum() - np.cumsum(s)])
        correct = diff_below + same_above
        best = int(np.argmax(correct))
        cuts = np.concatenate([[c[0] - 1e-6], (c[:-1] + c[1:]) / 2, [c[-1] + 1e-6]])
        t = cuts[best]
        thrs.append(t)
        accs.append(float(((cos[test] > t) == same[test]).mean()))
    return float(np.mean(accs)), float(np.std(accs)), float(np.mean(thrs))


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """TAR and the cosine threshold where at most `far` of the impostors pass (cos > t)."""
    imp = np.sort(impostor)[::-1]
    k = int(np.floor(far * len(imp)))
    t = float(imp[k]) if k < len(imp) else float(imp[-1])
    return float((genuine > t).mean()), t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai eval lfw", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=None, help="LFW folder (default $OPENIAI_TESTDATA/lfw)")
    ap.add_argument("--pairs", default="pairs.txt", help="pairs file inside the LFW folder")
    ap.add_argument("--workers", type=int, default=2, help="images embedded concurrently")
    ap.add_argument("--cache", type=Path, default=None, help=".npz embedding cache (shared with calibrate)")
    ap.add_argument("--against", type=Path, default=None,
                    help="another run's --cache: score this run's images (side A) against that "
                         "run's (side B), e.g. int8 probes against a float gallery")
    ap.add_argument("--no-impostors", action="store_true", help="skip the all-pairs impostor FAR check")
    ap.add_argument("--model-version", choices=versions.names(), default=versions.DEFAULT,
                    help="FaceModelVersion whose recognizer is evaluated (default %(default)s)")
    ap.add_argument("--sample", type=int, default=None,
                    help="use only this many pairs (seeded sample, as calibrate --sample) and "
                         "their images, also for the all-pairs impostor FAR")
    ap.add_argument("--face", choices=("largest", "centre"), default="largest",
                    help="which detected face represents an image: the API's choice (largest) or LFW's labelled person (centre)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lfw"]:  # `openiai eval lfw ...` may pass its subcommand through
        argv = argv[1:]
    args = ap.parse_args(argv)
    lfw = lfw_dir(args.lfw)
    pairs = read_pairs(lfw / args.pairs, lfw)
    version = versions.get(args.model_version)
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    if not args.no_impostors:
        paths = sorted(set(paths) | set(all_images(lfw)))
    if args.sample:  # the sampled pairs' images stand for LFW, impostors included
        pairs = sample_pairs(pairs, args.sample)
        paths = pair_images(pairs)
    engine = face_pipeline()
    emb, status, seconds = embed_files(paths, args.workers, args.cache, policy=args.face,
                                       model_version=version.name, engine=engine)
    # Side B of every pair (and column j of every impostor pair) from another run's cache:
    # what a gallery enrolled in one arithmetic answers to probes of another.
    emb_b = emb if args.against is None else cached_embeddings(args.against, paths)
    index = {p: i for i, p in enumerate(paths)}
    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    cos = np.einsum("ij,ij->i", emb[ia], emb_b[ib])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])

    from openiai.vision import scores

    acc, std, thr = ten_fold_accuracy(cos, same, folds)
    gen, imp = cos[same], cos[~same]
    rows: list[tuple[str, str]] = [
        ("dataset", f"{lfw} ({args.pairs}: {same.sum()} same + {(~same).sum()} different pairs)"),
        *([("side B of every pair", f"from {args.against} ({_recognizer_of(args.against)})")]
          if args.against else []),
        ("images embedded", f"{len(paths)} (no face at score {DEFAULT_SCORE_THRESHOLD}: {int((status > 0).sum())}; "
                            f"found at {RETRY_SCORE_THRESHOLD}: {int((status == LOW_THRESHOLD).sum())}; centred fallback: {int((status == CENTRED).sum())})"),
        ("pipeline", f"decode -> YuNet, {args.face} face (MinFaceSize 34) -> FaceModelVersion {version.name}: "
                     f"{version.recognizer} = {engine.zoo.path(version.recognizer).name} "
                     "(its own alignment)"),
        ("threads", f"{args.workers} workers x OPENIAI_ORT_THREADS={Settings.from_env().ort_threads}"),
        ("throughput", f"{len(paths) / seconds:.1f} images/s ({1000 * seconds / len(paths):.1f} ms/image wall)"),
        ("10-fold accuracy", f"{100 * acc:.2f} % +- {100 * std:.2f} (mean threshold cos {thr:.3f} = score {scores.score_from_cosine(thr, version.name):.1f})"),
    ]
    for far in (1e-3, 1e-4):
        tar, t = tar_at_far(gen, imp, far)
        rows.append((f"TAR @ FAR {far:g} ({len(imp)} pairs)", f"{100 * tar:.2f} % (cos > {t:.3f})"))
    for far in (1e-3, 1e-4, 1e-5):
        score = version.anchor_scores[far]
        t = scores.cosine_for_score(score, version.name)
        rows.append((f"TAR @ score {score:g} (cos {t:.3f}, calibrated FAR {far:g})",
                     f"{100 * (gen >= t).mean():.2f} %; FAR on pairs.txt impostors {100 * (imp >= t).mean():.3f} %"))
    if not args.no_impostors:
        all_idx = np.array([index[p] for p in paths])
        e, e_b, ids = emb[all_idx], emb_b[all_idx], merge_aliases([paths[i] for i in all_idx])
        table = {version.anchor_scores[f]: f for f in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6) if f in version.anchor_scores}
        thresholds = {s: scores.cosine_for_score(s, version.name) for s in table}
        counts = dict.fromkeys(thresholds, 0)
        total = 0
        for block in impostor_blocks(e, ids, other=e_b):
            total += block.size
            for s, t in thresholds.items():
                counts[s] += int((block >= t).sum())
        for s in thresholds:
            rows.append((f"FAR @ score {s:g} (table: {table[s]:g})",
                         f"{counts[s] / total:.2e} ({counts[s]} of {total} cross-identity pairs)"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
