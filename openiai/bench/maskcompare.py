"""``openiai eval maskcompare``: CompareMaskFace on LFW with one face masked, and on real masks.

For every LFW image (the labelled person: the face nearest the centre, as the calibration
does) the server's own models compute, once, and cache (``--cache``):

* the face mesh, and from it a synthetic mask (:mod:`openiai.bench.synthetic_mask`: nose tip
  down to the chin, one of InspireFace's mask textures); the masked photo is detected again
  by YuNet, as a request with it would be;
* for the clean and the masked photo: SFace's whole-face embedding and appearance vector, the
  mask detector's answer (:func:`openiai.vision.masks.p_masks`), and the upper-face embedding
  (:mod:`openiai.vision.upper_face`) for each ``--variants`` row/fill.

Then, on LFW's pairs (pairs.txt: 10 folds; ``--pairs pairsDevTrain.txt`` for tuning) with
the first face of each pair masked and the second clean, it prints per comparison method the
10-fold accuracy, TAR at FAR 1e-3/1e-4 (FAR over every cross-identity masked-vs-clean pair of
the embedded images, ~82 M ordered pairs) and, for the method the server uses, TAR and
measured FAR at the documented scores 40/50/60. ``--write-table FILE`` writes the masked
score table (the impostor-cosine quantiles of the upper-face comparison) that
``openiai/vision/mask_calibration.json`` ships.

The real masked photos (``attributes/mask``: 644 with a mask, 569 without, no identities, so
every cross pair is taken as an impostor pair) give the served method's FAR at 40/50/60 on
masked-vs-unmasked and masked-vs-masked pairs, and how often the mask detector sends a real
masked face down the masked path. SPECIAL_CASES.csv's masked photos (InspireFace) have one
genuine pair: ``mask.png`` and its own crop ``crop_mask.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import ApiError
from ..actions.compare import MASKED_FACE_SCORE_THRESHOLD
from ..services.mask_compare import MASKED
from ..vision import masks, scores
from ..vision.image import decode_bytes
from ..vision.upper_face import FILL, ROW, occlude_lower
from . import evaluate
from .synthetic_mask import draw_mask

DEFAULT_VARIANTS = ((ROW, FILL),)
PILOT_VARIANTS = ((64, 0), (72, 0), (72, 128), (80, 0))
FARS = (0.5, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
MIN_TAIL_PAIRS = 100
# The masked table's 1e-5 anchor: folds 1-3 of pairs.txt give 5.4 M masked-vs-clean impostor
# pairs, 54 of them at 1e-5. Without the anchor, score 60 would sit on the straight line to
# cosine 1 (measured: FAR 4e-7 and TAR 58 % at 60); with it, 60 means what the docs say, from
# a tail of 54 pairs (about +-30 %).
MIN_TAIL_PAIRS_MASKED = 50
REAL_MASK = "insightface/inspireface_test_res/data/bulk/mask.png"
REAL_MASK_CROP = "insightface/inspireface_test_res/data/crop/crop_mask.png"


def _decode(path: Path) -> np.ndarray:
    data = Path(path).read_bytes()
    try:
        return decode_bytes(data).pixels
    except ApiError:  # measured anyway (the API would refuse it; counted by the caller)
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _face(pipe, pixels: np.ndarray, policy: str, retry: float = evaluate.RETRY_SCORE_THRESHOLD):
    """(face, status) as evaluate.embed_file picks it (the real-mask run retries at
    CompareMaskFace's own threshold instead)."""
    h, w = pixels.shape[:2]
    faces, status = pipe.detect(pixels, min_face_size=34, max_faces=10), evaluate.OK
    if not faces:
        faces = pipe.detect(pixels, min_face_size=34 if retry >= 0.5 else 20, max_faces=10,
                            score_threshold=retry)
        status = evaluate.LOW_THRESHOLD
    faces = evaluate.pick_face(faces, h, w, policy)
    if not faces:
        return evaluate.centred_face(h, w), evaluate.CENTRED
    return faces[0], status


def face_outputs(pipe, heads, pixels: np.ndarray, face, variants) -> dict[str, np.ndarray]:
    """Whole-face embedding, p(mask) and upper-face embeddings of one face."""
    emb = pipe.features_of([(pixels, face)], "3.0")
    appearance = pipe.appearance([(pixels, face)])
    crop = pipe.aligned_crop(pixels, face, "3.0")
    uppers = [occlude_lower(crop, row, fill) for row, fill in variants]
    upper = pipe.infer("sface", lambda m: m.embed(uppers), "embed")
    return {"full": emb[0], "p_mask": np.float32(masks.p_masks(appearance, heads)[0]),
            "upper": np.asarray(upper, np.float32)}


def measure_image(pipe, heads, path: Path, testdata: Path, variants, synthetic: bool = True,
                  policy: str = "centre") -> dict:
    pixels = _decode(path)
    # The real photos are detected as CompareMaskFace detects them (status 2: no face).
    face, status = _face(pipe, pixels, policy, evaluate.RETRY_SCORE_THRESHOLD if synthetic
                         else MASKED_FACE_SCORE_THRESHOLD)
    out = {"status": status}
    for k, v in face_outputs(pipe, heads, pixels, face, variants).items():
        out[f"clean_{k}"] = v
    if synthetic:
        mesh = pipe.mesh(pixels, face, iris=False)
        masked = draw_mask(pixels, mesh.xy, Path(path).name, testdata)
        mface, mstatus = _face(pipe, masked, policy)
        out["masked_status"] = mstatus
        for k, v in face_outputs(pipe, heads, masked, mface, variants).items():
            out[f"masked_{k}"] = v
    return out


def measure(paths: list[Path], testdata: Path, variants, cache: Path | None, workers: int = 2,
            synthetic: bool = True, policy: str = "centre") -> dict[str, np.ndarray]:
    keys = np.array([str(Path(p).resolve()) for p in paths])
    tag = np.array(json.dumps([list(v) for v in variants]) + f"|{synthetic}|{policy}"
                   + ("" if synthetic else f"|retry {MASKED_FACE_SCORE_THRESHOLD}"))
    if cache and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as d:
            if np.array_equal(d["keys"], keys) and str(d["tag"]) == str(tag):
                return {k: d[k] for k in d.files}
    from ..services.attributes import AttributeEstimator

    pipe = evaluate.face_pipeline()
    heads = AttributeEstimator(pipe).heads(masks.HEADS)
    rows: list[dict] = [None] * len(paths)  # type: ignore[list-item]
    t0 = time.perf_counter()
    with evaluate.progress_bar() as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        task = bar.add_task("masked LFW" if synthetic else "mask photos", total=len(paths))
        for i, r in enumerate(pool.map(lambda p: measure_image(pipe, heads, p, testdata, variants,
                                                               synthetic, policy), paths)):
            rows[i] = r
            bar.advance(task)
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    out.update(keys=keys, tag=tag, seconds=np.float64(time.perf_counter() - t0))
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **out)
    return out


