"""FaceModelVersion 2.0: dlib's ResNet, a second recognizer beside SFace (3.0).

In-process: a 2.0 group enrols and searches with dlib features (the stored vector is dlib's,
and dlib re-extracts it from the stored canonical crop), CompareFace with 2.0 scores dlib's
cosine through 2.0's own table, versions never mix, and a tampered model file is refused.
Over HTTP with the official SDK: the same CompareFace and a 2.0 group's enrol + search.
"""

from __future__ import annotations


import numpy as np
import pytest

from images import lfw

AARON_1, AARON_2 = lfw("Aaron_Peirsol", 1), lfw("Aaron_Peirsol", 2)
COLIN = lfw("Colin_Powell", 38)


def _face_features(services, image_b64: str):
    """(dlib feature, SFace feature) of the image's largest face, straight from the models."""
    pipeline = services.faces
    img = pipeline.load(image_b64, None)
    face = pipeline.find_faces(img)[0]
    dlib_model = pipeline.zoo.get("dlib_resnet")
    sface = pipeline.zoo.get("sface")
    return (dlib_model.embed([dlib_model.align(img.pixels, face)])[0],
            sface.embed([sface.align(img.pixels, face)])[0])


def test_version_registry_names_two_recognizers():
    from openiai.core import versions
    from openiai.vision import scores

    assert versions.get("2.0").recognizer == "dlib_resnet"
    assert versions.get("3.0").recognizer == "sface"
    # Each version maps its own recognizer's cosines: the same cosine is a different score.
    assert scores.cosine_for_score(70, "2.0") != scores.cosine_for_score(40, "3.0")
    for version, anchors in (("2.0", (70, 80, 90)), ("3.0", (40, 50, 60))):
        cos = [scores.cosine_for_score(s, version) for s in anchors]
        assert cos == sorted(cos) and len(set(cos)) == 3


def test_compare_face_2_0_scores_dlib_cosines(engine_inproc):
    from openiai.vision import scores

    d1, s1 = _face_features(engine_inproc.services, AARON_1)
    d2, s2 = _face_features(engine_inproc.services, AARON_2)
    v2 = engine_inproc.call("CompareFace", ImageA=AARON_1, ImageB=AARON_2, FaceModelVersion="2.0")
    v3 = engine_inproc.call("CompareFace", ImageA=AARON_1, ImageB=AARON_2, FaceModelVersion="3.0")
    assert v2["FaceModelVersion"] == "2.0" and v3["FaceModelVersion"] == "3.0"
    assert v2["Score"] == pytest.approx(scores.score(float(d1 @ d2), "2.0"), abs=0.02)
    assert v3["Score"] == pytest.approx(scores.score(float(s1 @ s2), "3.0"), abs=0.02)
    assert abs(float(d1 @ s1)) < 0.5  # two different embedding spaces
    other = engine_inproc.call("CompareFace", ImageA=AARON_1, ImageB=COLIN, FaceModelVersion="2.0")
    assert v2["Score"] >= 90 > 70 > other["Score"]  # same person above FAR 1e-5, other below 1e-3


