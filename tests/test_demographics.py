"""Age, gender, expression and mask: model files, heads and plausible answers on real faces.

Fast (a handful of images, in-process pipeline). The held-out figures are measured by
``openiai.bench.demographics`` / ``expression`` / ``masks``, not here.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import TESTDATA

from openiai.bench.attribute_data import find_face
from openiai.bench.evaluate import face_pipeline
from openiai.services.attributes import AttributeEstimator
from openiai.vision.models import age_gender as ag
from openiai.vision.models.age_gender import AgeNet, GenderNet
from openiai.vision.models.expression import API_EMOTION_TYPE, CLASSES, Expression, api_emotion
from openiai.vision.models.files import locate, sha256_of
from openiai.vision.models.mask import MaskDetector, anchors
from openiai.vision.models.zoo import MODEL_CLASSES

NEW = (AgeNet, GenderNet, Expression, MaskDetector)


@pytest.fixture(scope="module")
def pipe():
    return face_pipeline()


@pytest.fixture(scope="module")
def estimator(pipe):
    return AttributeEstimator(pipe)


def _face(pipe, rel: str):
    pixels = cv2.imread(str(TESTDATA / rel), cv2.IMREAD_COLOR)
    assert pixels is not None, rel
    face, pixels, _ = find_face(pipe, pixels)
    assert face is not None, rel
    return pixels, face


@pytest.mark.parametrize("cls", NEW, ids=lambda c: c.NAME)
def test_model_file_is_the_measured_one(cls):
    assert MODEL_CLASSES[cls.NAME] is cls
    path = locate(cls.FILE, None)
    assert sha256_of(path) == cls.FILE.sha256[path.name]


def test_heads_load_with_their_digest(estimator):
    heads = estimator.heads("demographics")
    assert heads["age"].link == "identity" and heads["gender"].link == "logistic"


def test_chip_puts_template_points_where_dlib_does():
    # A synthetic face whose YuNet points sit exactly on the template: the chip matrix must
    # send them to (padding + p) / (1 + 2 padding) scaled to the chip, up to extract_image_chip's
    # size / (size - 1) stretch.
    size = ag.AGE_CHIP
    pts = ag.YUNET_ON_DLIB_TEMPLATE * 100 + [40, 30]
    m = ag.chip_matrix(pts, size)
    got = pts @ m[:, :2].T + m[:, 2]
    q = (ag.CHIP_PADDING + ag.YUNET_ON_DLIB_TEMPLATE) / (1 + 2 * ag.CHIP_PADDING) * size
    want = (size - 1) / 2 + (q - size / 2) * (size - 1) / size
    assert np.abs(got - want).max() < 1e-6


@pytest.mark.parametrize("rel, male, ages", [
    # face-api.js's own ageGenderNet test expectations for these photos
    ("face-api.js/test/images/angry.jpg", True, (25, 60)),       # upstream: male, 36-42
    ("face-api.js/test/images/surprised.jpg", False, (15, 40)),  # upstream: female, 24-28
])
def test_age_and_gender_plausible(pipe, estimator, rel, male, ages):
    pixels, face = _face(pipe, rel)
    answer = estimator.estimate(pixels, [face], {"Age", "Gender"})[0]
    age, p_male = answer.age, answer.p_male
    assert (p_male > 0.5) == male, p_male
    assert ages[0] <= age <= ages[1], age


def test_happy_face_is_happy(pipe, estimator):
    pixels, face = _face(pipe, "face-api.js/examples/images/happy.jpg")
    probs = estimator.estimate(pixels, [face], {"Emotion"})[0].emotion
    assert CLASSES[int(np.argmax(probs))] == "happy", dict(zip(CLASSES, probs.round(2)))
    assert api_emotion(probs)[0] == 1  # DetectFaceAttributes: 1 = happy
    fer = sorted((TESTDATA / "attributes" / "fer2013_publictest" / "happy").glob("*.jpg"))[:20]
    crops = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in fer]
    pred = pipe.zoo.get("expression").probabilities_of_crops(crops).argmax(axis=1)
    assert np.mean(pred == CLASSES.index("happy")) >= 0.6


def test_emotion_types_cover_the_api():
    assert sorted(API_EMOTION_TYPE.values()) == list(range(7))
    assert set(API_EMOTION_TYPE) == set(CLASSES)
    p = np.zeros(7, np.float32)
    p[CLASSES.index("neutral")] = 1
    assert api_emotion(p) == (0, 1.0)


def test_mask_anchors_match_the_network():
    assert anchors().shape == (5972, 4)


@pytest.mark.parametrize("rel, masked", [
    ("insightface/inspireface_test_res/data/bulk/mask2.jpg", True),   # upstream: conf > 0.9
    ("insightface/inspireface_test_res/data/bulk/face_sample.png", False),  # upstream: < 0.1
])
def test_mask(pipe, estimator, rel, masked):
    pixels, face = _face(pipe, rel)
    p = estimator.estimate(pixels, [face], {"Mask"})[0].p_mask
    assert (p > 0.5) == masked, p
