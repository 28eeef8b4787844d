"""DetectFace and AnalyzeFace on real images.

The default answer and its wire types go through the official SDK over HTTP; the detection
tables, formats, limits and error cases run in-process (``engine_inproc``: the same dispatch
and models, no wire).
"""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import TESTDATA
from images import b64, encode_pixels, lfw

ANNOTATED = json.loads((TESTDATA / "compreface/sample_images/annotations.json").read_text())["images"]


def _inside(face, x, y):
    return face["X"] <= x <= face["X"] + face["Width"] and face["Y"] <= y <= face["Y"] + face["Height"]


@pytest.mark.parametrize("name", sorted(ANNOTATED))
def test_detect_counts_on_annotated_group_photos(engine_inproc, name):
    expected = ANNOTATED[name]
    path = f"compreface/sample_images/{name}"
    from PIL import Image

    with Image.open(TESTDATA / path) as im:
        long_side = max(im.size)
    if long_side > 4000:
        # The docs cap JPEG input at 4,000 px on the long side.
        assert engine_inproc.code("DetectFace", Image=b64(path)) == \
            "FailedOperation.ImageResolutionExceed"
        return
    if expected["faces"] == 0:
        assert engine_inproc.code("DetectFace", Image=b64(path), MaxFaceNum=120) == \
            "InvalidParameterValue.NoFaceInPhoto"
        return
    out = engine_inproc.call("DetectFace", Image=b64(path), MaxFaceNum=120)
    faces = out["FaceInfos"]
    # Tolerance: exact count, and every annotated nose tip inside one detected box.
    assert len(faces) == expected["faces"]
    for x, y in expected["noses"]:
        assert any(_inside(f, x, y) for f in faces), (x, y)
    areas = [f["Width"] * f["Height"] for f in faces]
    assert areas == sorted(areas, reverse=True), "largest faces first"


def test_detect_counts_on_dlib_annotated_photos(engine_inproc):
    root = ET.parse(TESTDATA / "dlib/faces/training_with_face_landmarks.xml").getroot()
    for image in root.iter("image"):
        boxes = image.findall("box")
        out = engine_inproc.call("DetectFace", Image=b64(f"dlib/faces/{image.get('file')}"),
                                 MaxFaceNum=120, MinFaceSize=20)
        assert len(out["FaceInfos"]) == len(boxes), image.get("file")


def test_detect_default_is_one_largest_face_and_fields_are_typed(engine_api):
    out = engine_api.call("DetectFace", Image=b64("compreface/sample_images/015_6.jpg"))
    assert (out["ImageWidth"], out["ImageHeight"]) == (800, 533)
    assert len(out["FaceInfos"]) == 1 and out["FaceModelVersion"] == "3.0"
    face = out["FaceInfos"][0]
    assert all(isinstance(face[k], int) for k in ("X", "Y", "Width", "Height"))
    everything = engine_api.call("DetectFace", Image=b64("compreface/sample_images/015_6.jpg"),
                                 MaxFaceNum=10)["FaceInfos"]
    assert face["Width"] * face["Height"] == max(f["Width"] * f["Height"] for f in everything)


def test_detect_max_face_num_and_min_face_size(engine_inproc):
    img = b64("compreface/sample_images/016_8.jpg")
    assert len(engine_inproc.call("DetectFace", Image=img, MaxFaceNum=3)["FaceInfos"]) == 3
    assert engine_inproc.code("DetectFace", Image=img, MaxFaceNum=121) == \
        "LimitExceeded.ErrorFaceNumExceed"
    assert engine_inproc.code("DetectFace", Image=img, MaxFaceNum=120, MinFaceSize=2000) == \
        "FailedOperation.FaceSizeTooSmall"


def test_detect_pose_when_attributes_requested(engine_inproc):
    out = engine_inproc.call("DetectFace", Image=lfw("Aaron_Peirsol"), NeedFaceAttributes=1)
    attrs = out["FaceInfos"][0]["FaceAttributesInfo"]
    assert all(-90 <= attrs[k] <= 90 for k in ("Pitch", "Yaw")) and -180 <= attrs["Roll"] <= 180


