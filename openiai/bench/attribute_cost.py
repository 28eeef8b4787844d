"""``openiai bench attributes``: what face attributes cost per face, model by model.

Runs the server's attribute estimator (:class:`openiai.services.attributes.AttributeEstimator`)
on LFW faces with every family on, after one warm-up pass, and prints milliseconds per face for
each source (SFace appearance + heads, age, gender, expression, mask, mesh + iris), their
total, and detection alone for comparison. Single request at a time, ``--threads`` onnxruntime
threads per model (default 1, the server's default).
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2

from ..core.settings import Settings
from ..services.attributes import FAMILIES, AttributeEstimator
from ..services.faces import FacePipeline
from ..vision.models import ModelZoo


def measure(faces: int = 100, threads: int = 1, testdata=None) -> dict[str, float]:
    settings = Settings.from_env()
    root = (testdata or settings.testdata_dir) / "lfw" / "images"
    pipeline = FacePipeline(ModelZoo(settings.model_dir, threads))
    estimator = AttributeEstimator(pipeline)
    paths = sorted(root.glob("*/*_0001.jpg"))[: faces + 1]
    timings: dict[str, float] = {}
    detect = 0.0
    counted = 0
    for i, path in enumerate(paths):
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        started = time.perf_counter()
        found = pipeline.detect(pixels)
        took = time.perf_counter() - started
        if not found:
            continue
        if i == 0:  # warm-up: loads every model, not counted
            estimator.estimate(pixels, found, set(FAMILIES))
            continue
        detect += took
        estimator.estimate(pixels, found, set(FAMILIES), timings)
        counted += 1
    per_face = {k: 1000.0 * v / max(counted, 1) for k, v in timings.items()}
    per_face["all attribute models"] = sum(per_face.values())
    per_face["detection (for comparison)"] = 1000.0 * detect / max(counted, 1)
    per_face["faces"] = counted
    return per_face


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench attributes",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=100, help="LFW faces to time")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    from rich.console import Console
    from rich.table import Table

    result = measure(args.faces, args.threads)
    table = Table(title=f"Attribute cost per face ({int(result.pop('faces'))} LFW faces, "
                        f"{args.threads} thread(s) per model)")
    table.add_column("source")
    table.add_column("ms / face", justify="right")
    for name, ms in result.items():
        table.add_row(name, f"{ms:.2f}")
    Console().print(table)
    return 0
