"""CreateFace and DeleteFace, with real face images.

Adding and deleting faces runs through the official SDK over HTTP in both API versions; the
per-image codes, thresholds, limits and quality checks run in-process (``inproc``).
"""

import re

import pytest

from images import b64, lfw

GUL = [lfw("Abdullah_Gul", n) for n in (1, 6, 7, 8, 9)]
AARON = lfw("Aaron_Eckhart", 1)
NO_FACE = b64("dlib/no_face/dog.jpg")  # SPECIAL_CASES.csv, category no_face
NOT_AN_IMAGE = "aGVsbG8gd29ybGQ="  # base64 of "hello world"


def _person(client, pid="p", image=None, version="3.0"):
    """A person with one face in a group of its own; returns the FaceId."""
    client.call("CreateGroup", GroupId=f"g-{pid}", GroupName=f"G {pid}", FaceModelVersion=version)
    return client.call("CreatePerson", GroupId=f"g-{pid}", PersonId=pid, PersonName="P",
                    Image=image or GUL[0])["FaceId"]


@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
def test_create_face_adds_matching_faces(api, version):
    c = api.variant(version=version)
    first = _person(c)
    out = c.call("CreateFace", PersonId="p", Images=GUL[1:3])
    assert out["SucFaceNum"] == 2 and out["RetCode"] == [0, 0] and out["SucIndexes"] == [0, 1]
    assert all(re.fullmatch(r"\d{19}", f) for f in out["SucFaceIds"])
    assert len(set(out["SucFaceIds"]) | {first}) == 3
    assert out["FaceModelVersion"] == "3.0" and len(out["SucFaceRects"]) == 2
    det = c.call("DetectFace", Image=GUL[2])["FaceInfos"][0]
    assert out["SucFaceRects"][1] == {k: det[k] for k in ("X", "Y", "Width", "Height")}
    assert c.call("GetPersonBaseInfo", PersonId="p")["FaceIds"] == [first, *out["SucFaceIds"]]
    counts = c.call("GetPersonListNum", GroupId="g-p")
    assert (counts["PersonNum"], counts["FaceNum"]) == (1, 3)


def test_create_face_per_image_ret_codes(inproc):
    _person(inproc)
    out = inproc.call("CreateFace", PersonId="p", Images=[AARON, NO_FACE, NOT_AN_IMAGE, GUL[1]])
    # Another person's face is below the default threshold (60); the rest fail per image.
    assert out["RetCode"] == [-1604, -1101, -1102, 0]
    assert out["SucIndexes"] == [3] and out["SucFaceNum"] == 1 and len(out["SucFaceIds"]) == 1
    assert len(out["SucFaceRects"]) == 1
    assert len(inproc.call("GetPersonBaseInfo", PersonId="p")["FaceIds"]) == 2
    # Nothing succeeds: the call still answers, with every image's code.
    out = inproc.call("CreateFace", PersonId="p", Images=[NO_FACE])
    assert out["RetCode"] == [-1101] and out["SucFaceNum"] == 0 and out["SucFaceIds"] == []


def test_face_match_threshold(inproc):
    _person(inproc)
    # With the bar at 0, any face is "above" it; at 100 not even the same person passes.
    assert inproc.call("CreateFace", PersonId="p", Images=[GUL[1]],
                       FaceMatchThreshold=100)["RetCode"] == [-1604]
    out = inproc.call("CreateFace", PersonId="p", Images=[AARON], FaceMatchThreshold=0)
    assert out["RetCode"] == [0]
    for bad in (-0.5, 100.5, 1000):
        got = inproc.code("CreateFace", PersonId="p", Images=[GUL[1]], FaceMatchThreshold=bad)
        assert got == "InvalidParameterValue.FaceMatchThresholdIllegal", bad


