"""MiniFASNet V2 + V1SE (minivision Silent-Face-Anti-Spoofing, Apache-2.0): single-image
liveness, the two-scale ensemble.

Two small nets look at the same face at two context sizes: V2 at 2.7x the face box (skin
texture, moire, print grain) and V1SE at 4.0x (the face with its surroundings: paper edges,
screen bezels, fingers). Each takes an 80x80 BGR crop as raw 0..255 floats and answers a
softmax over 3 classes (1 = real face, 0 and 2 = attacks). Facts from the upstream repository
(`../shared/models/MODELS.md`); the code is ours.

The nets were trained on boxes of another detector, so the crop is re-tuned on YuNet boxes
(:data:`CROPS`, measured by ``tools/train_liveness.py``) and their softmax is not the final
answer: :meth:`MiniFASNet.features` returns, per view, each net's 128-d embedding (the batch
-normalised layer before the classifier, exposed as an extra graph output) and its three
probabilities, and a linear head trained on the shared liveness sets reads them
(:mod:`openiai.services.liveness`).

One zoo entry holds both nets because they are only meaningful together (the head reads both):
the V2 file is this class's :data:`FILE`, the V1SE file is looked for in the same folder first
(the operator's model directory when the V2 file came from there), then in the shipped folder,
and is refused unless its sha256 matches, like every zoo file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx

from ..onnx_graph import create_session
from ..types import Face
from .files import ModelFile, locate, shipped_models, verify

SOURCE = ("MiniFASNetV2 (2.7x) + MiniFASNetV1SE (4.0x), minivision-ai/Silent-Face-Anti-Spoofing"
          "@b6d5f04a, Apache-2.0, converted to ONNX")
FILE = ModelFile(
    names=("2.7_80x80_MiniFASNetV2.onnx",),
    bundled=shipped_models,
    source=SOURCE,
    sha256={"2.7_80x80_MiniFASNetV2.onnx":
            "4f2d96a2659ec7141967d8b4010b15f2ee3d7fbe858f1e14d32ce2bcb6ae3ed7"},
)
FILE_SE = ModelFile(
    names=("4_0_0_80x80_MiniFASNetV1SE.onnx",),
    bundled=shipped_models,
    source=SOURCE,
    sha256={"4_0_0_80x80_MiniFASNetV1SE.onnx":
            "6135156ec6cfd83d35e070e70d5ea0e2110b2b65c52303b47c2f4b2663103928"},
)

INPUT = 80
EMBEDDING = "bn"  # name prefix of the (n, 128) batch-normalised layer before the classifier
EMBED_DIM = 128
CLASSES = 3
REAL = 1  # class index of a real face


@dataclass(frozen=True)
class Crop:
    """How one net's 80x80 crop is cut around a YuNet face box.

    ``scale`` multiplies the box about its centre; ``square`` first widens the box to its
    height (YuNet's boxes are ~0.8x as wide as tall, upstream's detector gave squarer boxes);
    ``shift`` moves the centre down by that fraction of the box height (YuNet's box starts at
    the brows, upstream's at the hairline)."""

    scale: float
    square: bool = False
    shift: float = 0.0


# Upstream: 2.7 for V2, 4.0 for V1SE on its own detector's boxes. Re-measured on YuNet boxes
# (`tools/train_liveness.py --grid`: scales 2.0/3.2, 2.2/3.6, 2.7/4.0, 3.2/4.8, square or
# not, shifted 0 or 0.1): with the trained head every candidate scored NUAA held-out AUC
# 0.971-0.972 and phone-capture AUC 0.931-0.950, the upstream geometry the best on the phone
# captures; NUAA's pictures are tight face crops, so every scale is clipped to the whole
# picture there. The differences are within the sets' noise, so upstream's geometry stays.
CROPS = (Crop(2.7), Crop(4.0))


def crop(pixels: np.ndarray, box, geometry: Crop) -> np.ndarray:
    """The (80, 80, 3) uint8 BGR crop of ``box`` (x, y, w, h) under ``geometry``.

    As upstream: the scaled box is shrunk (keeping its aspect) until it fits the image, then
    shifted to lie inside it, so a face near the border or filling the picture is seen with
    as much context as exists instead of black padding (padding would itself look like an
    attack's edge)."""
    img_h, img_w = pixels.shape[:2]
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2.0, y + h / 2.0 + geometry.shift * h
    if geometry.square:
        w = max(w, h)
    scale = min(geometry.scale, (img_h - 1) / max(h, 1.0), (img_w - 1) / max(w, 1.0))
    cw, ch = w * scale, h * scale
    x0 = min(max(cx - cw / 2.0, 0.0), img_w - 1 - cw)
    y0 = min(max(cy - ch / 2.0, 0.0), img_h - 1 - ch)
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    x1, y1 = int(round(x0 + cw)), int(round(y0 + ch))
    patch = pixels[int(round(y0)):y1 + 1, int(round(x0)):x1 + 1]
    return cv2.resize(patch, (INPUT, INPUT), interpolation=cv2.INTER_LINEAR)


def _session(path: Path, threads: int):
    """A session that also returns the embedding layer (for the head)."""
    model = onnx.load(str(path))
    names = [n.output[0] for n in model.graph.node
             if n.op_type == "BatchNormalization" and n.output[0].startswith(EMBEDDING + "_")]
    if len(names) != 1:
        raise ValueError(f"{path.name}: expected one '{EMBEDDING}_*' layer, found {names}")
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(names[0], onnx.TensorProto.FLOAT, None))
    return create_session(model, {0: "batch"}, threads)


