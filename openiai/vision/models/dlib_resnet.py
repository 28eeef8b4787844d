"""dlib's ResNet face recognizer (Davis King, CC0 weights): the FaceModelVersion 2.0 recognizer.

Files: ``dlib_face_recognition_resnet_model_v1.dat`` (the 29-layer ResNet, 128-d descriptors,
99.38 % on LFW by its author's figure) and ``shape_predictor_5_face_landmarks.dat`` (dlib's
5-point predictor: both corners of each eye and the base of the nose), both CC0, carried by
the ``face_recognition_models`` package (``licenses/dlib-models.CC0``); they run on the
``dlib`` Python module (``dlib-bin``: the same library as a prebuilt wheel, Boost licence).

Alignment is dlib's own, as the network was trained with it: the 5-point predictor is run in a
box around the face and ``get_face_chip`` cuts the 150 x 150 chip (padding 0.25) from its
points. dlib's predictor starts from a box as dlib's HOG detector draws it; the server's faces
come from YuNet, so the box is placed from YuNet's 5 points with a fit measured on 379 LFW
faces that both detectors found (``BOX_*`` below: the HOG box centre sits 0.12 / 0.04
eye-to-mouth distances left of / above the centre of the eyes and mouth, and is 2.44 such
distances wide; ``tools/measure_dlib_box.py``). The box is set in the face's own frame (it
turns with the eye line), so the same face gives the same chip from the original photo or
from its stored canonical crop.

Descriptors are returned unit-length; scores are calibrated on their cosines
(``calibration_dlib_resnet.json``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..types import Face
from .files import ModelFile, locate, verify


def face_recognition_models_dir() -> Path:
    """The ``face_recognition_models`` wheel is only a carrier for dlib's model files. Found
    without importing it: its ``__init__`` imports ``pkg_resources``, which Python 3.12+ venvs
    do not have (no setuptools)."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face_recognition_models package is not installed "
                                "(pip install face_recognition_models==0.3.0)")
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "models"


FILE = ModelFile(
    names=("dlib_face_recognition_resnet_model_v1.dat",),
    bundled=face_recognition_models_dir,
    source="dlib face recognition ResNet v1 (Davis King, CC0-1.0), shipped in the "
           "face_recognition_models 0.3.0 wheel; run by dlib (Boost licence)",
    sha256={"dlib_face_recognition_resnet_model_v1.dat":
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"},
)
SHAPE_FILE = ModelFile(
    names=("shape_predictor_5_face_landmarks.dat",),
    bundled=face_recognition_models_dir,
    source="dlib 5-point shape predictor (Davis King, CC0-1.0), same wheel",
    sha256={"shape_predictor_5_face_landmarks.dat":
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"},
)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib HOG box from YuNet's points (medians over 379 LFW faces, tools/measure_dlib_box.py),
# in units of the eye-centre to mouth-centre distance, along / across the eye line.
BOX_ALONG = -0.117
BOX_ACROSS = -0.036
BOX_WIDTH = 2.44


def predictor_box(landmarks5: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the box dlib's 5-point predictor starts from."""
    pts = np.asarray(landmarks5, np.float64).reshape(5, 2)
    eyes, mouth = (pts[0] + pts[1]) / 2, (pts[3] + pts[4]) / 2
    dist = max(float(np.linalg.norm(mouth - eyes)), 1.0)
    along = pts[1] - pts[0]
    along = along / max(float(np.linalg.norm(along)), 1e-9)
    across = np.array([-along[1], along[0]])  # downward when the face is upright
    centre = (eyes + mouth) / 2 + dist * (BOX_ALONG * along + BOX_ACROSS * across)
    half = BOX_WIDTH * dist / 2
    return (int(round(centre[0] - half)), int(round(centre[1] - half)),
            int(round(centre[0] + half)), int(round(centre[1] + half)))


class DlibResNet:
    """The recognizer; ``embed`` runs all chips of a request in one batched dlib call."""

    NAME = "dlib_resnet"
    FILE = FILE
    DIM = 128
    CROP_SIZE = CHIP_SIZE

    def __init__(self, path, threads: int = 1):
        import dlib

        self.path = Path(path)
        shape_path = self._shape_file()
        self._dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(self.path))
        self.shapes = dlib.shape_predictor(str(shape_path))

    def _shape_file(self) -> Path:
        """The 5-point predictor beside the network (an operator's folder), else the wheel's."""
        path = locate(SHAPE_FILE, self.path.parent)
        verify(path, SHAPE_FILE)
        return path

    def align(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """dlib's 150 x 150 chip of the face, uint8 BGR (the server's pixel order)."""
        rgb = np.ascontiguousarray(np.asarray(pixels, np.uint8)[:, :, ::-1])
        shape = self.shapes(rgb, self._dlib.rectangle(*predictor_box(face.landmarks)))
        chip = self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.ascontiguousarray(np.asarray(chip)[:, :, ::-1])

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, 128) unit descriptors of aligned chips."""
        if len(crops) == 0:
            return np.zeros((0, self.DIM), np.float32)
        chips = []
        for c in crops:
            c = np.asarray(c, np.uint8)
            if c.shape != (CHIP_SIZE, CHIP_SIZE, 3):
                raise ValueError(f"dlib's ResNet needs ({CHIP_SIZE}, {CHIP_SIZE}, 3) chips, got {c.shape}.")
            chips.append(np.ascontiguousarray(c[:, :, ::-1]))
        feats = np.array([np.asarray(d) for d in self.net.compute_face_descriptor(chips)],
                         np.float32).reshape(len(chips), self.DIM)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def warmup(self) -> None:
        self.embed([np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8)])
