"""``openiai bench attributes``: what face attributes cost per face, model by model.

Runs the server's attribute estimator (:class:`openiai.services.attributes.AttributeEstimator`)
on LFW faces (the largest face of each ``*_0001.jpg``), after one warm-up pass, and prints
milliseconds per face for each source (SFace appearance run, age, gender, expression, face
mesh, iris, heads and rules) and their total, for every family on and for typical subsets
(:data:`SUBSETS`: DetectFace's attributes, a few DetectFaceAttributes requests). It also times
the whole ``DetectFace`` action (decode, detection, response) without and with
``NeedFaceAttributes``, and detection alone, per image.

All configurations run on each face in turn (the starting one rotating from face to face), so
a busy machine slows them alike; the title gives the load average before and after. One
request at a time, ``--threads`` onnxruntime threads per model (default 1, the server's).
``--compare-prelu`` adds every family on models loaded without the PRelu rewrite
(:func:`openiai.vision.onnx_graph.rewrite_prelu`), alternating with the rest: what it saves.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from types import SimpleNamespace

import cv2

from ..core.settings import Settings
from ..services.attributes import DETECT_FACE_FAMILIES, FAMILIES, AttributeEstimator
from ..services.faces import FacePipeline
from ..vision import onnx_graph
from ..vision.models import ModelZoo

EVERY = "every family"
PRELU_KEPT = "every family, PRelu kept"
# Label -> families. DetectFace's set needs every model; the others show what a narrower
# FaceAttributesType skips (only the sources its families name run).
SUBSETS: dict[str, frozenset[str]] = {
    EVERY: frozenset(FAMILIES),
    "DetectFace attributes": frozenset(DETECT_FACE_FAMILIES),
    "Age,Gender": frozenset({"Age", "Gender"}),
    "Emotion": frozenset({"Emotion"}),
    "Hat,Mask,Hair,Beauty": frozenset({"Hat", "Mask", "Hair", "Beauty"}),
    "Headpose": frozenset({"Headpose"}),
    "Eye": frozenset({"Eye"}),
}
SOURCES = ("appearance", "age", "gender", "expression", "mesh", "iris", "heads and rules")
TOTAL = "all attribute models"


def _faces(pipeline: FacePipeline, testdata, count: int) -> list[tuple[bytes, object, list]]:
    root = testdata / "lfw" / "images"
    out = []
    for path in sorted(root.glob("*/*_0001.jpg")):
        if len(out) > count:  # the first one is the warm-up
            break
        data = path.read_bytes()
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        found = pipeline.detect(pixels)
        if found:
            out.append((data, pixels, found[:1]))
    return out


def measure_subsets(faces: int = 100, threads: int = 1, testdata=None,
                    subsets: dict[str, frozenset[str]] | None = None,
                    detect_face: bool = True,
                    compare_prelu: bool = False) -> dict[str, dict[str, float]]:
    """Label -> source -> ms per face (plus TOTAL), for each subset; with ``detect_face``,
    also "DetectFace" -> {"without attributes", "with attributes", "detection alone"} in ms
    per image, and "faces" -> {"n": faces counted}; with ``compare_prelu``, also
    :data:`PRELU_KEPT` (every family on models loaded without the PRelu rewrite)."""
    from ..api.dispatch import dispatch

    settings = Settings.from_env()
    subsets = dict(subsets or SUBSETS)
    pipeline = FacePipeline(ModelZoo(settings.model_dir, threads))
    estimator = AttributeEstimator(pipeline)
    estimators = {label: estimator for label in subsets}
    if compare_prelu:
        subsets[PRELU_KEPT] = SUBSETS[EVERY]
        estimators[PRELU_KEPT] = _prelu_kept(settings, threads)
    # What the DetectFace handler reads of the services: the pipeline and the estimator.
    services = SimpleNamespace(faces=pipeline, attributes=estimator)
    items = _faces(pipeline, testdata or settings.testdata_dir, faces)
    timings: dict[str, dict[str, float]] = {label: {} for label in subsets}
    calls: dict[str, float] = {"without attributes": 0.0, "with attributes": 0.0,
                               "detection alone": 0.0}

    def call(data: bytes, flag: int) -> None:
        dispatch(services, 0, "2020-03-03", "DetectFace",
                 {"Image": base64.b64encode(data).decode(), "NeedFaceAttributes": flag})

    for i, (data, pixels, found) in enumerate(items):
        labels = list(subsets)
        k = i % len(labels)
        for label in labels[k:] + labels[:k]:
            estimators[label].estimate(pixels, found, set(subsets[label]),
                                       timings[label] if i else None)
        if not detect_face:
            continue
        runs = [("without attributes", lambda: call(data, 0)),
                ("with attributes", lambda: call(data, 1)),
                ("detection alone", lambda: pipeline.detect(pixels))]
        for name, run in runs[i % 3:] + runs[:i % 3]:
            started = time.perf_counter()
            run()
            if i:
                calls[name] += time.perf_counter() - started
    counted = max(len(items) - 1, 1)
    out: dict[str, dict[str, float]] = {}
    for label, seconds in timings.items():
        row = {s: 1000.0 * seconds[s] / counted for s in SOURCES if s in seconds}
        row[TOTAL] = sum(row.values())
        out[label] = row
    if detect_face:
        out["DetectFace"] = {k: 1000.0 * v / counted for k, v in calls.items()}
    out["faces"] = {"n": float(max(len(items) - 1, 0))}
    return out


def _prelu_kept(settings: Settings, threads: int) -> AttributeEstimator:
    """An estimator on its own zoo whose models load without the PRelu rewrite."""
    pipeline = FacePipeline(ModelZoo(settings.model_dir, threads))
    onnx_graph.REWRITE_PRELU = False
    try:
        for name in ("sface_appearance", "face_mesh", "iris", "age", "gender", "expression"):
            pipeline.zoo.get(name)
    finally:
        onnx_graph.REWRITE_PRELU = True
    return AttributeEstimator(pipeline)


def measure(faces: int = 100, threads: int = 1, testdata=None) -> dict[str, float]:
    """Every family on: source -> ms per face, TOTAL, detection for comparison, "faces"."""
    result = measure_subsets(faces, threads, testdata, {EVERY: SUBSETS[EVERY]})
    split = dict(result[EVERY])
    split["detection (for comparison)"] = result["DetectFace"]["detection alone"]
    split["faces"] = result["faces"]["n"]
    return split


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench attributes",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=100, help="LFW faces to time")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    ap.add_argument("--compare-prelu", action="store_true",
                    help="also every family on models loaded without the PRelu rewrite")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    from rich.console import Console
    from rich.table import Table

    load_before = os.getloadavg()[0]
    result = measure_subsets(args.faces, args.threads, compare_prelu=args.compare_prelu)
    load_after = os.getloadavg()[0]
    n = int(result.pop("faces")["n"])
    calls = result.pop("DetectFace")
    console = Console(width=max(Console().width, 120))
    table = Table(title=f"Attribute cost, ms per face ({n} LFW faces, {args.threads} thread(s) "
                        f"per model, load average {load_before:.1f} -> {load_after:.1f})")
    table.add_column("families")
    for source in SOURCES + (TOTAL,):
        table.add_column("heads, rules" if source == "heads and rules" else
                         "total" if source == TOTAL else source, justify="right")
    for label, row in result.items():
        table.add_row(label, *(f"{row[source]:.2f}" if source in row else "-"
                               for source in SOURCES + (TOTAL,)))
    console.print(table)
    table = Table(title="DetectFace, ms per image (decode, detection, response)")
    table.add_column("call")
    table.add_column("ms / image", justify="right")
    for name, ms in calls.items():
        table.add_row(name, f"{ms:.2f}")
    console.print(table)
    return 0