# ------------------------------------------------------------------------------ impostors
def cross_blocks(x: np.ndarray, y: np.ndarray, ids_x: np.ndarray | None, ids_y: np.ndarray | None,
                 block: int = 1024, same_set: bool = False):
    """Cosines x[i] . y[j] of every ordered pair of different identities (``ids`` None: all
    pairs, i != j when ``same_set``), block by block; yields (rows, cols, cosines)."""
    for s in range(0, len(x), block):
        e = min(len(x), s + block)
        sims = x[s:e] @ y.T
        keep = np.ones(sims.shape, bool)
        if ids_x is not None:
            keep &= ids_x[s:e, None] != ids_y[None, :]
        if same_set:
            keep[np.arange(e - s), np.arange(s, e)] = False
        yield s, e, sims, keep


class Tail:
    """Impostor scores: the count, a random sample (for FAR >= 1e-1) and every value above the
    sample's 98th percentile (exact quantiles for FAR <= 1e-2)."""

    def __init__(self, sample: np.ndarray) -> None:
        self.floor = float(np.quantile(sample, 0.98))
        self.sample = sample
        self.n = 0
        self.top: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        self.n += values.size
        self.top.append(values[values >= self.floor])

    def finish(self) -> "Tail":
        self.tail = np.sort(np.concatenate(self.top))[::-1]
        return self

    def threshold(self, far: float) -> tuple[float, int]:
        """The value with a fraction ``far`` of impostors at or above it, and that count."""
        k = int(round(far * self.n))
        if k <= len(self.tail):
            return float(self.tail[max(k, 1) - 1]), k
        return float(np.quantile(self.sample, 1 - far)), k

    def far_at(self, t: float) -> float:
        if t >= self.floor:
            return float((self.tail >= t).sum()) / self.n
        return float((self.sample >= t).mean())


