"""SearchFaces, SearchFacesReturnsByGroup, SearchPersons, SearchPersonsReturnsByGroup and
CreatePerson's UniquePersonControl, with real LFW faces, on SQLite and PostgreSQL.

Finding an enrolled person runs through the official SDK over HTTP in both API versions;
the parameters, error tables and the index following writes run in-process (``inproc``).
"""

import re

import cv2
import numpy as np
import pytest

from conftest import backends
from images import b64, encode_pixels, lfw, load_bgr

SEARCHES = ["SearchFaces", "SearchFacesReturnsByGroup", "SearchPersons",
            "SearchPersonsReturnsByGroup"]
BY_GROUP = {"SearchFacesReturnsByGroup", "SearchPersonsReturnsByGroup"}
PERSONS = {"SearchPersons", "SearchPersonsReturnsByGroup"}
# FaceMatchThreshold as each action's docs word it: ">=" (range [0, 100)) or "above".
INCLUSIVE = {"SearchFacesReturnsByGroup", "SearchPersons"}

COLIN = lfw("Colin_Powell", 40)  # the probe; Colin_Powell_0038 is enrolled
NO_FACE = b64("dlib/no_face/dog.jpg")


def _rgb(path: str):
    return load_bgr(path)[..., ::-1]


def two_faces(blur_second: bool = False) -> str:
    """A big Colin Powell (left) and a smaller Tony Blair (right), optionally blurred."""
    big = cv2.resize(_rgb("lfw/images/Colin_Powell/Colin_Powell_0040.jpg"), (375, 375))
    small = _rgb("lfw/images/Tony_Blair/Tony_Blair_0032.jpg")
    if blur_second:
        small = cv2.GaussianBlur(small, (0, 0), 4)
    canvas = np.full((400, 640, 3), 128, np.uint8)
    canvas[0:375, 0:375] = big
    canvas[60:310, 380:630] = small
    return encode_pixels(canvas, quality=95)


def results(out: dict) -> list[dict]:
    return out["ResultsReturnsByGroup"] if "ResultsReturnsByGroup" in out else out["Results"]


def cands(out: dict, face: int = 0, group: str | None = None) -> list[dict]:
    """The candidates of one searched face (of one group, for the ReturnsByGroup actions)."""
    res = results(out)[face]
    if "GroupCandidates" not in res:
        return res["Candidates"]
    groups = {g["GroupId"]: g["Candidates"] for g in res["GroupCandidates"]}
    if group is not None:
        return groups[group]
    assert len(groups) == 1, groups
    return next(iter(groups.values()))


def ids(candidates: list[dict]) -> list[str]:
    return [c["PersonId"] for c in candidates]


def every_id(out: dict) -> set[str]:
    """Every PersonId returned, over all faces and groups."""
    found = set()
    for res in results(out):
        for g in res.get("GroupCandidates") or [{"Candidates": res.get("Candidates") or []}]:
            found |= set(ids(g["Candidates"]))
    return found


def enrol(client, group: str, person: str, name: str, number: int, **kw) -> dict:
    return client.call("CreatePerson", GroupId=group, PersonId=person, PersonName=name,
                       Image=lfw(name, number), **kw)


def three_people(client, group: str = "g", **group_kw) -> None:
    client.call("CreateGroup", GroupId=group, GroupName=group.upper(), **group_kw)
    enrol(client, group, "colin", "Colin_Powell", 38)
    enrol(client, group, "tony", "Tony_Blair", 6)
    enrol(client, group, "gul", "Abdullah_Gul", 1)


# --- the four actions -------------------------------------------------------------------------

@backends("server")
@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
def test_search_finds_the_enrolled_person(api, version):
    c = api.variant(version=version)
    three_people(c)
    rect = c.call("DetectFace", Image=COLIN)["FaceInfos"][0]
    compare = c.call("CompareFace", ImageA=lfw("Colin_Powell", 38), ImageB=COLIN)["Score"]
    for action in SEARCHES:
        out = c.call(action, GroupIds=["g"], Image=COLIN)
        assert out["FaceModelVersion"] == "3.0"
        assert out["PersonNum" if action in PERSONS else "FaceNum"] == 3
        (res,) = results(out)
        assert res["RetCode"] == 0
        assert res["FaceRect"] == {k: rect[k] for k in ("X", "Y", "Width", "Height")}
        found = cands(out)
        assert ids(found)[0] == "colin" and sorted(ids(found)) == ["colin", "gul", "tony"]
        scores = [x["Score"] for x in found]
        assert scores == sorted(scores, reverse=True)
        # One face per person here, so face and fused scores are CompareFace's score.
        assert abs(scores[0] - compare) < 0.02, (action, scores[0], compare)
        assert scores[0] >= 60 > scores[1]
        for x in found:
            if action in PERSONS:
                assert x["FaceId"] == ""
            else:
                assert re.fullmatch(r"\d{19}", x["FaceId"])
            assert (x["PersonName"], x["Gender"], x["PersonGroupInfos"]) == (None, None, None)
        if action in BY_GROUP:
            assert [g["GroupId"] for g in res["GroupCandidates"]] == ["g"]
    faces = c.call("SearchFaces", GroupIds=["g"], Image=COLIN)
    colin_face = c.call("GetPersonBaseInfo", PersonId="colin")["FaceIds"]
    assert cands(faces)[0]["FaceId"] in colin_face


