"""SIGKILL during enrolment, again and again: after each restart every acknowledged person is
found by search and no deleted person is ever returned.

Snapshots are forced to happen every few changes, so kills land before, during and after
snapshot writes, and restarts go through both "snapshot + log replay" and the log alone.

On SQLite and PostgreSQL with the in-process FAISS index (20 kills each), and on PostgreSQL +
Milvus Lite (``postgres+milvus``: no snapshots, Milvus keeps its content and its change-log
position; fewer kills, each restart also restarts Milvus Lite).
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from conftest import MILVUS, backends
from harness import Api, Server
from images import LFW, b64

KILLS = {"sqlite": 20, "postgres": 20, MILVUS: 6}
WRITERS = 3
OPS_PER_ROUND = 6  # per writer: the kill usually lands while writes are still going


def identities(n: int) -> list[str]:
    """n people with at least one photo, in a fixed order."""
    people = sorted(p.name for p in LFW.iterdir() if p.is_dir())
    return [p for p in people[::7]][:n]


def first_photo(name: str) -> str:
    return b64(sorted((LFW / name).glob("*.jpg"))[0])


@pytest.fixture
def crash_server(storage, tmp_path):
    srv = Server(tmp_path / "srv", database_url=storage.database_url,
                 extra_env={"OPENIAI_INDEX_SNAPSHOT_CHANGES": "6", "OPENIAI_INDEX_SNAPSHOT_SECONDS": "1",
                            **storage.env()})
    srv.start()
    yield srv
    srv.kill()
    if srv._keys is not None:
        srv._keys.db.dispose()


@backends("storage")
def test_index_survives_repeated_sigkill_during_enrolment(crash_server, storage):
    srv = crash_server
    kills = KILLS[storage.name]
    api = Api(srv, *srv.create_key("crash"))
    api.call("CreateGroup", GroupId="g", GroupName="G")
    names = identities(kills * WRITERS * OPS_PER_ROUND + 20)
    photos = {n: first_photo(n) for n in names}
    rng = random.Random(7)
    queue = list(names)
    created: set[str] = set()  # acknowledged CreatePerson
    deleted: set[str] = set()  # acknowledged DeletePerson
    uncertain: set[str] = set()  # a write sent but never answered
    lock = threading.Lock()

    def writer(worker: int, stop: threading.Event) -> None:
        client = api.variant()
        for _ in range(OPS_PER_ROUND):
            if stop.is_set():
                return
            with lock:
                if not queue:
                    return
                # Now and then delete an acknowledged person instead of enrolling one.
                victims = sorted(created - deleted)
                if victims and rng.random() < 0.25:
                    op, name = "delete", rng.choice(victims)
                else:
                    op, name = "create", queue.pop()
            try:
                if op == "create":
                    client.call("CreatePerson", GroupId="g", PersonId=name, PersonName=name,
                                Image=photos[name])
                else:
                    client.call("DeletePerson", PersonId=name)
            except Exception as exc:
                code = getattr(exc, "code", None)
                if not isinstance(exc, TencentCloudSDKException) or not exc.get_request_id():
                    # No answer (the SDK says ClientNetworkError): the server died under the
                    # request, which may or may not have committed.
                    with lock:
                        uncertain.add(name)
                    return
                if op == "delete" and code == "InvalidParameterValue.PersonIdNotExist":
                    with lock:  # an unanswered delete from before a kill had committed
                        deleted.add(name)
                continue
            with lock:
                (created if op == "create" else deleted).add(name)

    checked: set[str] = set()  # persons already shown to be searchable after a restart
    gone_checked: set[str] = set()
    for round_ in range(kills):
        stop = threading.Event()
        with ThreadPoolExecutor(WRITERS) as pool:
            acked = len(created) + len(deleted)
            futures = [pool.submit(writer, w, stop) for w in range(WRITERS)]
            # Kill at a random moment once this round has had an acknowledged write (the
            # first request after a start also loads the models).
            deadline = time.time() + 60
            while (len(created) + len(deleted) == acked and time.time() < deadline
                   and not all(f.done() for f in futures)):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            srv.kill()
            stop.set()
            for f in futures:
                f.result()
        srv.start()
        # Each round searches for what changed since the last one; the last round for all.
        last = round_ == kills - 1
        checked, gone_checked = check_invariants(api, photos, created, deleted, uncertain,
                                                 set() if last else checked,
                                                 set() if last else gone_checked)
    print(f"\n{kills} SIGKILLs: {len(created)} acknowledged enrolments, {len(deleted)} acknowledged "
          f"deletes, {len(uncertain)} writes cut off by a kill")
    # Every round waits for an acknowledged write (enrolment or delete) before its kill.
    assert len(created) + len(deleted) >= kills, "too few acknowledged writes to mean anything"


def check_invariants(api: Api, photos: dict, created: set, deleted: set, uncertain: set,
                     checked: set, gone_checked: set) -> tuple[set, set]:
    """The database kept every acknowledged write, and the index agrees with the database
    (also for writes that committed without an answer)."""
    alive = created - deleted - uncertain
    listed = set()
    offset = 0
    while True:
        page = api.call("GetPersonList", GroupId="g", Offset=offset, Limit=1000)["PersonInfos"]
        listed |= {p["PersonId"] for p in page}
        if len(page) < 1000:
            break
        offset += 1000
    assert alive <= listed, f"acknowledged persons lost: {sorted(alive - listed)}"
    assert not (deleted & listed), f"deleted persons back: {sorted(deleted & listed)}"
    for name in sorted(alive - checked):
        found = api.call("SearchFaces", GroupIds=["g"], Image=photos[name], MaxPersonNum=1)
        top = found["Results"][0]["Candidates"]
        assert top and top[0]["PersonId"] == name, f"{name} not found by search after restart"
    gone = (deleted | uncertain) - listed
    if not listed:  # every person deleted: an empty group is not searchable (NoFaceInGroups)
        return listed, gone_checked
    for name in sorted(gone - gone_checked):
        found = api.call("SearchPersons", GroupIds=["g"], Image=photos[name], MaxPersonNum=5)
        returned = {c["PersonId"] for r in found["Results"] for c in r["Candidates"]}
        assert name not in returned, f"deleted person {name} returned by search"
    # Whatever committed without an answer is searchable too: every listed person finds itself.
    for name in sorted(listed - alive - checked):
        found = api.call("SearchFaces", GroupIds=["g"], Image=photos[name], MaxPersonNum=1)
        assert found["Results"][0]["Candidates"][0]["PersonId"] == name
    return listed, gone