def impostor_tail(x, y, ids, same_set=False, seed=0) -> Tail:
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), 400_000)
    j = rng.integers(0, len(y), 400_000)
    ok = ids[i] != ids[j]
    tail = Tail(np.einsum("ij,ij->i", x[i[ok]], y[j[ok]]))
    for _s, _e, sims, keep in cross_blocks(x, y, ids, ids, same_set=same_set):
        tail.add(sims[keep])
    return tail.finish()


def table_rows(tail: Tail, min_pairs: int = MIN_TAIL_PAIRS) -> list[dict]:
    rows = []
    for far in FARS:
        t, k = tail.threshold(far)
        if k >= min_pairs:
            rows.append({"far": far, "cosine": round(t, 6), "pairs_at_or_above": k})
    return rows


# ------------------------------------------------------------------------------ served scores
def served_scores(full: np.ndarray, upper: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """What CompareMaskFace answers for pairs with these whole-face and upper-face cosines,
    where ``masked`` says whether either face was found masked."""
    return np.where(masked, scores.score_from_cosine(upper, "3.0", table="mask"),
                    scores.score_from_cosine(full, "3.0"))


def accuracy(c: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float, float]:
    """10-fold accuracy (evaluate.ten_fold_accuracy); a one-fold pairs file (pairsDevTrain)
    gets two folds by pair order, so the threshold is never picked on the pairs it scores."""
    if len(np.unique(folds)) < 2:
        folds = np.arange(len(c)) % 2
    return evaluate.ten_fold_accuracy(c, same, folds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai eval maskcompare", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=None, help="LFW folder (default $OPENIAI_TESTDATA/lfw)")
    ap.add_argument("--pairs", default="pairs.txt", help="pairs file inside the LFW folder")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("bench/out/maskcompare_lfw.npz"))
    ap.add_argument("--pilot", action="store_true",
                    help=f"compare upper-face variants {PILOT_VARIANTS} on the pairs' images only")
    ap.add_argument("--limit", type=int, default=None, help="only the first N pairs of each kind")
    ap.add_argument("--folds", type=int, default=None,
                    help="only the first N folds of the pairs and their images (a shorter run; "
                         "without it every LFW image is measured, ~1 s each on a busy machine)")
    ap.add_argument("--write-table", type=Path, default=None,
                    help="write the masked score table (mask_calibration.json format) here")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    testdata = evaluate.testdata_dir()
    lfw = evaluate.lfw_dir(args.lfw)
    pairs = evaluate.read_pairs(lfw / args.pairs, lfw)
    if args.limit:
        pairs = [p for p in pairs if p.same][:args.limit] + [p for p in pairs if not p.same][:args.limit]
    if args.folds:
        pairs = [p for p in pairs if p.fold < args.folds]
    variants = PILOT_VARIANTS if args.pilot else DEFAULT_VARIANTS
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    if not args.pilot and not args.limit and not args.folds:
        paths = sorted(set(paths) | set(evaluate.all_images(lfw)))
    cache = args.cache
    if args.pilot or args.limit or args.folds:
        cache = cache.with_name(cache.stem + f"_{args.pairs.split('.')[0]}_{len(paths)}_{len(variants)}.npz")
    d = measure(paths, testdata, variants, cache, args.workers)
    print(f"{len(paths)} LFW images, {float(d['seconds']):.0f} s to measure "
          f"({1000 * float(d['seconds']) / len(paths):.0f} ms/image: mesh, mask, detect, 2x SFace + "
          f"{len(variants)}x2 upper, 2x mask detector)")
    print(f"masked photos where YuNet found no face at its default threshold: "
          f"{int((d['masked_status'] > 0).sum())} (centred fallback {int((d['masked_status'] == 2).sum())})")
    print(f"mask detector, p >= 0.5: synthetic masked {100 * (d['masked_p_mask'] >= 0.5).mean():.1f} %, "
          f"clean {100 * (d['clean_p_mask'] >= 0.5).mean():.2f} %")
    index = {p: i for i, p in enumerate(paths)}
    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    ids = evaluate.merge_aliases(paths)

    def cos(x, y):
        return np.einsum("ij,ij->i", x[ia], y[ib])

    methods = {"clean vs clean, whole face (CompareFace)": (d["clean_full"], d["clean_full"]),
               "masked vs clean, whole face": (d["masked_full"], d["clean_full"]),
               "masked vs masked, whole face": (d["masked_full"], d["masked_full"])}
    for v, (row, fill) in enumerate(variants):
        methods[f"masked vs clean, upper face (row {row}, fill {fill})"] = (d["masked_upper"][:, v], d["clean_upper"][:, v])
        methods[f"clean vs clean, upper face (row {row}, fill {fill})"] = (d["clean_upper"][:, v], d["clean_upper"][:, v])
        methods[f"masked vs masked, upper face (row {row}, fill {fill})"] = (d["masked_upper"][:, v], d["masked_upper"][:, v])
    rows: list[tuple[str, str]] = []
    tails = {}
    for name, (x, y) in methods.items():
        c = cos(x, y)
        acc, std, _ = accuracy(c, same, folds)
        tail = impostor_tail(x, y, ids, same_set=x is y)
        tails[name] = tail
        tars = []
        for far in (1e-3, 1e-4):
            t, _ = tail.threshold(far)
            tars.append(f"TAR@{far:g} {100 * (c[same] >= t).mean():.2f} %")
        rows.append((name, f"acc {100 * acc:.2f} % +- {100 * std:.2f}; " + "; ".join(tars)
                     + f" ({tail.n} impostor pairs)"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.pilot:
        return 0
    up = f"masked vs clean, upper face (row {ROW}, fill {FILL})"
    table = table_rows(tails[up], MIN_TAIL_PAIRS_MASKED)
    if args.write_table:
        out = {"about": "Impostor-cosine quantiles of the upper-face comparison (vision/upper_face.py) "
                        "of a synthetically masked LFW face against a clean one; see openiai/bench/maskcompare.py.",
               "dataset": f"LFW deep-funneled, {len(paths)} images, masked vs clean, every ordered "
                          f"cross-identity pair",
               "row": ROW, "fill": FILL, "impostor_pairs": tails[up].n,
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "anchors": table}
        args.write_table.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.write_table}")
    report_served(d, ia, ib, same, folds, ids)
    report_real(testdata, args.workers, args.cache)
    return 0


def report_served(d, ia, ib, same, folds, ids) -> None:
    """The server's method on the pairs: upper face when either face is found masked."""
    cf, cu = d["clean_full"], d["clean_upper"][:, 0]
    pm, pc = d["masked_p_mask"] >= MASKED, d["clean_p_mask"] >= MASKED
    print("\nAs served (upper face and the masked table when the mask detector finds a mask on "
          "either face, else the whole face and CompareFace's table):")
    for label, xf, xu, mx in (("masked vs clean", d["masked_full"], d["masked_upper"][:, 0], pm),
                              ("clean vs clean", cf, cu, pc)):
        full = np.einsum("ij,ij->i", xf[ia], cf[ib])
        up = np.einsum("ij,ij->i", xu[ia], cu[ib])
        flags = mx[ia] | pc[ib]
        s = served_scores(full, up, flags)
        acc, std, thr = accuracy(s, same, folds)
        far = served_far(xf, cf, xu, cu, mx, pc, ids, ids)
        tars = "; ".join(f"@{t}: TAR {100 * (s[same] >= t).mean():.2f} % FAR {far[t]:.2e}"
                         for t in far)
        print(f"  {label}: {100 * flags.mean():.1f} % of pairs on the masked path; 10-fold accuracy "
              f"{100 * acc:.2f} % +- {100 * std:.2f} (mean threshold score {thr:.1f}); {tars}")


def served_far(xf, yf, xu, yu, mx, my, idx, idy, thresholds=(40, 50, 60)) -> dict[int, float]:
    """Measured FAR of the served score over every ordered pair of different ids."""
    counts = dict.fromkeys(thresholds, 0)
    n = 0
    for s in range(0, len(xf), 1024):
        e = min(len(xf), s + 1024)
        keep = idx[s:e, None] != idy[None, :]
        full = (xf[s:e] @ yf.T)[keep]
        up = (xu[s:e] @ yu.T)[keep]
        m = np.broadcast_to(mx[s:e, None] | my[None, :], keep.shape)[keep]
        sc = served_scores(full, up, m)
        n += sc.size
        for t in thresholds:
            counts[t] += int((sc >= t).sum())
    return {t: counts[t] / max(n, 1) for t in thresholds}


def report_real(testdata: Path, workers: int, cache: Path) -> None:
    root = testdata / "attributes" / "mask"
    with_mask = sorted(p for p in (root / "with_mask").iterdir() if p.is_file())
    without = sorted(p for p in (root / "without_mask").iterdir() if p.is_file())
    paths = with_mask + without
    d = measure(paths, testdata, DEFAULT_VARIANTS, cache.with_name("maskcompare_real.npz"), workers,
                synthetic=False, policy="largest")
    found = d["status"] != evaluate.CENTRED
    masked = np.arange(len(paths)) < len(with_mask)
    print(f"\nReal masks: CompareMaskFace finds a face in {100 * found[masked].mean():.1f} % of the "
          f"masked and {100 * found[~masked].mean():.1f} % of the unmasked photos (default "
          f"threshold, then {MASKED_FACE_SCORE_THRESHOLD}); the others answer NoFaceInPhoto and "
          f"are left out below")
    d = {k: (v[found] if k not in ("keys", "tag", "seconds") else v) for k, v in d.items()}
    masked = masked[found]
    paths = [p for p, f in zip(paths, found) if f]
    with_mask = [p for p in with_mask if p in set(paths)]
    without = [p for p in without if p in set(paths)]
    p = d["clean_p_mask"] >= MASKED
    print(f"Real masks (attributes/mask: {len(with_mask)} with, {len(without)} without; no "
          f"identities, every cross pair counted as an impostor): the mask detector finds a mask on "
          f"{100 * p[masked].mean():.1f} % of the masked and {100 * p[~masked].mean():.1f} % of "
          f"the unmasked photos")
    f, u, ids = d["clean_full"], d["clean_upper"][:, 0], np.arange(len(paths))
    for label, sx, sy in (("masked vs unmasked", masked, ~masked), ("masked vs masked", masked, masked)):
        far = served_far(f[sx], f[sy], u[sx], u[sy], p[sx], p[sy], ids[sx], ids[sy])
        print(f"  {label}: served FAR " + ", ".join(f"@{t} {v:.2e}" for t, v in far.items()))
    special = [testdata / REAL_MASK, testdata / REAL_MASK_CROP]
    g = measure(special, testdata, DEFAULT_VARIANTS, None, 1, synthetic=False, policy="largest")
    flag = bool((g["clean_p_mask"] >= MASKED).any())
    cos = float(g["clean_upper"][0, 0] @ g["clean_upper"][1, 0]) if flag else \
        float(g["clean_full"][0] @ g["clean_full"][1])
    print(f"  SPECIAL_CASES genuine pair (mask.png vs its crop crop_mask.png): masked path {flag}, "
          f"score {float(served_scores(np.array(cos), np.array(cos), np.array(flag))):.1f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
