"""Group management.

The lifecycle runs through the official SDK over HTTP with every signing and both API
versions; the limits and error tables run in-process (``inproc``: the same dispatch, no wire).
"""

import pytest

from harness import SIGNINGS


@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
@pytest.mark.parametrize("sign,method", SIGNINGS)
def test_group_lifecycle_every_signing_and_version(api, version, sign, method):
    c = api.variant(version=version, sign=sign, method=method)
    out = c.call("CreateGroup", GroupId="staff-1", GroupName="Staff 1", Tag="t",
                 GroupExDescriptions=["Dept", "工号"], FaceModelVersion="3.0")
    assert out["FaceModelVersion"] == "3.0"
    info = c.call("GetGroupInfo", GroupId="staff-1")
    assert info["GroupName"] == "Staff 1" and info["GroupExDescriptions"] == ["Dept", "工号"]
    assert info["Tag"] == "t" and isinstance(info["CreationTimestamp"], int)
    c.call("ModifyGroup", GroupId="staff-1", GroupName="Staff One", Tag="u",
           GroupExDescriptionInfos=[{"GroupExDescriptionIndex": 0, "GroupExDescription": "Team"}])
    info = c.call("GetGroupInfo", GroupId="staff-1")
    assert (info["GroupName"], info["Tag"], info["GroupExDescriptions"]) == \
        ("Staff One", "u", ["Team", "工号"])
    listed = c.call("GetGroupList")
    assert listed["GroupNum"] == 1 and listed["GroupInfos"][0]["GroupId"] == "staff-1"
    c.call("DeleteGroup", GroupId="staff-1")
    assert c.code("GetGroupInfo", GroupId="staff-1") == "InvalidParameterValue.GroupIdNotExist"


def test_group_list_pagination(inproc):
    for i in range(7):
        inproc.call("CreateGroup", GroupId=f"g{i}", GroupName=f"G{i}")
    page1 = inproc.call("GetGroupList", Offset=0, Limit=3)
    page3 = inproc.call("GetGroupList", Offset=6, Limit=3)
    assert page1["GroupNum"] == 7 and [g["GroupId"] for g in page1["GroupInfos"]] == ["g0", "g1", "g2"]
    assert [g["GroupId"] for g in page3["GroupInfos"]] == ["g6"]
    assert len(inproc.call("GetGroupList")["GroupInfos"]) == 7  # default Limit 10
    assert inproc.code("GetGroupList", Limit=1001) == "InvalidParameterValue.LimitExceed"


@pytest.mark.parametrize("params,code", [
    ({"GroupId": "has space", "GroupName": "n"}, "InvalidParameterValue.GroupIdIllegal"),
    ({"GroupId": "中文", "GroupName": "n"}, "InvalidParameterValue.GroupIdIllegal"),
    ({"GroupId": "x" * 65, "GroupName": "n"}, "InvalidParameterValue.GroupIdTooLong"),
    ({"GroupId": "g", "GroupName": "n" * 61}, "InvalidParameterValue.GroupNameTooLong"),
    ({"GroupId": "g", "GroupName": ""}, "InvalidParameterValue.GroupNameIllegal"),
    ({"GroupId": "g", "GroupName": "n", "Tag": "t" * 41}, "InvalidParameterValue.GroupTagTooLong"),
    ({"GroupId": "g", "GroupName": "n", "GroupExDescriptions": list("abcdef")},
     "InvalidParameterValue.GroupExDescriptionsExceed"),
    ({"GroupId": "g", "GroupName": "n", "GroupExDescriptions": ["a" * 31]},
     "InvalidParameterValue.GroupExDescriptionsNameTooLong"),
    ({"GroupId": "g", "GroupName": "n", "GroupExDescriptions": [""]},
     "InvalidParameterValue.GroupExDescriptionsNameIllegal"),
    ({"GroupId": "g", "GroupName": "n", "GroupExDescriptions": ["a", "a"]},
     "InvalidParameterValue.GroupExDescriptionsNameIdentical"),
    ({"GroupId": "g", "GroupName": "n", "FaceModelVersion": "4.0"},
     "InvalidParameterValue.FaceModelVersionIllegal"),
    ({"GroupName": "n"}, "MissingParameter"),
])
def test_create_group_limits(inproc, params, code):
    assert inproc.code("CreateGroup", **params) == code


def test_group_id_and_name_are_unique(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="n")
    assert inproc.code("CreateGroup", GroupId="g", GroupName="other") == \
        "InvalidParameterValue.GroupIdAlreadyExist"
    assert inproc.code("CreateGroup", GroupId="g2", GroupName="n") == \
        "InvalidParameterValue.GroupNameAlreadyExist"
    inproc.call("CreateGroup", GroupId="g2", GroupName="n2")
    assert inproc.code("ModifyGroup", GroupId="g2", GroupName="n") == \
        "InvalidParameterValue.GroupNameAlreadyExist"


def test_id_limits_accept_the_documented_alphabet(inproc):
    gid = "aZ09-%@#&_" + "x" * 54  # exactly 64 bytes
    inproc.call("CreateGroup", GroupId=gid, GroupName="n")
    assert inproc.call("GetGroupInfo", GroupId=gid)["GroupId"] == gid


def test_modify_group_ex_descriptions(inproc):
    inproc.call("CreateGroup", GroupId="g", GroupName="n", GroupExDescriptions=["a", "b"])
    inproc.call("ModifyGroup", GroupId="g", GroupExDescriptionInfos=[
        {"GroupExDescriptionIndex": 2, "GroupExDescription": "c"}])
    assert inproc.call("GetGroupInfo", GroupId="g")["GroupExDescriptions"] == ["a", "b", "c"]
    assert inproc.code("ModifyGroup", GroupId="g", GroupExDescriptionInfos=[
        {"GroupExDescriptionIndex": 1, "GroupExDescription": "a"}]) == \
        "FailedOperation.DuplicatedGroupDescription"
    assert inproc.code("ModifyGroup", GroupId="g", GroupExDescriptionInfos=[
        {"GroupExDescriptionIndex": 7, "GroupExDescription": "z"}]) == \
        "InvalidParameterValue.GroupExDescriptionsExceed"
    assert inproc.call("GetGroupInfo", GroupId="g")["GroupExDescriptions"] == ["a", "b", "c"]
    assert inproc.code("ModifyGroup", GroupId="nope", Tag="x") == \
        "InvalidParameterValue.GroupIdNotExist"
