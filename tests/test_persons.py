"""Person management, with real face images.

Over HTTP through the official SDK: the lifecycle in both API versions, other signings, and
the wall between accounts (each with its own key). In-process (``inproc``): limits, error
tables, paging, copying and deleting - what the actions answer, on the same dispatch.
"""

import re

import pytest

from harness import Api
from images import b64, lfw

AARON = lfw("Aaron_Eckhart", 1)
GUL = lfw("Abdullah_Gul", 1)
AMELIE = lfw("Amelie_Mauresmo", 1)
NO_FACE = b64("dlib/no_face/dog.jpg")  # SPECIAL_CASES.csv, category no_face


def other_account(api: Api) -> Api:
    secret_id, secret_key = api.server.create_key(f"other-{api.secret_id[:8]}")
    return Api(api.server, secret_id, secret_key)


@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
def test_person_lifecycle(api, version):
    c = api.variant(version=version)
    c.call("CreateGroup", GroupId="g", GroupName="G", GroupExDescriptions=["Dept", "Team"])
    out = c.call("CreatePerson", GroupId="g", PersonId="p-1", PersonName="Aaron", Gender=1,
                 Image=AARON, UniquePersonControl=2, PersonExDescriptionInfos=[
                     {"PersonExDescriptionIndex": 1, "PersonExDescription": "x" * 60}])
    assert re.fullmatch(r"\d{19}", out["FaceId"])
    assert out["SimilarPersonId"] == "" and out["FaceModelVersion"] == "3.0"
    rect = out["FaceRect"]
    # The stored rect is the detector's: the same box DetectFace reports for the image.
    det = c.call("DetectFace", Image=AARON)["FaceInfos"][0]
    assert (rect["X"], rect["Y"], rect["Width"], rect["Height"]) == \
        (det["X"], det["Y"], det["Width"], det["Height"])
    assert 40 < rect["Width"] < 250 and 0 <= rect["X"] < 250 - rect["Width"] // 2

    base = c.call("GetPersonBaseInfo", PersonId="p-1")
    assert (base["PersonName"], base["Gender"], base["FaceIds"]) == ("Aaron", 1, [out["FaceId"]])
    info = c.call("GetPersonGroupInfo", PersonId="p-1")
    assert info["GroupNum"] == 1 and info["FaceModelVersion"] == "3.0"
    assert info["PersonGroupInfos"] == [{"GroupId": "g", "PersonExDescriptions": ["", "x" * 60]}]
    listed = c.call("GetPersonList", GroupId="g")
    assert (listed["PersonNum"], listed["FaceNum"], listed["FaceModelVersion"]) == (1, 1, "3.0")
    person = listed["PersonInfos"][0]
    assert person["PersonId"] == "p-1" and person["FaceIds"] == [out["FaceId"]]
    assert person["PersonExDescriptions"] == ["", "x" * 60]
    assert isinstance(person["CreationTimestamp"], int) and person["CreationTimestamp"] > 1.6e12
    counts = c.call("GetPersonListNum", GroupId="g")
    assert (counts["PersonNum"], counts["FaceNum"]) == (1, 1)

    c.call("ModifyPersonBaseInfo", PersonId="p-1", PersonName="Aaron E", Gender=2)
    base = c.call("GetPersonBaseInfo", PersonId="p-1")
    assert (base["PersonName"], base["Gender"]) == ("Aaron E", 2)
    c.call("ModifyPersonGroupInfo", GroupId="g", PersonId="p-1", PersonExDescriptionInfos=[
        {"PersonExDescriptionIndex": 0, "PersonExDescription": "R&D"}])
    assert c.call("GetPersonGroupInfo", PersonId="p-1")["PersonGroupInfos"][0][
        "PersonExDescriptions"] == ["R&D", "x" * 60]

    c.call("DeletePerson", PersonId="p-1")
    assert c.code("GetPersonBaseInfo", PersonId="p-1") == "InvalidParameterValue.PersonIdNotExist"
    assert c.code("DeletePerson", PersonId="p-1") == "InvalidParameterValue.PersonIdNotExist"
    counts = c.call("GetPersonListNum", GroupId="g")
    assert (counts["PersonNum"], counts["FaceNum"]) == (0, 0)


