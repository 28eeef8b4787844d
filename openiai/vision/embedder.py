"""SFace recognizer on onnxruntime: aligned 112x112 crops -> unit 128-d embeddings.

Pre-processing as ``cv::FaceRecognizerSF::feature``: ``blobFromImage(crop, 1, (112,112),
0, swapRB=true)``, i.e. RGB order, raw 0..255 values (the graph normalises itself).
"""

from __future__ import annotations

import numpy as np

from openiai.vision import models

EMBEDDING_DIM = 128


class SFace:
    """One SFace model file; ``embed`` runs all crops of a request in one session call."""

    def __init__(self, path=None):
        path = path or models.find_model(models.RECOGNIZER_FILES)
        self.session = models.create_session(path, {0: "batch"})
        self.input_name = self.session.get_inputs()[0].name

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        batch = np.stack([np.asarray(c, dtype=np.uint8) for c in crops])  # (n, 112, 112, 3) BGR
        if batch.shape[1:] != (112, 112, 3):
            raise ValueError(f"SFace needs (112, 112, 3) crops, got {batch.shape[1:]}.")
        blob = np.ascontiguousarray(batch[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
        feats = self.session.run(None, {self.input_name: blob})[0].astype(np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)