@pytest.mark.parametrize("name,outcome", [
    ("einstein.jpeg", "ok"), ("einstein.png", "ok"), ("einstein.bmp", "ok"),
    ("einstein.gif", "FailedOperation.ImageDecodeFailed"),
    ("einstein.ico", "FailedOperation.ImageDecodeFailed"),
    ("einstein.tiff", "FailedOperation.ImageDecodeFailed"),
    ("einstein.webp", "FailedOperation.ImageDecodeFailed"),
    ("corrupted.png", "FailedOperation.ImageDecodeFailed"),
    ("truncated.jpg", "FailedOperation.ImageDecodeFailed"),
])
def test_every_format_test_file(engine_inproc, name, outcome):
    path = f"compreface/format_tests/{name}"
    if outcome == "ok":
        assert len(engine_inproc.call("DetectFace", Image=b64(path))["FaceInfos"]) == 1
    else:
        assert engine_inproc.code("DetectFace", Image=b64(path)) == outcome


def test_format_tests_cover_the_folder():
    listed = {"einstein.jpeg", "einstein.png", "einstein.bmp", "einstein.gif", "einstein.ico",
              "einstein.tiff", "einstein.webp", "corrupted.png", "truncated.jpg", "empty.png"}
    assert {p.name for p in (TESTDATA / "compreface/format_tests").iterdir()} == listed


def test_empty_file_and_missing_image(engine_inproc):
    assert engine_inproc.code("DetectFace", Image=b64("compreface/format_tests/empty.png")) in (
        "InvalidParameterValue.ImageEmpty", "FailedOperation.ImageDecodeFailed")
    assert engine_inproc.code("DetectFace") == "InvalidParameterValue.ImageEmpty"
    assert engine_inproc.code("DetectFace", Image="not base64 at all!") == \
        "FailedOperation.ImageDecodeFailed"


def test_image_size_limits(engine_inproc):
    assert engine_inproc.code("DetectFace", Image=encode_pixels(np.zeros((63, 200, 3), np.uint8))) \
        == "FailedOperation.ImageResolutionTooSmall"
    assert engine_inproc.code("DetectFace", Image=encode_pixels(np.zeros((100, 2001, 3), np.uint8),
                                                                "PNG")) == \
        "FailedOperation.ImageResolutionExceed"


def test_rotated_images_need_rotate_detection(engine_inproc):
    base = "insightface/inspireface_test_res/data/bulk"
    for name in ("r0.jpg", "r90.jpg", "r180.jpg", "r270.jpg"):
        out = engine_inproc.call("DetectFace", Image=b64(f"{base}/{name}"), NeedRotateDetection=1)
        assert len(out["FaceInfos"]) == 1, name


def test_no_face_images(engine_inproc):
    for path in ("insightface/inspireface_test_res/data/bulk/view.jpg",
                 "compreface/sample_images/017_0.jpg"):
        assert engine_inproc.code("DetectFace", Image=b64(path)) == \
            "InvalidParameterValue.NoFaceInPhoto"


def test_analyze_face_shapes(engine_inproc):
    # Mode as the docs say: 0 (default) every face (at most 10), 1 the largest one.
    out = engine_inproc.call("AnalyzeFace", Image=b64("compreface/sample_images/012_4.jpg"))
    assert len(out["FaceShapeSet"]) == 4
    sizes = {"FaceProfile": 21, "LeftEye": 8, "RightEye": 8, "LeftEyeBrow": 8,
             "RightEyeBrow": 8, "Mouth": 22, "Nose": 13, "LeftPupil": 1, "RightPupil": 1}
    for shape in out["FaceShapeSet"]:
        assert {k: len(v) for k, v in shape.items()} == sizes
    one = engine_inproc.call("AnalyzeFace", Image=b64("compreface/sample_images/012_4.jpg"), Mode=1)
    assert len(one["FaceShapeSet"]) == 1
    eight = engine_inproc.call("AnalyzeFace", Image=b64("compreface/sample_images/016_8.jpg"))
    assert len(eight["FaceShapeSet"]) == 8
