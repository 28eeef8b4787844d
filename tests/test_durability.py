"""A write the server acknowledged survives SIGKILL of the server and a restart, on SQLite and
PostgreSQL. Each test runs its own server (the shared fixture must not be killed)."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from conftest import TESTDATA
from harness import Api, Server


@pytest.fixture
def own_server(database_url, tmp_path):
    srv = Server(tmp_path / "srv", database_url=database_url)
    srv.start()
    yield srv
    srv.kill()
    if srv._keys is not None:
        srv._keys.db.dispose()


def _restart_after_sigkill(srv: Server) -> None:
    pid = srv.proc.pid
    srv.kill()
    srv.start()
    assert srv.proc.pid != pid


def test_acknowledged_group_writes_survive_sigkill(own_server):
    srv = own_server
    api = Api(srv, *srv.create_key("durable"))
    for i in range(5):
        api.call("CreateGroup", GroupId=f"g{i}", GroupName=f"G{i}", Tag="t",
                 GroupExDescriptions=["a", "b"])
    api.call("ModifyGroup", GroupId="g1", GroupName="Renamed", Tag="new",
             GroupExDescriptionInfos=[{"GroupExDescriptionIndex": 1,
                                       "GroupExDescription": "bee"}])
    api.call("DeleteGroup", GroupId="g2")
    # the last acknowledged write, immediately before the kill
    api.call("CreateGroup", GroupId="last", GroupName="Last")

    _restart_after_sigkill(srv)

    listed = api.call("GetGroupList", Limit=100)
    assert sorted(g["GroupId"] for g in listed["GroupInfos"]) == ["g0", "g1", "g3", "g4", "last"]
    info = api.call("GetGroupInfo", GroupId="g1")
    assert (info["GroupName"], info["Tag"], info["GroupExDescriptions"]) == \
        ("Renamed", "new", ["a", "bee"])
    assert api.code("GetGroupInfo", GroupId="g2") == "InvalidParameterValue.GroupIdNotExist"
    # the key (and its encrypted secret) survived too, and writes work after the restart
    api.call("CreateGroup", GroupId="after", GroupName="After")
    assert api.call("GetGroupList")["GroupNum"] == 6


def test_concurrent_acknowledged_writes_survive_sigkill(own_server):
    """Many writers at once, killed the moment the last one is acknowledged: every
    acknowledged CreateGroup is there after the restart."""
    srv = own_server
    api = Api(srv, *srv.create_key("durable-burst"))

    def create(i: int) -> str | None:
        try:
            api.variant().call("CreateGroup", GroupId=f"c{i}", GroupName=f"C{i}")
            return f"c{i}"
        except TencentCloudSDKException:
            return None

    with ThreadPoolExecutor(8) as pool:
        acknowledged = {g for g in pool.map(create, range(40)) if g}
    assert len(acknowledged) == 40
    _restart_after_sigkill(srv)
    listed = api.call("GetGroupList", Limit=1000)
    assert {g["GroupId"] for g in listed["GroupInfos"]} == acknowledged


def test_acknowledged_person_survives_sigkill(own_server):
    from openiai.actions.registry import HANDLERS

    assert "CreatePerson" in HANDLERS
    srv = own_server
    api = Api(srv, *srv.create_key("durable-person"))
    image = base64.b64encode((TESTDATA / "lfw" / "images" / "Aaron_Eckhart" /
                              "Aaron_Eckhart_0001.jpg").read_bytes()).decode()
    api.call("CreateGroup", GroupId="g", GroupName="G")
    face_id = api.call("CreatePerson", GroupId="g", PersonId="p", PersonName="Aaron",
                       Image=image)["FaceId"]
    _restart_after_sigkill(srv)
    base = api.call("GetPersonBaseInfo", PersonId="p")
    assert (base["PersonName"], base["FaceIds"]) == ("Aaron", [face_id])
    assert api.call("GetPersonListNum", GroupId="g")["PersonNum"] == 1