def test_create_face_limits(inproc):
    _person(inproc)
    assert inproc.code("CreateFace", PersonId="p", Images=GUL[:5]) == \
        "InvalidParameterValue.UploadFaceNumExceed"
    assert inproc.code("CreateFace", PersonId="p") == "InvalidParameterValue.ImageEmpty"
    assert inproc.code("CreateFace", PersonId="p", Images=[GUL[1]], QualityControl=5) == \
        "InvalidParameterValue.QualityControlIllegal"
    assert inproc.code("CreateFace", PersonId="nope", Images=[GUL[1]]) == \
        "InvalidParameterValue.PersonIdNotExist"
    out = inproc.call("CreateFace", PersonId="p", Images=GUL[1:4])
    assert out["SucFaceNum"] == 3
    # 4 faces now: two more would make 6.
    assert inproc.code("CreateFace", PersonId="p", Images=GUL[:2]) == \
        "InvalidParameterValue.PersonFaceNumExceed"
    assert inproc.call("CreateFace", PersonId="p", Images=[GUL[4]])["SucFaceNum"] == 1
    assert inproc.code("CreateFace", PersonId="p", Images=[GUL[1]]) == \
        "InvalidParameterValue.PersonFaceNumExceed"
    assert len(inproc.call("GetPersonBaseInfo", PersonId="p")["FaceIds"]) == 5


def test_urls_win_over_images(inproc):
    _person(inproc)
    # The docs: with both given only Urls are used; an unusable URL fails that image only.
    out = inproc.call("CreateFace", PersonId="p", Images=[GUL[1]],
                      Urls=["ftp://example.com/a.jpg"])
    assert out["RetCode"] == [-1102] and out["SucFaceNum"] == 0


def test_create_face_uses_the_persons_model_version(inproc):
    _person(inproc, version="2.0")
    out = inproc.call("CreateFace", PersonId="p", Images=[GUL[1]])
    assert out["FaceModelVersion"] == "2.0" and out["RetCode"] == [0]


@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
def test_delete_face(api, version):
    c = api.variant(version=version)
    first = _person(c)
    added = c.call("CreateFace", PersonId="p", Images=GUL[1:3])["SucFaceIds"]
    other_face = _person(c, pid="q", image=AARON)
    out = c.call("DeleteFace", PersonId="p", FaceIds=[added[0], "123", other_face, added[0]])
    # Unknown IDs and another person's faces are not deleted.
    assert out == {"SucDeletedNum": 1, "SucFaceIds": [added[0]], "RequestId": out["RequestId"]}
    assert c.call("GetPersonBaseInfo", PersonId="q")["FaceIds"] == [other_face]
    assert c.code("DeleteFace", PersonId="p", FaceIds=[first, added[1]]) == \
        "InvalidParameterValue.DeleteFaceNumExceed"
    assert c.call("GetPersonBaseInfo", PersonId="p")["FaceIds"] == [first, added[1]]
    assert c.call("DeleteFace", PersonId="p", FaceIds=[first])["SucFaceIds"] == [first]
    assert c.code("DeleteFace", PersonId="p", FaceIds=[added[1]]) == \
        "InvalidParameterValue.DeleteFaceNumExceed"
    assert c.code("DeleteFace", PersonId="nope", FaceIds=[added[1]]) == \
        "InvalidParameterValue.PersonIdNotExist"
    assert c.call("GetPersonListNum", GroupId="g-p")["FaceNum"] == 1
    # A deleted face no longer counts against the threshold or the 5-face limit.
    assert c.call("CreateFace", PersonId="p", Images=[GUL[3]])["RetCode"] == [0]


def test_quality_control(inproc):
    blurry = b64("insightface/inspireface_test_res/data/bulk/blur.jpg")
    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    assert inproc.code("CreatePerson", GroupId="g", PersonId="b", PersonName="B", Image=blurry,
                       QualityControl=4) == "FailedOperation.FaceQualityNotQualified"
    _person(inproc)
    out = inproc.call("CreateFace", PersonId="p", Images=[blurry, GUL[1]], QualityControl=4,
                      FaceMatchThreshold=0)
    assert out["RetCode"][0] == -1601