class MiniFASNet:
    """Both nets; :meth:`features` runs each net once on all views of all faces."""

    NAME = "minifasnet"
    FILE = FILE
    VIEW_DIM = 2 * (EMBED_DIM + CLASSES)

    def __init__(self, path, threads: int = 1):
        self.path = Path(path)
        se_path = locate(FILE_SE, self.path.parent)
        verify(se_path, FILE_SE)
        self.se_path = se_path
        self.sessions = (_session(self.path, threads), _session(se_path, threads))

    def run(self, net: int, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Net ``net`` (0 = V2, 1 = V1SE) on 80x80 BGR crops: ((n, 128) embeddings, (n, 3)
        probabilities)."""
        session = self.sessions[net]
        blob = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)
        prob, emb = session.run(None, {session.get_inputs()[0].name: blob})
        return emb.astype(np.float32), prob.astype(np.float32)

    def features(self, pixels: np.ndarray, faces: list[Face], flips: bool = False,
                 crops: tuple[Crop, Crop] = CROPS) -> np.ndarray:
        """(len(faces), views, VIEW_DIM): per face and view, [V2 embedding, V2 probabilities,
        V1SE embedding, V1SE probabilities]. Views: the crop, plus its mirror with ``flips``
        (a spoof cue is not left/right-handed, so the mirror is a second opinion for free)."""
        views = 2 if flips else 1
        parts = []
        for net, geometry in enumerate(crops):
            batch = []
            for face in faces:
                c = crop(pixels, face.box, geometry)
                batch.append(c)
                if flips:
                    batch.append(c[:, ::-1])
            emb, prob = self.run(net, batch)
            parts += [emb, prob]
        out = np.concatenate(parts, axis=1)
        return out.reshape(len(faces), views, self.VIEW_DIM)

    @staticmethod
    def p_real(view_features: np.ndarray) -> np.ndarray:
        """Upstream's answer for comparison: the mean of the two nets' P(real)."""
        v = np.asarray(view_features)
        v2 = v[..., EMBED_DIM + REAL]
        se = v[..., 2 * EMBED_DIM + CLASSES + REAL]
        return (v2 + se) / 2.0

    def warmup(self) -> None:
        pixels = np.zeros((128, 128, 3), np.uint8)
        face = Face(box=np.array([32, 32, 64, 64], np.float32), score=1.0,
                    landmarks=np.zeros((5, 2), np.float32))
        self.features(pixels, [face])
