"""``openiai bench engine``: ms per face of the detector and the recognizer, float vs int8.

Runs on ``--images`` LFW images (default 200: every n-th of the sorted file list, the same
images each run): decode, YuNet detection (largest face), alignment, then the SFace recognizer
in each arithmetic (``float``: the calibrated build; ``int8``: the ``openiai quantize`` build)
one face per call, as a single request does. The paths are timed in alternating rounds
(``--rounds``) so that a busy machine slows both alike; each figure is the median over
images of the per-image median over rounds. Also printed: the cosine between the float and
int8 embedding of each face (how far apart the two feature sets are), and the
face_recognition (dlib) library on the same images when it is installed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..core.settings import Settings


def lfw_sample(testdata: Path, n: int) -> list[Path]:
    paths = sorted((Path(testdata) / "lfw" / "images").glob("*/*.jpg"))
    step = max(1, len(paths) // max(n, 1))
    return paths[::step][:n]


def _ms(fn, rounds: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times)), out


def measure(images: int = 200, rounds: int = 3, threads: int = 1, testdata=None) -> dict:
    from ..services.faces import FacePipeline
    from ..vision.image import decode_bytes
    from ..vision.models import ModelZoo

    settings = Settings.from_env()
    paths = lfw_sample(testdata or settings.testdata_dir, images)
    zoos = {mode: ModelZoo(settings.model_dir, threads, inference=mode) for mode in ("float", "int8")}
    pipeline = FacePipeline(zoos["float"])
    recognizers = {mode: zoo.get("sface") for mode, zoo in zoos.items()}
    for r in recognizers.values():
        r.warmup()
    pipeline.detect(decode_bytes(paths[0].read_bytes()).pixels)  # loads and warms YuNet
    rows: dict[str, list[float]] = {k: [] for k in ("decode", "detect", "align", "float", "int8")}
    cosines = []
    for path in paths:
        data = path.read_bytes()
        ms, pixels = _ms(lambda: decode_bytes(data).pixels, 1)
        rows["decode"].append(ms)
        ms, faces = _ms(lambda: pipeline.detect(pixels), rounds)
        rows["detect"].append(ms)
        if not faces:
            continue
        ms, crop = _ms(lambda: recognizers["float"].align(pixels, faces[0]), 1)
        rows["align"].append(ms)
        per_mode: dict[str, list[float]] = {"float": [], "int8": []}
        emb = {}
        for _ in range(rounds):  # alternate: a busy machine slows both alike
            for mode, rec in recognizers.items():
                ms, emb[mode] = _ms(lambda rec=rec: rec.embed([crop]), 1)
                per_mode[mode].append(ms)
        for mode in per_mode:
            rows[mode].append(float(np.median(per_mode[mode])))
        cosines.append(float(emb["float"][0] @ emb["int8"][0]))
    out = {k: float(np.median(v)) if v else float("nan") for k, v in rows.items()}
    out["faces"] = len(rows["float"])
    out["images"] = len(paths)
    cos = np.array(cosines)
    out["cosine"] = {"min": float(cos.min()), "p1": float(np.percentile(cos, 1)),
                     "median": float(np.median(cos))} if len(cos) else {}
    out["face_recognition"] = _face_recognition(paths, rounds=1)
    return out


def _face_recognition(paths: list[Path], rounds: int) -> str:
    """ms per image of face_recognition (dlib HOG detector + ResNet encoder), if installed."""
    try:
        import face_recognition  # noqa: F401 (optional, benchmark only)
    except ImportError:
        return ("not installed: the face_recognition library needs dlib, which PyPI ships "
                "only as a source build (CMake + a C++ compile), not installed for this benchmark")
    times = []
    for p in paths:
        img = face_recognition.load_image_file(str(p))
        t = time.perf_counter()
        face_recognition.face_encodings(img)
        times.append(time.perf_counter() - t)
    return f"{1000 * float(np.median(times)):.1f} ms per image (detect + encode, median)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench engine", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200, help="LFW images")
    ap.add_argument("--rounds", type=int, default=3, help="timed runs per face and path")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    ap.add_argument("--large", action="store_true",
                    help="only the large-photo comparison: decode + detection before/after "
                         "reduced-size decoding (openiai/bench/large_photos.py)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.large:
        from . import large_photos

        large_photos.report(large_photos.measure(Settings.from_env().testdata_dir, args.rounds))
        return 0
    r = measure(args.images, args.rounds, args.threads)
    print(f"{r['images']} LFW images, {r['faces']} faces, {args.threads} onnxruntime thread(s), "
          f"median of {args.rounds} alternating rounds")
    print(f"{'stage':<28}{'float ms':>10}{'int8 ms':>10}")
    print(f"{'decode (per image)':<28}{r['decode']:>10.2f}{'-':>10}")
    print(f"{'detect YuNet (per image)':<28}{r['detect']:>10.2f}{'-':>10}  (no int8 detector: "
          "YuNet is already small)")
    print(f"{'align (per face)':<28}{r['align']:>10.2f}{'-':>10}")
    print(f"{'recognizer SFace (per face)':<28}{r['float']:>10.2f}{r['int8']:>10.2f}")
    total_f = r["decode"] + r["detect"] + r["align"] + r["float"]
    total_q = r["decode"] + r["detect"] + r["align"] + r["int8"]
    print(f"{'image -> feature':<28}{total_f:>10.2f}{total_q:>10.2f}  "
          f"({1000 / total_f:.1f} / {1000 / total_q:.1f} images/s on one core)")
    c = r["cosine"]
    if c:
        print(f"cosine(float, int8) of the same face: min {c['min']:.4f}, 1st percentile "
              f"{c['p1']:.4f}, median {c['median']:.4f}")
    print(f"face_recognition library: {r['face_recognition']}")
    return 0
