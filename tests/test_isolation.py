"""Accounts are walled off from each other: two accounts using the same GroupId and PersonId
see, change and delete only their own. Runs on SQLite and PostgreSQL (the ``api`` fixture); what
the vector index holds (persons, searches) also on PostgreSQL + Milvus Lite (``backends``)."""

from __future__ import annotations

import base64
import uuid

import pytest

from conftest import TESTDATA, backends
from harness import Api

LFW = TESTDATA / "lfw" / "images"
NOT_GROUP = "InvalidParameterValue.GroupIdNotExist"
NOT_PERSON = "InvalidParameterValue.PersonIdNotExist"


def lfw(name: str, number: int = 1) -> str:
    return base64.b64encode((LFW / name / f"{name}_{number:04d}.jpg").read_bytes()).decode()


@pytest.fixture
def pair(api) -> tuple[Api, Api]:
    secret_id, secret_key = api.server.create_key(f"iso-b-{uuid.uuid4().hex[:8]}")
    return api, Api(api.server, secret_id, secret_key)


def _groups(c: Api) -> dict[str, dict]:
    return {g["GroupId"]: g for g in c.call("GetGroupList", Limit=1000)["GroupInfos"]}


def test_groups_are_per_account(pair):
    a, b = pair
    a.call("CreateGroup", GroupId="shared", GroupName="Same name", Tag="A",
           GroupExDescriptions=["a1"])
    # The same GroupId and GroupName are free in another account.
    b.call("CreateGroup", GroupId="shared", GroupName="Same name", Tag="B",
           GroupExDescriptions=["b1", "b2"])
    a.call("CreateGroup", GroupId="a-only", GroupName="A only")

    assert set(_groups(a)) == {"shared", "a-only"}
    assert set(_groups(b)) == {"shared"}
    assert b.call("GetGroupList")["GroupNum"] == 1
    assert a.call("GetGroupInfo", GroupId="shared")["Tag"] == "A"
    assert b.call("GetGroupInfo", GroupId="shared")["GroupExDescriptions"] == ["b1", "b2"]

    # B cannot read, modify or delete A's group
    assert b.code("GetGroupInfo", GroupId="a-only") == NOT_GROUP
    assert b.code("ModifyGroup", GroupId="a-only", GroupName="pwned") == NOT_GROUP
    assert b.code("DeleteGroup", GroupId="a-only") == NOT_GROUP
    # B's changes to its own "shared" leave A's alone
    b.call("ModifyGroup", GroupId="shared", GroupName="B's", Tag="changed",
           GroupExDescriptionInfos=[{"GroupExDescriptionIndex": 0, "GroupExDescription": "x"}])
    info = a.call("GetGroupInfo", GroupId="shared")
    assert (info["GroupName"], info["Tag"], info["GroupExDescriptions"]) == \
        ("Same name", "A", ["a1"])
    b.call("DeleteGroup", GroupId="shared")
    assert b.code("GetGroupInfo", GroupId="shared") == NOT_GROUP
    assert a.call("GetGroupInfo", GroupId="shared")["GroupName"] == "Same name"
    assert set(_groups(a)) == {"shared", "a-only"}

    # and B can now make its own "a-only" without touching A's
    b.call("CreateGroup", GroupId="a-only", GroupName="B's a-only")
    assert a.call("GetGroupInfo", GroupId="a-only")["GroupName"] == "A only"


def test_group_isolation_with_every_signing(pair):
    a, b = pair
    a.call("CreateGroup", GroupId="g", GroupName="A")
    for sign, method in [("HmacSHA256", "GET"), ("HmacSHA1", "POST"), ("TC3-HMAC-SHA256", "GET")]:
        bv = b.variant(sign=sign, method=method)
        assert bv.code("GetGroupInfo", GroupId="g") == NOT_GROUP
        assert bv.call("GetGroupList")["GroupNum"] == 0


def _person_state(c: Api, person_id: str) -> tuple:
    base = c.call("GetPersonBaseInfo", PersonId=person_id)
    groups = c.call("GetPersonGroupInfo", PersonId=person_id)
    return (base["PersonName"], base["Gender"], tuple(base["FaceIds"]),
            tuple((g["GroupId"], tuple(g["PersonExDescriptions"]))
                  for g in groups["PersonGroupInfos"]))


