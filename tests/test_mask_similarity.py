"""CompareMaskFace and DetectFaceSimilarity (2020-03-03 only).

Over HTTP with the official SDK (their SDK methods; the common client for what the typed SDK
cannot send: the 2018-03-01 version, unknown parameters, wrong JSON types): the fields and
types of the answers, a masked face matched to its owner and not to a stranger, look-alike
scores on both sides of the fixed threshold 70. In-process: every documented error code.
How well both work is measured by ``openiai eval maskcompare`` and ``openiai eval similarity``,
not here.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import TESTDATA
from harness import Common
from images import b64, encode_pixels, lfw, load_bgr, pipeline

AARON_1, AARON_2 = lfw("Aaron_Peirsol", 1), lfw("Aaron_Peirsol", 2)
STRANGER = lfw("Colin_Powell", 38)
NO_FACE = "dlib/no_face/dog.jpg"
BLURRY = "insightface/inspireface_test_res/data/bulk/blur.jpg"
REAL_MASK = "insightface/inspireface_test_res/data/bulk/mask.png"
REAL_MASK_CROP = "insightface/inspireface_test_res/data/crop/crop_mask.png"


@functools.cache
def masked(name: str, number: int) -> str:
    """An LFW photo with a synthetic mask from the nose tip down (as the evaluation draws it)."""
    from openiai.bench.synthetic_mask import draw_mask

    rel = f"lfw/images/{name}/{name}_{number:04d}.jpg"
    pixels = load_bgr(rel)
    pipe = pipeline()
    face = pipe.detect(pixels)[0]
    out = draw_mask(pixels, pipe.mesh(pixels, face, iris=False).xy, rel, TESTDATA)
    return encode_pixels(np.ascontiguousarray(out[:, :, ::-1]))


# ---------------------------------------------------------------- over HTTP, the SDK
def test_compare_mask_face_over_the_sdk(engine_api):
    same = engine_api.call("CompareMaskFace", ImageA=masked("Aaron_Peirsol", 1), ImageB=AARON_2)
    assert set(same) == {"Score", "FaceModelVersion", "RequestId"}
    assert same["FaceModelVersion"] == "3.0" and isinstance(same["Score"], float)
    assert same["Score"] >= 40, same  # FAR 1e-3 on masked pairs
    other = engine_api.call("CompareMaskFace", ImageA=masked("Aaron_Peirsol", 1),
                            ImageB=STRANGER, FaceModelVersion="3.0", QualityControl=0)
    assert 0 <= other["Score"] < 40, other
    # Unmasked faces are compared as CompareFace compares them (same table, same score).
    plain = engine_api.call("CompareMaskFace", ImageA=AARON_1, ImageB=AARON_2)
    assert plain["Score"] == engine_api.call("CompareFace", ImageA=AARON_1, ImageB=AARON_2)["Score"]
    # A real masked photo and its own crop: the same face.
    real = engine_api.call("CompareMaskFace", ImageA=b64(REAL_MASK), ImageB=b64(REAL_MASK_CROP))
    assert real["Score"] >= 60, real


def test_detect_face_similarity_over_the_sdk(engine_api):
    same = engine_api.call("DetectFaceSimilarity", ImageA=AARON_1, ImageB=AARON_2)
    assert set(same) == {"Score", "RequestId"} and isinstance(same["Score"], float)
    assert 70 <= same["Score"] <= 100, same
    other = engine_api.call("DetectFaceSimilarity", ImageA=AARON_1, ImageB=STRANGER,
                            QualityControl=0)
    assert 0 <= other["Score"] < 70, other
    # The same pixels on both sides: the top of the scale.
    assert engine_api.call("DetectFaceSimilarity", ImageA=AARON_1, ImageB=AARON_1)["Score"] >= 99


def test_only_in_2020_and_wire_checks(engine_api):
    old = Common(engine_api, "2018-03-01")
    for action in ("CompareMaskFace", "DetectFaceSimilarity"):
        assert old.code(action, ImageA=AARON_1, ImageB=AARON_2) == "InvalidAction"
    new = Common(engine_api, "2020-03-03")
    # Neither takes NeedRotateDetection / FaceMatchingStrategy; DetectFaceSimilarity takes no
    # FaceModelVersion at all.
    assert new.code("CompareMaskFace", ImageA=AARON_1, ImageB=AARON_2, NeedRotateDetection=1) \
        == "UnknownParameter"
    assert new.code("DetectFaceSimilarity", ImageA=AARON_1, ImageB=AARON_2,
                    FaceModelVersion="3.0") == "UnknownParameter"
    assert new.code("DetectFaceSimilarity", ImageA=AARON_1, ImageB=AARON_2,
                    FaceMatchingStrategy=1) == "UnknownParameter"
    # Declared types: QualityControl is an integer, the images strings.
    assert new.code("CompareMaskFace", ImageA=AARON_1, ImageB=AARON_2, QualityControl="abc") \
        == "InvalidParameter"
    assert new.code("DetectFaceSimilarity", ImageA=5, ImageB=AARON_2) == "InvalidParameter"
    assert new.code("CompareMaskFace", ImageA=AARON_1, ImageB=AARON_2, FaceModelVersion=3) \
        == "InvalidParameter"


# ---------------------------------------------------------------- in-process, the error table
@pytest.mark.parametrize("action", ["CompareMaskFace", "DetectFaceSimilarity"])
def test_documented_errors(engine_inproc, action):
    c, a, b = engine_inproc, AARON_1, AARON_2
    assert c.code(action, ImageA=a) == "InvalidParameterValue.ImageEmpty"
    assert c.code(action, ImageB=b) == "InvalidParameterValue.ImageEmpty"
    assert c.code(action, ImageA=a, ImageB="not base64 at all!") == \
        "FailedOperation.ImageDecodeFailed"
    assert c.code(action, ImageA=a, ImageB=b64(NO_FACE)) == "InvalidParameterValue.NoFaceInPhoto"
    assert c.code(action, ImageA=a, ImageB=encode_pixels(np.zeros((63, 200, 3), np.uint8))) == \
        "FailedOperation.ImageResolutionTooSmall"
    assert c.code(action, ImageA=a, ImageB=encode_pixels(np.zeros((100, 2001, 3), np.uint8),
                                                         "PNG")) == \
        "FailedOperation.ImageResolutionExceed"
    assert c.code(action, ImageA=a, ImageB=b, QualityControl=5) == \
        "InvalidParameterValue.QualityControlIllegal"
    assert c.code(action, ImageA=a, ImageB=b64(BLURRY), QualityControl=4) == \
        "FailedOperation.FaceQualityNotQualified"
    assert c.code(action, ImageA=a, UrlB="ftp://example.com/a.jpg") == \
        "InvalidParameterValue.UrlIllegal"
    # QualityControl 0-4 are all accepted on sharp photos.
    assert 0 <= c.call(action, ImageA=a, ImageB=b, QualityControl=1)["Score"] <= 100


def test_compare_mask_face_versions(engine_inproc):
    c = engine_inproc
    for version in ("2.0", "4.0"):
        assert c.code("CompareMaskFace", ImageA=AARON_1, ImageB=AARON_2,
                      FaceModelVersion=version) == "InvalidParameterValue.FaceModelVersionIllegal"
    assert c.call("CompareMaskFace", ImageA=AARON_1, ImageB=AARON_2,
                  FaceModelVersion="")["FaceModelVersion"] == "3.0"


def test_largest_face_is_compared(engine_inproc):
    """Two people side by side, the second scaled down: the larger face is the one compared."""
    import cv2

    big = load_bgr("lfw/images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg")
    small = cv2.resize(load_bgr("lfw/images/Colin_Powell/Colin_Powell_0038.jpg"), (125, 125))
    canvas = np.zeros((250, 375, 3), np.uint8)
    canvas[:, :250], canvas[60:185, 250:] = big, small
    both = encode_pixels(np.ascontiguousarray(canvas[:, :, ::-1]))
    for action, threshold in (("CompareMaskFace", 60), ("DetectFaceSimilarity", 70)):
        assert engine_inproc.call(action, ImageA=both, ImageB=AARON_2)["Score"] >= threshold


def test_the_mask_detector_picks_the_comparison(engine_inproc):
    """A masked face sends the pair to the upper face and the masked table; two clean faces
    stay on the whole face and CompareFace's table."""
    import base64

    from openiai.services.mask_compare import compare_masked
    from openiai.vision.image import decode_bytes

    services = engine_inproc.services

    def face(data):
        pixels = decode_bytes(base64.b64decode(data)).pixels
        return pixels, services.faces.detect(pixels)[0]

    masked_pair = compare_masked(services.faces, services.attributes,
                                 [face(masked("Aaron_Peirsol", 1)), face(AARON_2)])
    assert masked_pair.table == "mask" and masked_pair.p_mask[0] >= 0.5 > masked_pair.p_mask[1]
    clean_pair = compare_masked(services.faces, services.attributes, [face(AARON_1), face(AARON_2)])
    assert clean_pair.table == "compare" and max(clean_pair.p_mask) < 0.5
    whole = services.faces.features_of([face(AARON_1), face(AARON_2)], "3.0")
    assert abs(clean_pair.cosine - float(whole[0] @ whole[1])) < 1e-5
