"""Scale-out: real servers on PostgreSQL.

(PostgreSQL + Milvus Lite as the vector engine is the ``postgres+milvus`` run of the search,
isolation and SIGKILL tests: test_search, test_isolation, test_index_crash; see conftest.backends.)

* Two server processes on one PostgreSQL (each with its own in-process index, kept in step
  through the change log): a person enrolled through one is found through the other within
  1 s, and a SIGKILL of either loses no acknowledged write.
* ``openiai serve --workers 2``: a SIGKILLed worker is started again and nothing acknowledged
  is lost.

Skipped, with the reason printed, where PostgreSQL is not reachable.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from harness import Api, Server
from images import LFW, b64

# conftest's throw-away database, PostgreSQL only (skipped, with the reason printed, without one)
ONLY_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def photo(name: str, i: int = 0) -> str:
    return b64(sorted((LFW / name).glob("*.jpg"))[i])


def identities(n: int) -> list[str]:
    people = sorted(p.name for p in LFW.iterdir() if p.is_dir())
    return people[3::11][:n]


def top_person(api: Api, image: str, group: str = "g") -> str | None:
    try:
        out = api.call("SearchPersons", GroupIds=[group], Image=image, MaxPersonNum=1)
    except TencentCloudSDKException as exc:
        if exc.code == "InvalidParameterValue.NoFaceInGroups":  # its index has not caught up yet
            return None
        raise
    cands = out["Results"][0]["Candidates"]
    return cands[0]["PersonId"] if cands and cands[0]["Score"] >= 60 else None


class Enroller:
    """Enrols identities one after another in a thread until stopped or its server dies;
    keeps the PersonIds whose CreatePerson was acknowledged."""

    def __init__(self, api: Api, names: list[str], group: str = "g") -> None:
        self.api, self.names, self.group = api, names, group
        self.acked: dict[str, str] = {}  # PersonId -> name
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i, name in enumerate(self.names):
            pid = f"{self.group}-{i}"
            try:
                self.api.call("CreatePerson", GroupId=self.group, PersonId=pid, PersonName=name,
                              Image=photo(name))
            except Exception:  # the server was killed under it: not acknowledged
                return
            self.acked[pid] = name

    def start(self) -> "Enroller":
        self.thread.start()
        return self

    def wait_for(self, n: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while len(self.acked) < n and self.thread.is_alive() and time.time() < deadline:
            time.sleep(0.05)


def assert_all_found(api: Api, acked: dict[str, str], group: str = "g") -> None:
    for pid, name in acked.items():
        assert top_person(api, photo(name), group) == pid, (pid, name)


# ------------------------------------------------------------------ two processes, one database
@ONLY_POSTGRES
def test_two_servers_on_one_postgres(database_url, tmp_path):
    one = Server(tmp_path / "one", database_url=database_url)
    one.start()
    two = Server(tmp_path / "two", database_url=database_url)
    two.data_dir.mkdir(parents=True)
    shutil.copy(one.data_dir / "master.key", two.data_dir / "master.key")  # keys decrypt on both
    two.start()
    try:
        key = one.create_key(f"acct-{uuid.uuid4().hex[:6]}")
        via_one, via_two = Api(one, *key), Api(two, *key)
        via_one.call("CreateGroup", GroupId="g", GroupName="G")
        via_two.call("DetectFace", Image=photo("Colin_Powell"))  # its models loaded: time the index alone
        via_one.call("CreatePerson", GroupId="g", PersonId="colin", PersonName="C", Image=photo("Colin_Powell"))
        acked = time.monotonic()
        probe = photo("Colin_Powell", 1)
        # A search that starts within 1 s of the acknowledgement finds it (the search's own
        # time is not the sync's: on a loaded machine one search can take longer than that).
        while True:
            started = time.monotonic() - acked
            if top_person(via_two, probe) == "colin":
                break
            assert started < 1.0, "not found through the other process within 1 s"
            time.sleep(0.05)
        # SIGKILL of the process that took the writes: the other one has every acknowledged one.
        writer = Enroller(via_one, identities(8)).start()
        writer.wait_for(3)
        one.kill()
        writer.thread.join(30)
        time.sleep(1.0)  # the other process's log poll (0.5 s)
        assert len(writer.acked) >= 3
        assert_all_found(via_two, writer.acked)
    finally:
        for srv in (one, two):
            srv.kill()
            if srv._keys is not None:
                srv._keys.db.dispose()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@ONLY_POSTGRES
def test_serve_workers_restarts_a_killed_worker(database_url, tmp_path):
    srv = Server(tmp_path / "srv", database_url=database_url)
    srv.serve_args = ["--workers", "2"]
    srv.start()
    try:
        workers = _children(srv.proc.pid)
        assert len(workers) == 2
        api = Api(srv, *srv.create_key(f"w-{uuid.uuid4().hex[:6]}"))
        api.call("CreateGroup", GroupId="g", GroupName="G")
        writer = Enroller(api, identities(5)).start()
        writer.wait_for(2)
        import os
        import signal

        os.kill(workers[1], signal.SIGKILL)
        writer.thread.join(60)
        deadline = time.time() + 60
        while len(set(_children(srv.proc.pid)) - {workers[1]}) < 2 and time.time() < deadline:
            time.sleep(0.2)
        assert len(set(_children(srv.proc.pid)) - {workers[1]}) == 2, "the killed worker was not started again"
        time.sleep(1.0)
        passes = 0
        for _ in range(6):  # connections land on either worker: every answer has every write
            try:
                assert_all_found(api, writer.acked)
                passes += 1
            except TencentCloudSDKException:  # the restarted worker still loading its models
                time.sleep(1)
        assert passes >= 3
    finally:
        srv.stop()
        if srv._keys is not None:
            srv._keys.db.dispose()