@backends("server")
def test_persons_are_per_account(pair):
    a, b = pair
    for c in (a, b):
        c.call("CreateGroup", GroupId="shared", GroupName="Shared", GroupExDescriptions=["d"])
    a.call("CreateGroup", GroupId="a-only", GroupName="A only")
    b.call("CreateGroup", GroupId="b-only", GroupName="B only")

    fa = a.call("CreatePerson", GroupId="shared", PersonId="p", PersonName="Aaron", Gender=1,
                Image=lfw("Aaron_Eckhart"))["FaceId"]
    fb = b.call("CreatePerson", GroupId="shared", PersonId="p", PersonName="Gul", Gender=2,
                Image=lfw("Abdullah_Gul"))["FaceId"]
    assert fa != fb
    a.call("CreatePerson", GroupId="a-only", PersonId="pa", PersonName="Amelie",
           Image=lfw("Amelie_Mauresmo"))
    a.call("CopyPerson", PersonId="p", GroupIds=["a-only"])
    before_p, before_pa = _person_state(a, "p"), _person_state(a, "pa")
    assert before_p[:3] == ("Aaron", 1, (fa,))

    # each sees its own "p"
    assert _person_state(b, "p")[:3] == ("Gul", 2, (fb,))
    assert a.call("GetPersonListNum", GroupId="shared")["PersonNum"] == 1
    assert [p["PersonName"] for p in b.call("GetPersonList", GroupId="shared")["PersonInfos"]] \
        == ["Gul"]

    # B cannot read A's person or group
    assert b.code("GetPersonBaseInfo", PersonId="pa") == NOT_PERSON
    assert b.code("GetPersonGroupInfo", PersonId="pa") == NOT_PERSON
    assert b.code("GetPersonList", GroupId="a-only") == NOT_GROUP
    assert b.code("GetPersonListNum", GroupId="a-only") == NOT_GROUP
    # ... nor modify it
    assert b.code("ModifyPersonBaseInfo", PersonId="pa", PersonName="pwned") == NOT_PERSON
    assert b.code("ModifyPersonGroupInfo", GroupId="a-only", PersonId="pa",
                  PersonExDescriptionInfos=[{"PersonExDescriptionIndex": 0,
                                             "PersonExDescription": "x"}]) in (NOT_GROUP,
                                                                                NOT_PERSON)
    assert b.code("CreateFace", PersonId="pa", Images=[lfw("Amelie_Mauresmo", 3)]) == NOT_PERSON
    assert b.code("DeleteFace", PersonId="pa", FaceIds=[fa]) == NOT_PERSON
    # A's FaceId named on B's own person matches nothing of B's
    b.call("CreateFace", PersonId="p", Images=[lfw("Abdullah_Gul", 6)])
    out = b.call("DeleteFace", PersonId="p", FaceIds=[fa])
    assert out["SucDeletedNum"] == 0
    # ... nor copy into or out of A's groups
    assert b.code("CopyPerson", PersonId="p", GroupIds=["a-only"]) == NOT_GROUP
    assert b.code("CopyPerson", PersonId="pa", GroupIds=["b-only"]) == NOT_PERSON
    assert b.code("CreatePerson", GroupId="a-only", PersonId="x", PersonName="x",
                  Image=lfw("Abdullah_Gul")) == NOT_GROUP
    # ... nor delete it
    assert b.code("DeletePersonFromGroup", GroupId="a-only", PersonId="pa") in (NOT_GROUP,
                                                                                 NOT_PERSON)
    assert b.code("DeletePersonFromGroup", GroupId="b-only", PersonId="pa") == NOT_PERSON
    assert b.code("DeletePerson", PersonId="pa") == NOT_PERSON
    # ... nor verify against it
    assert b.code("VerifyPerson", PersonId="pa", Image=lfw("Amelie_Mauresmo", 3)) == NOT_PERSON

    # B's changes to its own "p" leave A's "p" alone
    b.call("ModifyPersonBaseInfo", PersonId="p", PersonName="Changed")
    b.call("ModifyPersonGroupInfo", GroupId="shared", PersonId="p", PersonExDescriptionInfos=[
        {"PersonExDescriptionIndex": 0, "PersonExDescription": "B"}])
    b.call("CopyPerson", PersonId="p", GroupIds=["b-only"])
    b.call("DeletePersonFromGroup", GroupId="shared", PersonId="p")
    b.call("DeletePerson", PersonId="p")
    assert b.code("GetPersonBaseInfo", PersonId="p") == NOT_PERSON
    b.call("DeleteGroup", GroupId="shared")

    assert _person_state(a, "p") == before_p
    assert _person_state(a, "pa") == before_pa
    counts = a.call("GetPersonListNum", GroupId="shared")
    assert (counts["PersonNum"], counts["FaceNum"]) == (1, 1)
    assert a.call("GetPersonList", GroupId="a-only")["PersonNum"] == 2


