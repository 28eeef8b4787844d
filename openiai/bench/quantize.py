"""``openiai quantize``: build the int8 SFace recognizer from the float one, reproducibly.

    openiai quantize [--out DIR] [--calibration 256]

Static int8 quantisation with onnxruntime (``quantize_static``) of the graph as the server
runs it (PRelu rewritten, :func:`openiai.vision.onnx_graph.rewrite_prelu`): QDQ format,
per-channel symmetric int8 weights in 7 bits (``reduce_range``), uint8 activations whose ranges
are the MinMax of SFace's activations on ``--calibration`` aligned face crops. The 7-bit weights
are onnxruntime's advice for CPUs without VNNI: their u8 x s8 instruction (``vpmaddubsw``) adds
two products into a saturating 16-bit sum, which full 8-bit weights overflow (measured here,
AVX2 without VNNI, on 64 CelebA-HQ crops: median float-vs-int8 cosine 0.91 with 8-bit weights,
0.98 with 7). The choice is measured, not copied: QOperator format instead of QDQ was faster
(0.80 x float against 0.90 x) but lost more (median cosine 0.93). The crops are the first CelebA-HQ images (labels.csv
order) of *train* identities that YuNet finds a face in, aligned exactly as a request's face
(so no LFW image, on which the recognizer is evaluated, calibrates it). The input is the
verified float graph (the ``sface`` file with its block-quantised weights folded), so the same
onnxruntime version rebuilds the same bytes: the sha256 the zoo checks
(``openiai.vision.models.sface.INT8_FILE``) is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..core.settings import Settings

OUT_NAME = "face_recognition_sface_2021dec_int8static.onnx"


def calibration_crops(testdata: Path, n: int, pipeline) -> np.ndarray:
    """(n, 112, 112, 3) uint8 aligned crops of CelebA-HQ train identities (file order)."""
    from ..vision.image import decode_bytes
    from .attribute_data import celeba_hq

    crops = []
    for item in celeba_hq(testdata):
        if not item.train:
            continue
        pixels = decode_bytes(item.path.read_bytes()).pixels
        faces = pipeline.detect(pixels)
        if faces:
            crops.append(pipeline.zoo.get("sface").align(pixels, faces[0]))
        if len(crops) == n:
            break
    return np.stack(crops)


def blob(crops: np.ndarray) -> np.ndarray:
    """SFace's input layout (n, 3, 112, 112) float32 RGB 0..255 from BGR crops."""
    return np.ascontiguousarray(np.asarray(crops)[:, :, :, ::-1].transpose(0, 3, 1, 2),
                                dtype=np.float32)


def build(out: Path, crops: np.ndarray, float_path: Path) -> Path:
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..vision.onnx_graph import fold_dequantization, make_dynamic, rewrite_prelu

    # PRelu has no int8 kernel: left as it is, each one runs in float between a
    # DequantizeLinear and a QuantizeLinear, and those 27 float passes made the int8 network
    # 1.77x slower than the float one. Rewritten first, they quantise into int8 depthwise
    # convolutions and adds like the rest.
    model = make_dynamic(rewrite_prelu(fold_dequantization(onnx.load(str(float_path)))),
                         {0: "batch"})
    input_name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: blob(crops[i:i + 16])}
                                 for i in range(0, len(crops), 16)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        folded, pre, quantized = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(model, str(folded))
        quant_pre_process(str(folded), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(quantized), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, reduce_range=True,
                        calibrate_method=CalibrationMethod.MinMax)
        out.parent.mkdir(parents=True, exist_ok=True)
        _store_raw(quantized, out)
    return out


def _store_raw(path: Path, out: Path) -> None:
    """Every initializer's values as ``raw_data``. Whether a constant copied from the float
    file (its input Sub's 127.5) keeps its typed ``float_data`` field or becomes raw bytes
    differs between onnx / onnxruntime releases: the same graph, other bytes, another sha256.
    One storage keeps the digest reproducible across them. Written to ``out``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for t in model.graph.initializer:
        if not t.HasField("raw_data"):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    onnx.save(model, str(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai quantize", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="folder to write the int8 file into (default: the package's shipped "
                         "models folder)")
    ap.add_argument("--calibration", type=int, default=256, help="calibration crops")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    from ..services.faces import FacePipeline
    from ..vision.models import ModelZoo
    from ..vision.models.files import sha256_of, shipped_models

    settings = Settings.from_env()
    pipeline = FacePipeline(ModelZoo(settings.model_dir, 1, inference="float"))
    crops = calibration_crops(settings.testdata_dir, args.calibration, pipeline)
    out = build((args.out or shipped_models()) / OUT_NAME, crops, pipeline.zoo.path("sface"))
    print(f"wrote {out} ({out.stat().st_size} bytes) from {len(crops)} calibration crops; "
          f"sha256 {sha256_of(out)}")
    return 0
