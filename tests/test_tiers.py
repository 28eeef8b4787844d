"""The in-process tier answers what the server answers over HTTP, so a test may sit on either.

Both clients here start from a fresh account on SQLite; the HTTP one goes through the official
SDK to ``engine_server``, the in-process one through ``openiai.api.dispatch``.
"""

from __future__ import annotations

import uuid

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from harness import Api
from images import lfw
from inproc import InProcessApi

CALLS = [
    ("CreateGroup", {"GroupId": "g", "GroupName": "员工", "GroupExDescriptions": ["Dept"]}),
    ("GetGroupInfo", {"GroupId": "g"}),
    ("GetGroupList", {"Offset": 0, "Limit": 5}),
    ("CreatePerson", {"GroupId": "g", "PersonId": "p", "PersonName": "P", "Gender": 1,
                      "Image": lfw("Colin_Powell", 38)}),
    ("GetPersonList", {"GroupId": "g"}),
    ("DetectFace", {"Image": lfw("Colin_Powell", 40), "MaxFaceNum": 2}),
    ("CreateGroup", {"GroupId": "g", "GroupName": "again"}),  # an error
    ("GetGroupList", {"Limit": 1001}),  # an error from validation in the handler
    ("CreateGroup", {"GroupName": "n"}),  # MissingParameter from the schema
]
# Differ between any two calls, whichever the tier.
VOLATILE = {"RequestId", "CreationTimestamp", "UpdateTimestamp", "FaceId", "FaceIds"}


def _answer(client, action: str, params: dict):
    try:
        return _stable(client.call(action, **params))
    except TencentCloudSDKException as exc:
        return {"Error": exc.code, "Message": exc.message}


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


@pytest.fixture
def both(engine_server, inproc_services):
    """(HTTP client, in-process client), each on a fresh account."""
    name = f"tiers-{uuid.uuid4().hex[:8]}"
    services = inproc_services("sqlite")
    return (Api(engine_server, *engine_server.create_key(name)),
            InProcessApi(services, services.keys.ensure_account(name)))


@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
def test_same_answers_types_and_errors_on_both_tiers(both, version):
    http, inproc = (c.variant(version=version) for c in both)
    for action, params in CALLS:
        over_http = _answer(http, action, params)
        assert _answer(inproc, action, params) == over_http, action
        if action == "DetectFace":
            face = over_http["FaceInfos"][0]
            assert all(isinstance(face[k], int) for k in ("X", "Y", "Width", "Height"))


def test_unknown_parameters_are_dropped_as_the_sdk_drops_them(inproc):
    with pytest.warns(UserWarning, match="Banana"):  # the SDK's own warning
        out = inproc.call("GetGroupList", Banana=1)
    assert out["GroupNum"] == 0


def test_an_error_carries_code_message_and_request_id(inproc):
    err = inproc.error("GetGroupInfo", GroupId="nope")
    assert err.code == "InvalidParameterValue.GroupIdNotExist"
    assert "nope" in err.message and uuid.UUID(err.requestId).version == 4


def test_a_handler_bug_surfaces_as_itself(inproc, monkeypatch):
    """Not as InternalError: the test fails with the handler's own traceback."""
    from openiai.actions import registry

    def broken(ctx, request):
        raise KeyError("the bug")

    monkeypatch.setitem(registry.HANDLERS, "GetGroupList", broken)
    with pytest.raises(KeyError, match="the bug"):
        inproc.call("GetGroupList")


def test_signing_and_methods_are_not_a_variant_in_process(inproc):
    with pytest.raises(TypeError):
        inproc.variant(sign="HmacSHA1")
