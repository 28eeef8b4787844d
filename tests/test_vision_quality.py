"""FaceQualityInfo against the labelled images and the doc's reference ranges.

Labels used (``SPECIAL_CASES.csv`` and ``insightface/labels.csv``): ``bulk/blur.jpg`` blurred
(upstream expects low quality), ``bulk/yifei.jpg`` good quality, ``bulk/face_sample.png``
unmasked, ``bulk/mask2.jpg`` masked, the two ``obama_partial_face`` images cut by the border,
Yale's left/right-light shots. Known transformations of a good image (darken, brighten,
Gaussian blur, crop through the face, a painted-on mask) give the rest.

Doc ranges: Sharpness [0,40] very blurry, [40,60] blurry, [60,80] fine, [80,100] sharp;
Brightness [0,30] dark, [30,70] normal, [70,100] bright; Completeness incomplete at or below
Eyebrow 80, Eye 80, Nose 60, Cheek 70, Mouth 50, Chin 70.
Measured: blur.jpg Sharpness 41, yifei 93, obama-480p 98, face_sample 90; obama partial
faces Cheek 24 / 0; mask2 Nose, Mouth, Cheek, Chin 0; 1,007 LFW faces: median Sharpness 74,
Brightness 51, Score 71, 99.4% pass QualityControl 1.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from conftest import TESTDATA
from images import detect_all as detect
from images import load_bgr as load

from openiai.vision import quality as Q
from openiai.vision.types import Face

DATA = TESTDATA
BULK = "insightface/inspireface_test_res/data/bulk/"
OBAMA = "face_recognition/examples/obama-480p.jpg"
PARTS = ("Eyebrow", "Eye", "Nose", "Cheek", "Mouth", "Chin")






def largest(pixels: np.ndarray) -> Face:
    faces = detect(pixels)
    assert faces, "no face found"
    return max(faces, key=lambda f: float(f.box[2] * f.box[3]))


def assess(pixels: np.ndarray, face: Face | None = None) -> dict:
    return Q.assess(pixels, face or largest(pixels))


# ------------------------------------------------------------------ format


def test_fields_are_ints_in_range():
    q = assess(load(OBAMA))
    assert set(q) == {"Score", "Sharpness", "Brightness", "Completeness"}
    assert set(q["Completeness"]) == set(PARTS)
    values = [q["Score"], q["Sharpness"], q["Brightness"], *q["Completeness"].values()]
    assert all(type(v) is int and 0 <= v <= 100 for v in values), q


# ------------------------------------------------------------------ sharpness


def test_blurred_image_is_blurry_and_good_ones_sharp():
    blur = assess(load(BULK + "blur.jpg"))
    assert blur["Sharpness"] < 60, blur  # "blurry" or "very blurry"
    for rel in (BULK + "yifei.jpg", BULK + "face_sample.png", OBAMA):
        q = assess(load(rel))
        assert q["Sharpness"] >= 80, (rel, q)  # "sharp"
        assert q["Sharpness"] - blur["Sharpness"] >= 30
    assert blur["Score"] < 60 and assess(load(OBAMA))["Score"] >= 80


def test_sharpness_falls_with_gaussian_blur():
    img = load(OBAMA)
    face = largest(img)
    sharp = [assess(cv2.GaussianBlur(img, (0, 0), s) if s else img, face)["Sharpness"] for s in (0, 1, 2, 3, 5)]
    assert all(a > b for a, b in zip(sharp, sharp[1:])), sharp
    assert sharp[0] >= 80 and sharp[3] < 40 and sharp[4] < 20, sharp


# ------------------------------------------------------------------ brightness


def test_brightness_bands_on_darkened_and_brightened_copies():
    img = load(OBAMA)
    face = largest(img)
    levels = {
        "dark": assess((img * 0.3).astype(np.uint8), face)["Brightness"],
        "dim": assess((img * 0.7).astype(np.uint8), face)["Brightness"],
        "as is": assess(img, face)["Brightness"],
        "bright": assess(cv2.convertScaleAbs(img, alpha=1.0, beta=110), face)["Brightness"],
    }
    assert levels["dark"] < 30 and 30 <= levels["as is"] <= 70 and levels["bright"] > 70, levels
    assert levels["dark"] < levels["dim"] < levels["as is"] < levels["bright"], levels


def test_side_lit_yale_faces_are_darker_than_front_lit():
    def mean_brightness(kind: str) -> float:
        paths = sorted((DATA / "yalefaces" / "png").glob(f"*/{kind}.png"))
        assert len(paths) == 15
        return float(np.mean([assess(cv2.imread(str(p)))["Brightness"] for p in paths]))

    normal = mean_brightness("normal")
    assert 30 <= normal <= 70
    assert mean_brightness("rightlight") < normal - 5 and mean_brightness("leftlight") < normal


# ------------------------------------------------------------------ completeness


@pytest.mark.parametrize("name", ["obama_partial_face.jpg", "obama_partial_face2.jpg"])
def test_faces_cut_by_the_border_are_incomplete(name):
    q = assess(load("face_recognition/tests/test_images/" + name))
    c = q["Completeness"]
    assert c["Cheek"] <= 70 and c["Eyebrow"] <= 80, c
    assert c["Nose"] >= 95 and c["Mouth"] >= 95, c  # the middle of the face is in frame
    assert not Q.passes(q, 3)


def test_whole_face_is_complete():
    q = assess(load(OBAMA))
    assert min(q["Completeness"].values()) >= 95, q
    assert Q.passes(q, 4)


def test_crop_through_the_eye():
    img = load(OBAMA)
    face = largest(img)
    x_eye = int(face.landmarks[0, 0])  # the eye on the picture's left
    cut = np.ascontiguousarray(img[:, x_eye:])
    moved = Face(face.box - np.array([x_eye, 0, 0, 0], np.float32), face.score,
                 face.landmarks - np.array([x_eye, 0], np.float32))  # fmt: skip
    c = assess(cut, moved)["Completeness"]
    assert c["Eye"] <= 80 and c["Eyebrow"] <= 80 and c["Cheek"] <= 70, c
    assert c["Mouth"] > 50, c  # the mouth's far corner is still in frame


def test_mask_covers_nose_mouth_chin():
    masked = assess(load(BULK + "mask2.jpg"))
    c = masked["Completeness"]
    assert c["Nose"] <= 60 and c["Mouth"] <= 50 and c["Chin"] <= 70, c
    assert not Q.passes(masked, 1)
    bare = assess(load(BULK + "face_sample.png"))
    assert min(bare["Completeness"].values()) >= 95 and Q.passes(bare, 1), bare


def test_painted_mask_and_few_false_alarms_on_lfw():
    paths = sorted((DATA / "lfw" / "images").glob("*/*_0001.jpg"))[::80][:60]
    flagged, painted = 0, []
    poly = np.array([[20, 62], [92, 62], [96, 100], [75, 122], [37, 122], [16, 100]], np.float64)
    for p in paths:
        img = cv2.imread(str(p))
        face = largest(img)
        q = assess(img, face)
        flagged += int(not Q.passes(q, 1))
        inv = cv2.invertAffineTransform(Q.similarity_to_template(face.landmarks))
        pts = (poly @ inv[:, :2].T + inv[:, 2]).astype(np.int32)
        covered = img.copy()
        cv2.fillPoly(covered, [pts], (200, 160, 110))  # a plain blue mask
        painted.append(assess(covered, face)["Completeness"])
    assert flagged <= 2, flagged
    assert all(c["Mouth"] <= 50 and c["Nose"] <= 60 for c in painted)


# ------------------------------------------------------------------ QualityControl


def _q(sharp=90, bright=50, **parts) -> dict:
    comp = dict.fromkeys(PARTS, 99)
    comp.update(parts)
    return {"Score": 90, "Sharpness": sharp, "Brightness": bright, "Completeness": comp}


def test_level_0_accepts_anything():
    assert Q.passes(_q(sharp=0, bright=0, Eye=0, Nose=0, Mouth=0), 0)


@pytest.mark.parametrize(
    "quality",
    [_q(sharp=39), _q(Eye=80), _q(Nose=60), _q(Mouth=50)],
)
def test_level_1_rejects_extreme_blur_and_covered_eyes_nose_mouth(quality):
    assert not Q.passes(quality, 1)


def test_level_1_tolerates_the_level_2_problems():
    assert Q.passes(_q(sharp=45, bright=20, Eyebrow=10, Cheek=10, Chin=10), 1)


def test_level_2_rejects_three_problems_not_two():
    assert Q.passes(_q(bright=20, Cheek=50), 2)  # dark + cheeks
    assert not Q.passes(_q(bright=20, Cheek=50, Chin=60), 2)  # + chin
    assert not Q.passes(_q(sharp=50, bright=80, Eyebrow=70), 2)  # blurry + bright + brows


def test_level_3_rejects_any_one_problem():
    assert Q.passes(_q(sharp=65, bright=35), 3)
    for bad in (_q(bright=29), _q(bright=71), _q(sharp=59), _q(Eyebrow=80), _q(Cheek=70), _q(Chin=70)):
        assert Q.passes(bad, 2) and not Q.passes(bad, 3), bad


def test_level_4_allows_one_slight_problem():
    assert Q.passes(_q(), 4)
    assert Q.passes(_q(sharp=75), 4)  # "fine", not "sharp": one slight problem
    assert not Q.passes(_q(sharp=75, bright=68), 4)  # two slight problems
    assert not Q.passes(_q(Cheek=90, Chin=90), 4)


def test_bad_level_is_refused():
    with pytest.raises(ValueError):
        Q.passes(_q(), 5)