@backends("inproc")
def test_need_person_info(inproc):
    inproc.call("CreateGroup", GroupId="g1", GroupName="G1", GroupExDescriptions=["Dept", "Desk"])
    inproc.call("CreateGroup", GroupId="g2", GroupName="G2", GroupExDescriptions=["Badge"])
    enrol(inproc, "g1", "colin", "Colin_Powell", 38, Gender=1, PersonExDescriptionInfos=[
        {"PersonExDescriptionIndex": 1, "PersonExDescription": "7F"}])
    inproc.call("CopyPerson", PersonId="colin", GroupIds=["g2"])
    inproc.call("ModifyPersonGroupInfo", GroupId="g2", PersonId="colin", PersonExDescriptionInfos=[
        {"PersonExDescriptionIndex": 0, "PersonExDescription": "B-12"}])
    expected_groups = [{"GroupId": "g1", "PersonExDescriptions": ["", "7F"]},
                       {"GroupId": "g2", "PersonExDescriptions": ["B-12"]}]
    for action in SEARCHES:
        out = inproc.call(action, GroupIds=["g1"], Image=COLIN, NeedPersonInfo=1)
        top = cands(out)[0]
        assert top["PersonId"] == "colin"
        assert (top["PersonName"], top["Gender"]) == ("Colin_Powell", 1)
        # Every group that holds the person, not only the searched ones.
        assert top["PersonGroupInfos"] == expected_groups
        # "Other values will be considered as 0"
        top = cands(inproc.call(action, GroupIds=["g1"], Image=COLIN, NeedPersonInfo=2))[0]
        assert (top["PersonName"], top["Gender"], top["PersonGroupInfos"]) == (None, None, None)