# Storage cannot change what a recognizer answers (the 3.0 tests cover both backends): SQLite.
@pytest.mark.parametrize("inproc", ["sqlite"], indirect=True)
def test_2_0_group_enrols_and_searches_with_dlib_features(inproc):
    from sqlalchemy import select

    from openiai.core.features import from_bytes
    from openiai.store.schema import Face, FaceFeature
    from openiai.services.reextract import crop_face

    services = inproc.services
    inproc.call("CreateGroup", GroupId="old", GroupName="Old", FaceModelVersion="2.0")
    inproc.call("CreateGroup", GroupId="new", GroupName="New", FaceModelVersion="3.0")
    out = inproc.call("CreatePerson", GroupId="old", PersonId="aaron", PersonName="A", Image=AARON_1)
    assert out["FaceModelVersion"] == "2.0"
    inproc.call("CreatePerson", GroupId="old", PersonId="colin", PersonName="C", Image=COLIN)
    inproc.call("CreatePerson", GroupId="new", PersonId="aaron3", PersonName="A", Image=AARON_1)

    dlib_1, sface_1 = _face_features(services, AARON_1)
    with services.db.read() as s:
        face = s.scalars(select(Face).where(Face.face_id == out["FaceId"])).one()
        stored = {f.model_version: from_bytes(f.vector) for f in
                  s.scalars(select(FaceFeature).where(FaceFeature.face_pk == face.pk))}
        crop, landmarks = face.crop_image, np.asarray(face.crop_landmarks, np.float32)
    assert set(stored) == {"2.0"}
    assert float(stored["2.0"] @ dlib_1) > 0.999 and float(stored["2.0"] @ sface_1) < 0.5
    # The stored canonical crop gives dlib the same face back (what a re-extraction reads).
    model = services.faces.zoo.get("dlib_resnet")
    pixels, face_in_crop = crop_face(crop, landmarks)
    again = model.embed([model.align(pixels, face_in_crop)])[0]
    assert float(again @ stored["2.0"]) > 0.99

    hit = inproc.call("SearchFaces", GroupIds=["old"], Image=AARON_2, MaxPersonNum=2)
    assert hit["FaceModelVersion"] == "2.0"
    cands = hit["Results"][0]["Candidates"]
    assert cands[0]["PersonId"] == "aaron" and cands[0]["Score"] >= 80
    assert cands[0]["Score"] > cands[1]["Score"]
    verify = inproc.call("VerifyFace", PersonId="aaron", Image=AARON_2)
    assert verify["IsMatch"] and verify["Score"] == pytest.approx(cands[0]["Score"], abs=0.02)
    # CreateFace's FaceMatchThreshold is read on 2.0's scale for a 2.0 person.
    assert inproc.call("CreateFace", PersonId="aaron", Images=[AARON_2],
                       FaceMatchThreshold=80)["SucFaceNum"] == 1

    # Versions never mix: not in one search, not by copying a person across.
    assert inproc.code("SearchFaces", GroupIds=["old", "new"], Image=AARON_2) == \
        "FailedOperation.AcrossVersionsError"
    assert inproc.code("CopyPerson", PersonId="aaron", GroupIds=["new"]) == \
        "FailedOperation.AcrossVersionsError"
    assert inproc.code("SearchPersons", GroupIds=["old"], Image=AARON_2) == \
        "InvalidParameterValue.UnsupportedGroupFaceModelVersion"
    assert inproc.code("CompareFace", ImageA=AARON_1, ImageB=AARON_2, FaceModelVersion="2.5") == \
        "InvalidParameterValue.FaceModelVersionIllegal"


def test_tampered_dlib_model_is_refused(tmp_path):
    from openiai.vision.models import ModelIntegrityError, ModelZoo

    (tmp_path / "dlib_face_recognition_resnet_model_v1.dat").write_bytes(b"not dlib's network")
    zoo = ModelZoo(tmp_path)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        zoo.get("dlib_resnet")
    assert "sha256" in zoo.status()["dlib_resnet"]


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_version_2_0_over_http(api):
    same = api.call("CompareFace", ImageA=AARON_1, ImageB=AARON_2, FaceModelVersion="2.0")
    other = api.call("CompareFace", ImageA=AARON_1, ImageB=COLIN, FaceModelVersion="2.0")
    assert same["FaceModelVersion"] == "2.0" and same["Score"] >= 90 > 70 > other["Score"]

    api.call("CreateGroup", GroupId="old", GroupName="Old", FaceModelVersion="2.0")
    api.call("CreateGroup", GroupId="new", GroupName="New")
    api.call("CreatePerson", GroupId="old", PersonId="aaron", PersonName="A", Image=AARON_1)
    api.call("CreatePerson", GroupId="old", PersonId="colin", PersonName="C", Image=COLIN)
    api.call("CreatePerson", GroupId="new", PersonId="colin3", PersonName="C", Image=COLIN)
    assert api.call("GetGroupInfo", GroupId="old")["FaceModelVersion"] == "2.0"
    out = api.call("SearchFaces", GroupIds=["old"], Image=AARON_2)
    assert out["FaceModelVersion"] == "2.0"
    assert out["Results"][0]["Candidates"][0]["PersonId"] == "aaron"
    assert api.code("SearchFaces", GroupIds=["old", "new"], Image=AARON_2) == \
        "FailedOperation.AcrossVersionsError"