def test_person_list_num_counts(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    inproc.call("CreatePerson", GroupId="g", PersonId="a", PersonName="A", Image=AARON)
    inproc.call("CreatePerson", GroupId="g", PersonId="b", PersonName="B", Image=GUL)
    out = inproc.call("GetPersonListNum", GroupId="g")
    assert (out["PersonNum"], out["FaceNum"]) == (2, 2)
    assert inproc.code("GetPersonListNum", GroupId="nope") == \
        "InvalidParameterValue.GroupIdNotExist"


def test_stored_face_row(inproc):
    """The face row: a float32 LE unit feature under its version, the canonical JPEG crop
    with the landmarks in its pixels, the rect."""
    import io

    import numpy as np
    from PIL import Image

    from openiai.store.schema import Face, FaceFeature
    from openiai.vision import canonical

    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    out = inproc.call("CreatePerson", GroupId="g", PersonId="p", PersonName="P", Image=AARON)
    with inproc.services.db.read() as s:
        row = s.query(Face).filter(Face.face_id == out["FaceId"]).one()
        vectors = {f.model_version: np.frombuffer(f.vector, dtype="<f4")
                   for f in s.query(FaceFeature).filter(FaceFeature.face_pk == row.pk)}
        crop = Image.open(io.BytesIO(row.crop_image))
        landmarks = np.array(row.crop_landmarks)
        rect = (row.x, row.y, row.width, row.height)
        version = row.face_model_version
    assert list(vectors) == ["3.0"] and version == "3.0"
    feature = vectors["3.0"]
    assert feature.shape == (128,) and abs(float(np.linalg.norm(feature)) - 1) < 1e-3
    assert crop.format == "JPEG" and crop.size == (canonical.SIZE, canonical.SIZE)
    # The similarity fit puts the landmarks near, not on, the canonical template points.
    assert landmarks.shape == (5, 2)
    assert np.abs(landmarks - canonical.canonical_template()).max() < 0.1 * canonical.SIZE
    r = out["FaceRect"]
    assert rect == (r["X"], r["Y"], r["Width"], r["Height"])


def test_no_face_creates_nothing(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    assert inproc.code("CreatePerson", GroupId="g", PersonId="p", PersonName="P",
                       Image=NO_FACE) == "InvalidParameterValue.NoFaceInPhoto"
    assert inproc.code("GetPersonBaseInfo", PersonId="p") == \
        "InvalidParameterValue.PersonIdNotExist"
    assert inproc.call("GetPersonListNum", GroupId="g")["PersonNum"] == 0


@pytest.mark.parametrize("params,code", [
    ({"PersonId": "has space"}, "InvalidParameterValue.PersonIdIllegal"),
    ({"PersonId": "x" * 65}, "InvalidParameterValue.PersonIdTooLong"),
    ({"PersonName": ""}, "InvalidParameterValue.PersonNameIllegal"),
    ({"PersonName": "n" * 61}, "InvalidParameterValue.PersonNameTooLong"),
    ({"Gender": 3}, "InvalidParameterValue.PersonGenderIllegal"),
    ({"Gender": -1}, "InvalidParameterValue.PersonGenderIllegal"),
    ({"UniquePersonControl": 5}, "InvalidParameterValue.UniquePersonControlIllegal"),
    ({"QualityControl": 5}, "InvalidParameterValue.QualityControlIllegal"),
    ({"Image": None}, "InvalidParameterValue.ImageEmpty"),
    ({"GroupId": "nope"}, "InvalidParameterValue.GroupIdNotExist"),
    ({"PersonExDescriptionInfos": [{"PersonExDescriptionIndex": i, "PersonExDescription": "v"}
                                   for i in range(6)]},
     "InvalidParameterValue.PersonExDescriptionInfosExceed"),
    ({"PersonExDescriptionInfos": [{"PersonExDescriptionIndex": 2, "PersonExDescription": "v"}]},
     "InvalidParameterValue.PersonExDescriptionInfosExceed"),  # the group has fields 0 and 1
    ({"PersonExDescriptionInfos": [{"PersonExDescriptionIndex": 1, "PersonExDescription": "a"},
                                   {"PersonExDescriptionIndex": 1, "PersonExDescription": "b"}]},
     "InvalidParameterValue.PersonExDescriptionsNameIdentical"),
    ({"PersonExDescriptionInfos": [{"PersonExDescriptionIndex": 0,
                                    "PersonExDescription": "v" * 61}]},
     "InvalidParameterValue.PersonExDescriptionsNameTooLong"),
    ({"PersonExDescriptionInfos": [{"PersonExDescriptionIndex": -1, "PersonExDescription": "v"}]},
     "InvalidParameter"),
    ({"PersonName": None}, "MissingParameter"),
])
def test_create_person_limits(inproc, params, code):
    inproc.call("CreateGroup", GroupId="g", GroupName="G", GroupExDescriptions=["a", "b"])
    args = {"GroupId": "g", "PersonId": "p", "PersonName": "P", "Image": AARON} | params
    args = {k: v for k, v in args.items() if v is not None}
    assert inproc.code("CreatePerson", **args) == code
    assert inproc.call("GetPersonListNum", GroupId="g")["PersonNum"] == 0


def test_person_id_unique_per_account_and_walled(api):
    api.call("CreateGroup", GroupId="g1", GroupName="G1")
    api.call("CreateGroup", GroupId="g2", GroupName="G2")
    api.call("CreatePerson", GroupId="g1", PersonId="p", PersonName="P", Image=AARON)
    assert api.code("CreatePerson", GroupId="g2", PersonId="p", PersonName="Q", Image=GUL) == \
        "InvalidParameterValue.PersonIdAlreadyExist"
    other = other_account(api)
    # Another account sees nothing of this one and may reuse the same IDs.
    for action, params in [("GetPersonBaseInfo", {"PersonId": "p"}),
                           ("GetPersonGroupInfo", {"PersonId": "p"}),
                           ("DeletePerson", {"PersonId": "p"}),
                           ("ModifyPersonBaseInfo", {"PersonId": "p", "PersonName": "x"}),
                           ("CreateFace", {"PersonId": "p", "Images": [AARON]}),
                           ("DeleteFace", {"PersonId": "p", "FaceIds": ["1"]})]:
        assert other.code(action, **params) == "InvalidParameterValue.PersonIdNotExist", action
    other.call("CreateGroup", GroupId="g1", GroupName="G1")
    assert other.code("CopyPerson", PersonId="p", GroupIds=["g1"]) == \
        "InvalidParameterValue.PersonIdNotExist"
    other.call("CreatePerson", GroupId="g1", PersonId="p", PersonName="Other", Image=GUL)
    assert api.call("GetPersonBaseInfo", PersonId="p")["PersonName"] == "P"
    assert other.call("GetPersonBaseInfo", PersonId="p")["PersonName"] == "Other"
    other.call("DeletePerson", PersonId="p")
    assert api.call("GetPersonBaseInfo", PersonId="p")["PersonName"] == "P"


def test_get_person_list_pagination_and_ex_descriptions(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="G", GroupExDescriptions=["a"])
    ids = ["p0", "p1", "p2", "p3", "p4"]
    images = [AARON, GUL, AMELIE, lfw("Al_Sharpton", 1), lfw("Alvaro_Uribe", 7)]
    for i, (pid, img) in enumerate(zip(ids, images)):
        inproc.call("CreatePerson", GroupId="g", PersonId=pid, PersonName=f"N{i}", Image=img,
                    Gender=i % 3, PersonExDescriptionInfos=[
                     {"PersonExDescriptionIndex": 0, "PersonExDescription": f"v{i}"}])
    page1 = inproc.call("GetPersonList", GroupId="g", Offset=0, Limit=2)
    page3 = inproc.call("GetPersonList", GroupId="g", Offset=4, Limit=2)
    assert (page1["PersonNum"], page1["FaceNum"]) == (5, 5)
    assert [p["PersonId"] for p in page1["PersonInfos"]] == ["p0", "p1"]
    assert [p["PersonId"] for p in page3["PersonInfos"]] == ["p4"]
    assert inproc.call("GetPersonList", GroupId="g", Offset=9)["PersonInfos"] == []
    everyone = inproc.call("GetPersonList", GroupId="g")["PersonInfos"]  # default Limit 10
    assert [p["PersonId"] for p in everyone] == ids
    assert [p["Gender"] for p in everyone] == [0, 1, 2, 0, 1]
    assert [p["PersonExDescriptions"] for p in everyone] == [[f"v{i}"] for i in range(5)]
    assert len({f for p in everyone for f in p["FaceIds"]}) == 5
    assert inproc.code("GetPersonList", GroupId="g", Limit=1001) == \
        "InvalidParameterValue.LimitExceed"
    assert len(inproc.call("GetPersonList", GroupId="g", Limit=1000)["PersonInfos"]) == 5
    assert inproc.code("GetPersonList", GroupId="nope") == "InvalidParameterValue.GroupIdNotExist"
    # A field added to the group later reads as "" until set.
    inproc.call("ModifyGroup", GroupId="g", GroupExDescriptionInfos=[
        {"GroupExDescriptionIndex": 1, "GroupExDescription": "b"}])
    assert inproc.call("GetPersonList", GroupId="g", Limit=1)["PersonInfos"][0][
        "PersonExDescriptions"] == ["v0", ""]
    inproc.call("ModifyPersonGroupInfo", GroupId="g", PersonId="p0", PersonExDescriptionInfos=[
        {"PersonExDescriptionIndex": 1, "PersonExDescription": "new"}])
    assert inproc.call("GetPersonGroupInfo", PersonId="p0")["PersonGroupInfos"][0][
        "PersonExDescriptions"] == ["v0", "new"]


def test_delete_person_from_group_deletes_orphans(inproc):
    for g in ("g1", "g2"):
        inproc.call("CreateGroup", GroupId=g, GroupName=g)
    face_id = inproc.call("CreatePerson", GroupId="g1", PersonId="p", PersonName="P",
                          Image=AARON)["FaceId"]
    assert inproc.call("CopyPerson", PersonId="p", GroupIds=["g2"])["SucGroupIds"] == ["g2"]
    inproc.call("DeletePersonFromGroup", PersonId="p", GroupId="g1")
    info = inproc.call("GetPersonGroupInfo", PersonId="p")
    assert info["GroupNum"] == 1 and [g["GroupId"] for g in info["PersonGroupInfos"]] == ["g2"]
    assert inproc.call("GetPersonBaseInfo", PersonId="p")["FaceIds"] == [face_id]
    assert inproc.code("DeletePersonFromGroup", PersonId="p", GroupId="g1") == \
        "FailedOperation.GroupPersonMapNotExist"
    assert inproc.code("DeletePersonFromGroup", PersonId="p", GroupId="nope") == \
        "InvalidParameterValue.GroupIdNotExist"
    assert inproc.code("DeletePersonFromGroup", PersonId="nope", GroupId="g2") == \
        "InvalidParameterValue.PersonIdNotExist"
    # Removed from its last group, the person is deleted with its faces.
    inproc.call("DeletePersonFromGroup", PersonId="p", GroupId="g2")
    assert inproc.code("GetPersonBaseInfo", PersonId="p") == \
        "InvalidParameterValue.PersonIdNotExist"
    counts = inproc.call("GetPersonListNum", GroupId="g2")
    assert (counts["PersonNum"], counts["FaceNum"]) == (0, 0)
    # The PersonId is free again.
    inproc.call("CreatePerson", GroupId="g1", PersonId="p", PersonName="P2", Image=GUL)


def test_delete_group_deletes_orphaned_persons(inproc):
    for g in ("g1", "g2"):
        inproc.call("CreateGroup", GroupId=g, GroupName=g)
    inproc.call("CreatePerson", GroupId="g1", PersonId="only1", PersonName="A", Image=AARON)
    inproc.call("CreatePerson", GroupId="g1", PersonId="both", PersonName="B", Image=GUL)
    inproc.call("CopyPerson", PersonId="both", GroupIds=["g2"])
    inproc.call("DeleteGroup", GroupId="g1")
    assert inproc.code("GetPersonBaseInfo", PersonId="only1") == \
        "InvalidParameterValue.PersonIdNotExist"
    assert inproc.call("GetPersonGroupInfo", PersonId="both")["GroupNum"] == 1


def test_copy_person(inproc):
    inproc.call("CreateGroup", GroupId="src", GroupName="S", GroupExDescriptions=["a"])
    inproc.call("CreateGroup", GroupId="dst", GroupName="D", GroupExDescriptions=["x", "y"])
    inproc.call("CreateGroup", GroupId="dst2", GroupName="D2")
    inproc.call("CreateGroup", GroupId="old", GroupName="O", FaceModelVersion="2.0")
    inproc.call("CreatePerson", GroupId="src", PersonId="p", PersonName="P", Image=AARON,
                PersonExDescriptionInfos=[
                    {"PersonExDescriptionIndex": 0, "PersonExDescription": "v"}])
    assert inproc.code("CopyPerson", PersonId="p", GroupIds=["dst", "old"]) == \
        "FailedOperation.AcrossVersionsError"
    assert inproc.code("CopyPerson", PersonId="p", GroupIds=["dst", "nope"]) == \
        "InvalidParameterValue.GroupIdNotExist"
    assert inproc.call("GetPersonGroupInfo", PersonId="p")["GroupNum"] == 1  # nothing half-done
    assert inproc.code("CopyPerson", PersonId="nope", GroupIds=["dst"]) == \
        "InvalidParameterValue.PersonIdNotExist"
    out = inproc.call("CopyPerson", PersonId="p", GroupIds=["dst", "src", "dst2", "dst"])
    # Already a member of src: not counted as newly added.
    assert out["SucGroupNum"] == 2 and out["SucGroupIds"] == ["dst", "dst2"]
    infos = {g["GroupId"]: g["PersonExDescriptions"]
             for g in inproc.call("GetPersonGroupInfo", PersonId="p")["PersonGroupInfos"]}
    # The description values are not copied.
    assert infos == {"src": ["v"], "dst": ["", ""], "dst2": []}
    listed = inproc.call("GetPersonList", GroupId="dst")
    assert (listed["PersonNum"], listed["FaceNum"]) == (1, 1)
    # A 2.0 person cannot go into a 3.0 group either.
    inproc.call("CreatePerson", GroupId="old", PersonId="p2", PersonName="Q", Image=GUL)
    assert inproc.call("CreatePerson", GroupId="old", PersonId="p3", PersonName="R",
                       Image=AMELIE)["FaceModelVersion"] == "2.0"
    assert inproc.code("CopyPerson", PersonId="p2", GroupIds=["dst"]) == \
        "FailedOperation.AcrossVersionsError"


def test_copy_person_group_limit_and_group_info_paging(inproc):
    for i in range(101):
        inproc.call("CreateGroup", GroupId=f"g{i:03d}", GroupName=f"G{i}")
    inproc.call("CreatePerson", GroupId="g000", PersonId="p", PersonName="P", Image=AARON)
    assert inproc.code("CopyPerson", PersonId="p", GroupIds=[f"g{i:03d}" for i in range(101)]) == \
        "InvalidParameterValue.GroupIdsExceed"
    out = inproc.call("CopyPerson", PersonId="p", GroupIds=[f"g{i:03d}" for i in range(1, 100)])
    assert out["SucGroupNum"] == 99 and len(out["SucGroupIds"]) == 99
    assert inproc.code("CopyPerson", PersonId="p", GroupIds=["g100"]) == \
        "InvalidParameterValue.GroupNumPerPersonExceed"
    info = inproc.call("GetPersonGroupInfo", PersonId="p")
    assert info["GroupNum"] == 100 and len(info["PersonGroupInfos"]) == 10  # default Limit 10
    assert [g["GroupId"] for g in info["PersonGroupInfos"]][:2] == ["g000", "g001"]
    tail = inproc.call("GetPersonGroupInfo", PersonId="p", Offset=95, Limit=10)
    assert [g["GroupId"] for g in tail["PersonGroupInfos"]] == [f"g{i:03d}" for i in range(95, 100)]
    everything = inproc.call("GetPersonGroupInfo", PersonId="p", Limit=100)
    assert len(everything["PersonGroupInfos"]) == 100
    assert inproc.code("GetPersonGroupInfo", PersonId="p", Limit=101) == \
        "InvalidParameterValue.LimitExceed"
    # Leaving one group makes room for exactly one more.
    inproc.call("DeletePersonFromGroup", PersonId="p", GroupId="g050")
    assert inproc.call("CopyPerson", PersonId="p", GroupIds=["g100"])["SucGroupIds"] == ["g100"]


def test_modify_person_errors(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="G", GroupExDescriptions=["a", "b"])
    inproc.call("CreateGroup", GroupId="other", GroupName="O", GroupExDescriptions=["a"])
    inproc.call("CreatePerson", GroupId="g", PersonId="p", PersonName="P", Image=AARON)

    def info(i, v):
        return [{"PersonExDescriptionIndex": i, "PersonExDescription": v}]

    mod = "ModifyPersonGroupInfo"
    v = info(0, "v")
    assert inproc.code(mod, GroupId="other", PersonId="p", PersonExDescriptionInfos=v) == \
        "FailedOperation.GroupPersonMapNotExist"
    assert inproc.code(mod, GroupId="nope", PersonId="p", PersonExDescriptionInfos=v) == \
        "InvalidParameterValue.GroupIdNotExist"
    assert inproc.code(mod, GroupId="g", PersonId="nope", PersonExDescriptionInfos=v) == \
        "InvalidParameterValue.PersonIdNotExist"
    assert inproc.code(mod, GroupId="g", PersonId="p", PersonExDescriptionInfos=info(2, "v")) == \
        "InvalidParameterValue.PersonExDescriptionInfosExceed"
    assert inproc.code(mod, GroupId="g", PersonId="p", PersonExDescriptionInfos=info(0, "v" * 61)) \
        == "InvalidParameterValue.PersonExDescriptionsNameTooLong"
    assert inproc.code(mod, GroupId="g", PersonId="p",
                       PersonExDescriptionInfos=info(0, "a") + info(0, "b")) == \
        "InvalidParameterValue.PersonExDescriptionsNameIdentical"
    assert inproc.code(mod, GroupId="g", PersonId="p", PersonExDescriptionInfos=info(-1, "v")) == \
        "InvalidParameter"
    assert inproc.code(mod, GroupId="g", PersonId="p") == "MissingParameter"
    assert inproc.call("GetPersonGroupInfo", PersonId="p")["PersonGroupInfos"][0][
        "PersonExDescriptions"] == ["", ""]

    base = "ModifyPersonBaseInfo"
    assert inproc.code(base, PersonId="p", Gender=-1) == "InvalidParameterValue.PersonGenderIllegal"
    assert inproc.code(base, PersonId="p", Gender=3) == "InvalidParameterValue.PersonGenderIllegal"
    assert inproc.code(base, PersonId="p", PersonName="n" * 61) == \
        "InvalidParameterValue.PersonNameTooLong"
    assert inproc.code(base, PersonId="nope", PersonName="x") == \
        "InvalidParameterValue.PersonIdNotExist"
    inproc.call(base, PersonId="p", Gender=2)  # the name is left alone
    assert inproc.call("GetPersonBaseInfo", PersonId="p")["PersonName"] == "P"
    assert inproc.call("GetPersonList", GroupId="g")["PersonInfos"][0]["Gender"] == 2


def test_get_person_group_info_on_other_signings(api):
    api.call("CreateGroup", GroupId="g", GroupName="G")
    api.call("CreatePerson", GroupId="g", PersonId="p", PersonName="P", Image=AARON)
    for c in (api.variant(version="2018-03-01", sign="HmacSHA256", method="GET"),
              api.variant(sign="HmacSHA1")):
        assert c.call("GetPersonGroupInfo", PersonId="p")["GroupNum"] == 1
        assert c.call("GetPersonList", GroupId="g")["PersonInfos"][0]["PersonId"] == "p"