@backends("inproc")
def test_max_person_num(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    people = [("Colin_Powell", 38), ("Tony_Blair", 6), ("Abdullah_Gul", 1),
              ("Amelie_Mauresmo", 1), ("Hugo_Chavez", 2), ("Serena_Williams", 1),
              ("Jean_Chretien", 2)]
    for i, (name, number) in enumerate(people):
        enrol(inproc, "g", f"p{i}", name, number)
    for action in SEARCHES:
        key = "MaxPersonNumPerGroup" if action in BY_GROUP else "MaxPersonNum"
        assert len(cands(inproc.call(action, GroupIds=["g"], Image=COLIN))) == 5  # the default
        two = cands(inproc.call(action, GroupIds=["g"], Image=COLIN, **{key: 2}))
        assert len(two) == 2 and ids(two)[0] == "p0"
        limit = 10 if action in BY_GROUP else 100
        assert len(cands(inproc.call(action, GroupIds=["g"], Image=COLIN, **{key: limit}))) == 7
        assert inproc.code(action, GroupIds=["g"], Image=COLIN, **{key: limit + 1}) == \
            "InvalidParameterValue.LimitExceed"
        assert inproc.code(action, GroupIds=["g"], Image=COLIN, **{key: 0}) == "InvalidParameter"


@backends("inproc")
def test_max_face_num_and_min_face_size(inproc):
    three_people(inproc)
    image = two_faces()
    for action in SEARCHES:
        one = inproc.call(action, GroupIds=["g"], Image=image)
        assert len(results(one)) == 1 and ids(cands(one))[0] == "colin"  # the largest face
        both = inproc.call(action, GroupIds=["g"], Image=image, MaxFaceNum=10)
        assert len(results(both)) == 2
        big, small = (r["FaceRect"] for r in results(both))
        assert big["Width"] > small["Width"] and big["X"] < 375 <= small["X"]
        assert [ids(cands(both, i))[0] for i in (0, 1)] == ["colin", "tony"]
        assert all(r["RetCode"] == 0 for r in results(both))
        # MinFaceSize drops the small face, not the call.
        big_only = inproc.call(action, GroupIds=["g"], Image=image, MaxFaceNum=2, MinFaceSize=150)
        assert [r["FaceRect"] for r in results(big_only)] == [big]
        assert inproc.code(action, GroupIds=["g"], Image=image, MaxFaceNum=11) == \
            "LimitExceeded.ErrorFaceNumExceed"
        assert inproc.code(action, GroupIds=["g"], Image=image, MaxFaceNum=0) == "InvalidParameter"
        assert inproc.code(action, GroupIds=["g"], Image=image, MinFaceSize=400) == \
            "FailedOperation.FaceSizeTooSmall"


@backends("inproc")
def test_quality_control_is_per_face(inproc):
    three_people(inproc)
    image = two_faces(blur_second=True)
    for action in SEARCHES:
        out = inproc.call(action, GroupIds=["g"], Image=image, MaxFaceNum=2, QualityControl=1)
        sharp, blurred = results(out)
        assert sharp["RetCode"] == 0 and ids(cands(out, 0))[0] == "colin"
        assert blurred["RetCode"] == -1601 and blurred["FaceRect"]["Width"] > 0
        assert blurred.get("GroupCandidates", blurred.get("Candidates")) == []
        # Without QualityControl the blurred face is searched like any other.
        out = inproc.call(action, GroupIds=["g"], Image=image, MaxFaceNum=2)
        assert [r["RetCode"] for r in results(out)] == [0, 0]
        assert inproc.code(action, GroupIds=["g"], Image=image, QualityControl=5) == \
            "InvalidParameterValue.QualityControlIllegal"
    # Only the blurred face: "If the quality of all faces ... does not meet the requirement,
    # [PersonNum] 0 will be returned."
    blurred_only = encode_pixels(cv2.GaussianBlur(
        _rgb("lfw/images/Tony_Blair/Tony_Blair_0032.jpg"), (0, 0), 4), quality=95)
    for action in sorted(PERSONS):
        out = inproc.call(action, GroupIds=["g"], Image=blurred_only, QualityControl=1)
        assert out["PersonNum"] == 0 and results(out)[0]["RetCode"] == -1601


@backends("inproc")
def test_face_match_threshold(inproc):
    three_people(inproc)
    for action in SEARCHES:
        found = cands(inproc.call(action, GroupIds=["g"], Image=COLIN))
        top, second = found[0]["Score"], found[1]["Score"]
        between = cands(inproc.call(action, GroupIds=["g"], Image=COLIN,
                                    FaceMatchThreshold=(top + second) / 2))
        assert ids(between) == ["colin"]
        # At exactly the top score: kept by ">=" actions, dropped by "above" ones.
        out = inproc.call(action, GroupIds=["g"], Image=COLIN, FaceMatchThreshold=top)
        assert ids(cands(out)) == (["colin"] if action in INCLUSIVE else [])
        high = 99.5
        out = inproc.call(action, GroupIds=["g"], Image=COLIN, FaceMatchThreshold=high)
        assert cands(out) == []
        # -1604 only where the Result docs have it; ResultsReturnsByGroup knows 0 and -1601.
        assert results(out)[0]["RetCode"] == (0 if action in BY_GROUP else -1604)
        if action in BY_GROUP:
            assert [g["GroupId"] for g in results(out)[0]["GroupCandidates"]] == ["g"]
        bad = [-1, 100.5] + ([100] if action in INCLUSIVE else [])
        for t in bad:
            assert inproc.code(action, GroupIds=["g"], Image=COLIN, FaceMatchThreshold=t) == \
                "InvalidParameterValue.FaceMatchThresholdIllegal", (action, t)
    out = inproc.call("SearchFaces", GroupIds=["g"], Image=COLIN, FaceMatchThreshold=100)
    assert results(out)[0]["RetCode"] == -1604


@backends("inproc")
def test_group_filtering_and_duplicates(inproc):
    for g in ("g1", "g2", "g3"):
        inproc.call("CreateGroup", GroupId=g, GroupName=g.upper())
    enrol(inproc, "g1", "colin", "Colin_Powell", 38)
    inproc.call("CreateFace", PersonId="colin", Images=[lfw("Colin_Powell", 49)],
                FaceMatchThreshold=0)
    inproc.call("CopyPerson", PersonId="colin", GroupIds=["g2"])
    enrol(inproc, "g2", "tony", "Tony_Blair", 6)
    enrol(inproc, "g3", "tony3", "Tony_Blair", 18)
    tony = lfw("Tony_Blair", 32)
    for action in SEARCHES:
        only_g1 = inproc.call(action, GroupIds=["g1"], Image=tony, MaxFaceNum=1)
        assert ids(cands(only_g1)) == ["colin"]  # tony is in g2 and g3, never in g1
        both = inproc.call(action, GroupIds=["g1", "g2", "g1"], Image=tony)
        if action in BY_GROUP:
            groups = results(both)[0]["GroupCandidates"]
            assert [g["GroupId"] for g in groups] == ["g1", "g2"]
            assert ids(cands(both, group="g1")) == ["colin"]
            assert ids(cands(both, group="g2")) == ["tony", "colin"]
        else:
            assert ids(cands(both)) == ["tony", "colin"]  # colin once, though in two groups
        # Distinct faces / persons of the searched groups: colin's 2 faces count once.
        if action in PERSONS:
            assert both["PersonNum"] == 2
        else:
            assert both["FaceNum"] == 3
        assert "tony3" not in ids(cands(both, group="g2" if action in BY_GROUP else None))


@backends("inproc")
def test_search_errors(inproc):
    three_people(inproc)
    inproc.call("CreateGroup", GroupId="empty", GroupName="Empty")
    inproc.call("CreateGroup", GroupId="v2", GroupName="V2", FaceModelVersion="2.0")
    enrol(inproc, "v2", "old", "Colin_Powell", 38)
    for action in SEARCHES:
        many = 61 if action in BY_GROUP else 101
        cases = [
            ({"GroupIds": ["nope"]}, "InvalidParameterValue.GroupIdNotExist"),
            ({"GroupIds": ["g", "nope"]}, "InvalidParameterValue.GroupIdNotExist"),
            ({"GroupIds": ["bad id"]}, "InvalidParameterValue.GroupIdIllegal"),
            ({"GroupIds": ["x" * 65]}, "InvalidParameterValue.GroupIdTooLong"),
            ({"GroupIds": []}, "MissingParameter"),
            ({"GroupIds": [f"g{i}" for i in range(many)]}, "InvalidParameterValue.GroupIdsExceed"),
            ({"GroupIds": ["g", "v2"]}, "FailedOperation.AcrossVersionsError"),
            ({"GroupIds": ["empty"]}, "InvalidParameterValue.NoFaceInGroups"),
            ({"Image": None}, "InvalidParameterValue.ImageEmpty"),
            ({"Image": NO_FACE}, "InvalidParameterValue.NoFaceInPhoto"),
            ({"Image": "not base64 image data"}, None),  # an image error, whichever
        ]
        for params, code in cases:
            args = {"GroupIds": ["g"], "Image": COLIN} | params
            got = inproc.code(action, **{k: v for k, v in args.items() if v is not None})
            if code is None:
                assert got.startswith(("FailedOperation.Image", "InvalidParameter")), got
            else:
                assert got == code, (action, params, got)
        # Person search is for FaceModelVersion 3.0 groups only; face search takes 2.0 too.
        if action in PERSONS:
            assert inproc.code(action, GroupIds=["v2"], Image=COLIN) == \
                "InvalidParameterValue.UnsupportedGroupFaceModelVersion"
        else:
            out = inproc.call(action, GroupIds=["v2"], Image=COLIN)
            assert out["FaceModelVersion"] == "2.0" and ids(cands(out)) == ["old"]
    # Repeated GroupIds are searched once, so they do not count against the limit.
    assert ids(cands(inproc.call("SearchFacesReturnsByGroup", GroupIds=["g"] * 80,
                                 Image=COLIN)))[0] == "colin"


def test_search_faces_limit_is_per_model_version():
    from openiai.actions.search import check_searchable
    from openiai.core.errors import ApiError

    check_searchable(1_000_000, "2.0")
    check_searchable(3_000_000, "3.0")
    for faces, version, code in [(1_000_001, "2.0", "FailedOperation.SearchFacesExceed"),
                                 (3_000_001, "3.0", "FailedOperation.SearchFacesExceed"),
                                 (0, "3.0", "InvalidParameterValue.NoFaceInGroups")]:
        with pytest.raises(ApiError) as err:
            check_searchable(faces, version)
        assert err.value.code == code


@backends("inproc")
def test_need_rotate_detection(inproc):
    three_people(inproc)
    turned = encode_pixels(np.ascontiguousarray(np.rot90(
        _rgb("lfw/images/Colin_Powell/Colin_Powell_0040.jpg"))), quality=95)
    for action in SEARCHES:
        assert inproc.code(action, GroupIds=["g"], Image=turned) == \
            "InvalidParameterValue.NoFaceInPhoto"
        out = inproc.call(action, GroupIds=["g"], Image=turned, NeedRotateDetection=1)
        assert ids(cands(out))[0] == "colin" and cands(out)[0]["Score"] >= 60


# --- the index follows every write ------------------------------------------------------------

def _person_score(client, groups, person, image=COLIN) -> float | None:
    out = client.call("SearchPersons", GroupIds=groups, Image=image, MaxPersonNum=100)
    return next((c["Score"] for c in cands(out) if c["PersonId"] == person), None)


@backends("inproc")
def test_fused_features_follow_writes(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    inproc.call("CreateGroup", GroupId="g2", GroupName="G2")
    enrol(inproc, "g", "colin", "Colin_Powell", 38)
    enrol(inproc, "g", "tony", "Tony_Blair", 6)
    enrol(inproc, "g2", "gul", "Abdullah_Gul", 1)

    def verify():
        return inproc.call("VerifyPerson", PersonId="colin", Image=COLIN)["Score"]

    one_face = _person_score(inproc, ["g"], "colin")
    assert abs(one_face - verify()) < 0.02
    added = inproc.call("CreateFace", PersonId="colin", FaceMatchThreshold=0,
                        Images=[lfw("Colin_Powell", 49), lfw("Colin_Powell", 71)])["SucFaceIds"]
    three_faces = _person_score(inproc, ["g"], "colin")
    assert abs(three_faces - verify()) < 0.02 and abs(three_faces - one_face) > 0.5
    # SearchFaces sees the new faces one by one.
    face_ids = {c["FaceId"] for c in cands(inproc.call("SearchFaces", GroupIds=["g"], Image=COLIN))}
    assert face_ids & set(inproc.call("GetPersonBaseInfo", PersonId="colin")["FaceIds"])

    inproc.call("DeleteFace", PersonId="colin", FaceIds=added)
    assert abs(_person_score(inproc, ["g"], "colin") - one_face) < 0.02
    out = inproc.call("SearchFaces", GroupIds=["g"], Image=lfw("Colin_Powell", 71))
    assert not {c["FaceId"] for c in cands(out)} & set(added)

    inproc.call("CopyPerson", PersonId="colin", GroupIds=["g2"])
    assert abs(_person_score(inproc, ["g2"], "colin") - one_face) < 0.02
    inproc.call("DeletePersonFromGroup", PersonId="colin", GroupId="g2")
    assert _person_score(inproc, ["g2"], "colin") is None
    assert _person_score(inproc, ["g"], "colin") is not None
    inproc.call("DeletePerson", PersonId="colin")
    assert _person_score(inproc, ["g"], "colin") is None
    for action in SEARCHES:
        assert "colin" not in every_id(inproc.call(action, GroupIds=["g"], Image=COLIN))
    # A person whose only group is left is deleted with it (DeletePersonFromGroup).
    inproc.call("DeletePersonFromGroup", PersonId="gul", GroupId="g2")
    assert inproc.code("SearchPersons", GroupIds=["g2"], Image=COLIN) == \
        "InvalidParameterValue.NoFaceInGroups"


@backends("inproc")
def test_stale_index_hits_are_never_returned(inproc):
    """Rows deleted behind the index's back (no change logged) are dropped by the database
    check that every hit goes through."""
    from sqlalchemy import delete, select

    from openiai.store.db import Database
    from openiai.store.schema import Face, Membership, Person

    three_people(inproc)
    inproc.call("CreateGroup", GroupId="g2", GroupName="G2")
    inproc.call("CopyPerson", PersonId="tony", GroupIds=["g2"])
    inproc.call("CreateFace", PersonId="tony", Images=[lfw("Tony_Blair", 18)],
                FaceMatchThreshold=0)
    for action in SEARCHES:
        assert every_id(inproc.call(action, GroupIds=["g", "g2"], Image=COLIN)) == \
            {"colin", "tony", "gul"}
    # A connection of its own, as another program would write: nothing logged, index not told.
    db = Database(inproc.services.settings.db_url)
    acct = inproc.account_id
    try:
        with db.write() as s:
            colin = s.scalar(select(Person.pk).where(Person.account_id == acct,
                                                     Person.person_id == "colin"))
            tony = s.scalar(select(Person.pk).where(Person.account_id == acct,
                                                    Person.person_id == "tony"))
            s.execute(delete(Face).where(Face.person_pk == colin))
            s.execute(delete(Membership).where(Membership.person_pk == colin))
            s.execute(delete(Person).where(Person.pk == colin))
            s.execute(delete(Membership).where(Membership.person_pk == tony))
    finally:
        db.dispose()
    for action in SEARCHES:
        out = inproc.call(action, GroupIds=["g", "g2"], Image=COLIN, NeedPersonInfo=1)
        assert every_id(out) == {"gul"}, action


# --- CreatePerson UniquePersonControl -----------------------------------------------------------

@backends("inproc")
def test_unique_person_control(inproc):
    from openiai.vision.scores import score_for_far

    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    inproc.call("CreateGroup", GroupId="other", GroupName="Other")
    # The account's first face: nothing indexed yet, nothing similar.
    assert enrol(inproc, "g", "colin", "Colin_Powell", 38, UniquePersonControl=4)[
        "SimilarPersonId"] == ""
    enrol(inproc, "g", "tony", "Tony_Blair", 6, UniquePersonControl=4)
    same = inproc.call("CompareFace", ImageA=lfw("Colin_Powell", 38), ImageB=COLIN)["Score"]
    assert same >= score_for_far(1e-5)  # so every level must flag this duplicate
    for level, far in enumerate((1e-2, 1e-3, 1e-4, 1e-5), start=1):
        out = inproc.call("CreatePerson", GroupId="g", PersonId=f"dup{level}", PersonName="Dup",
                          Image=COLIN, UniquePersonControl=level)
        assert out["SimilarPersonId"] == "colin" and out["FaceId"] == "", (level, far)
        assert out["FaceRect"]["Width"] > 0 and out["FaceModelVersion"] == "3.0"
        assert inproc.code("GetPersonBaseInfo", PersonId=f"dup{level}") == \
            "InvalidParameterValue.PersonIdNotExist"
    # A different person, at the most permissive level: created.
    diff = inproc.call("CompareFace", ImageA=lfw("Colin_Powell", 38),
                       ImageB=lfw("Gerhard_Schroeder", 3))["Score"]
    assert diff < score_for_far(1e-2)
    out = inproc.call("CreatePerson", GroupId="g", PersonId="gerhard", PersonName="G",
                      Image=lfw("Gerhard_Schroeder", 3), UniquePersonControl=1)
    assert out["SimilarPersonId"] == "" and re.fullmatch(r"\d{19}", out["FaceId"])
    # Only the target group is checked.
    out = inproc.call("CreatePerson", GroupId="other", PersonId="colin-b", PersonName="C",
                      Image=COLIN, UniquePersonControl=4)
    assert out["SimilarPersonId"] == "" and out["FaceId"]
    # A deleted person is no duplicate any more.
    inproc.call("DeletePerson", PersonId="colin")
    out = inproc.call("CreatePerson", GroupId="g", PersonId="colin-c", PersonName="C",
                      Image=COLIN, UniquePersonControl=4)
    assert out["SimilarPersonId"] == ""
    assert inproc.call("GetPersonListNum", GroupId="g")["PersonNum"] == 3  # tony, gerhard, colin-c


@backends("inproc")
def test_unique_person_control_levels_follow_the_score(inproc):
    """Each level flags exactly when the best score reaches its FAR's score."""
    from openiai.vision.scores import score_for_far

    inproc.call("CreateGroup", GroupId="g", GroupName="G")
    enrol(inproc, "g", "koizumi", "Junichiro_Koizumi", 1)
    probe = ("Junichiro_Koizumi", 20)
    score = inproc.call("CompareFace", ImageA=lfw("Junichiro_Koizumi", 1),
                        ImageB=lfw(*probe))["Score"]
    for level, far in enumerate((1e-2, 1e-3, 1e-4, 1e-5), start=1):
        out = inproc.call("CreatePerson", GroupId="g", PersonId=f"p{level}", PersonName="P",
                          Image=lfw(*probe), UniquePersonControl=level)
        flagged = out["SimilarPersonId"] == "koizumi"
        threshold = score_for_far(far)
        if abs(score - threshold) > 0.05:  # away from the knife edge of rounding
            assert flagged == (score >= threshold), (level, score, threshold)
        if not flagged:
            inproc.call("DeletePerson", PersonId=f"p{level}")