SEARCHES = ["SearchFaces", "SearchFacesReturnsByGroup", "SearchPersons",
            "SearchPersonsReturnsByGroup"]


def _found(out: dict) -> list[dict]:
    """Every candidate of the first searched face, over its groups."""
    res = (out.get("ResultsReturnsByGroup") or out["Results"])[0]
    groups = res.get("GroupCandidates") or [{"Candidates": res.get("Candidates") or []}]
    return [c for g in groups for c in g["Candidates"]]


@backends("server")
def test_searches_are_per_account(pair):
    """Same GroupId and PersonId in two accounts: each search, count and duplicate check sees
    its own account's vectors only, whichever engine holds them."""
    a, b = pair
    for c in (a, b):
        c.call("CreateGroup", GroupId="g", GroupName="G")
    a.call("CreatePerson", GroupId="g", PersonId="p", PersonName="Colin", Image=lfw("Colin_Powell", 38))
    a.call("CreatePerson", GroupId="g", PersonId="t", PersonName="Tony", Image=lfw("Tony_Blair", 6))
    b.call("CreatePerson", GroupId="g", PersonId="p", PersonName="Gul", Image=lfw("Abdullah_Gul"))
    colin = lfw("Colin_Powell", 40)
    for action in SEARCHES:
        mine = _found(a.call(action, GroupIds=["g"], Image=colin, NeedPersonInfo=1))
        assert [(x["PersonId"], x["PersonName"]) for x in mine][:1] == [("p", "Colin")], action
        assert mine[0]["Score"] >= 60
        theirs = _found(b.call(action, GroupIds=["g"], Image=colin, NeedPersonInfo=1))
        assert [(x["PersonId"], x["PersonName"]) for x in theirs] == [("p", "Gul")], action
        assert theirs[0]["Score"] < 60
    assert b.call("SearchPersons", GroupIds=["g"], Image=colin)["PersonNum"] == 1
    assert b.call("SearchFaces", GroupIds=["g"], Image=colin)["FaceNum"] == 1
    # A's Colin is no duplicate in B's group.
    out = b.call("CreatePerson", GroupId="g", PersonId="c", PersonName="C", Image=colin,
                 UniquePersonControl=4)
    assert out["SimilarPersonId"] == "" and out["FaceId"]
    # B's deletes leave A's vectors alone; A's delete leaves B's.
    b.call("DeletePerson", PersonId="p")
    b.call("DeletePerson", PersonId="c")
    assert b.code("SearchPersons", GroupIds=["g"], Image=colin) == \
        "InvalidParameterValue.NoFaceInGroups"
    assert _found(a.call("SearchPersons", GroupIds=["g"], Image=colin))[0]["PersonId"] == "p"
    b.call("CreatePerson", GroupId="g", PersonId="t", PersonName="Tony B", Image=lfw("Tony_Blair", 6))
    a.call("DeleteGroup", GroupId="g")
    theirs = _found(b.call("SearchFaces", GroupIds=["g"], Image=lfw("Tony_Blair", 32), NeedPersonInfo=1))
    assert [(x["PersonId"], x["PersonName"]) for x in theirs] == [("t", "Tony B")]
