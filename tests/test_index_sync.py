"""The vector index follows the database: live after every write, after a restart from a
snapshot plus the change log, and when another process writes to the same database.

These tests call the actions in-process (``openiai.api.dispatch``, the code the HTTP endpoint
runs after authentication) so the index can be compared, structure and vectors, with one
rebuilt from the tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from images import LFW, b64
from openiai.api.dispatch import dispatch
from openiai.core.errors import ApiError
from openiai.core.features import fuse
from openiai.index import IndexManager
from openiai.services.index_sync import IndexSync
from openiai.services import Services
from openiai.core.settings import Settings
from openiai.store.face_features import face_vectors
from openiai.store.schema import IndexChange

PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon"]


def photo(name: str, i: int) -> str:
    return b64(sorted((LFW / name).glob("*.jpg"))[i])


@pytest.fixture
def settings(database_url, tmp_path):
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


class Client:
    """Calls actions the way the endpoint does, for one account."""

    def __init__(self, services: Services, account: str) -> None:
        self.services = services
        self.account_id = services.keys.ensure_account(account)

    def __call__(self, action: str, **params) -> dict:
        return dispatch(self.services, self.account_id, "2020-03-03", action, params)


def digest(index: IndexManager) -> dict:
    """Per collection: face pk -> person pk, and person pk -> (groups, has fused vector)."""
    out = {}
    for key in index.collections():
        col = index.collection(*key)
        fk, fv = col.face_map.items()
        faces = {int(f): int(col.person_pk.a[col.face_person.a[s]]) for f, s in zip(fk, fv)}
        groups_of = {g: gi for g, gi in col.group_ix.items()}
        group_pk = {gi: g for g, gi in groups_of.items()}
        pk, pv = col.person_map.items()
        persons = {}
        live = col.mp_alive.a
        for p, s in zip(pk.tolist(), pv.tolist()):
            gis = col.mp_group.a[(col.mp_person.a == s) & live]
            persons[p] = (frozenset(group_pk[int(g)] for g in gis), bool(col.person_has_vec.a[s]))
        if faces or any(g for g, _ in persons.values()):
            out[key] = {"faces": faces, "persons": persons}
    return out


def rebuilt(services: Services) -> IndexManager:
    fresh = IndexManager()
    IndexSync(services.db, fresh, None).rebuild()
    return fresh


def assert_agrees(services: Services) -> None:
    """Same structure as a rebuild from the tables, and every stored vector finds itself."""
    assert digest(services.index) == digest(rebuilt(services))
    with services.db.read() as s:
        rows = face_vectors(s).all()
    by_person: dict = {}
    for account, version, face_pk, person_pk, blob in rows:
        vec = np.frombuffer(blob, "<f4")
        hit = services.index.search_faces(account, version, vec[None], None, 1, unique_persons=False)[0][0]
        assert (hit.face, hit.person) == (face_pk, person_pk) and hit.score > 0.999
        by_person.setdefault((account, version, person_pk), []).append(vec)
    for (account, version, person_pk), vecs in by_person.items():
        hit = services.index.search_persons(account, version, fuse(vecs)[None], None, 1)[0][0]
        assert hit.person == person_pk and hit.score > 0.999


def test_index_follows_every_write_and_restarts(settings):
    services = Services(settings)
    try:
        call = Client(services, "acme")
        for g in ("g1", "g2"):
            call("CreateGroup", GroupId=g, GroupName=g)
        faces = {}
        for i, name in enumerate(PEOPLE[:4]):
            faces[name] = [call("CreatePerson", GroupId="g1", PersonId=f"p{i}", PersonName=name,
                                Image=photo(name, 0))["FaceId"]]
            assert_agrees(services)
        added = call("CreateFace", PersonId="p0", Images=[photo("Colin_Powell", 1), photo("Colin_Powell", 2)])
        assert added["SucFaceNum"] == 2
        assert_agrees(services)
        call("CopyPerson", PersonId="p0", GroupIds=["g2"])
        call("CopyPerson", PersonId="p2", GroupIds=["g2"])
        assert_agrees(services)
        call("DeleteFace", PersonId="p0", FaceIds=[added["SucFaceIds"][0]])
        assert_agrees(services)
        call("DeletePersonFromGroup", GroupId="g1", PersonId="p1")  # only group: p1 goes
        call("DeletePersonFromGroup", GroupId="g1", PersonId="p2")  # still in g2
        assert_agrees(services)
        call("DeletePerson", PersonId="p3")
        assert_agrees(services)
        call("DeleteGroup", GroupId="g2")  # p2 orphaned and deleted; p0 stays in g1
        assert_agrees(services)
        # Left: p0 in g1 with 2 faces (1 + 2 added - 1 deleted); p1, p2, p3 are gone.
        (col,) = digest(services.index).values()
        assert len(col["faces"]) == 2 and len(col["persons"]) == 1
        ((groups, has_vector),) = col["persons"].values()
        assert len(groups) == 1 and has_vector
        # A failed write records nothing.
        with pytest.raises(ApiError):
            call("CreatePerson", GroupId="nope", PersonId="px", PersonName="x", Image=photo("Ariel_Sharon", 0))
        assert_agrees(services)
        before = digest(services.index)
    finally:
        services.close()  # writes a snapshot

    again = Services(settings)
    try:
        assert again.index_report["how"] == "snapshot"
        assert digest(again.index) == before
        assert_agrees(again)
    finally:
        again.close()


def test_restart_replays_the_log_after_the_snapshot(settings):
    services = Services(settings)
    call = Client(services, "acme")
    call("CreateGroup", GroupId="g", GroupName="g")
    call("CreatePerson", GroupId="g", PersonId="a", PersonName="a", Image=photo("Tony_Blair", 0))
    services.close()  # snapshot at this point
    services = Services(settings)
    call = Client(services, "acme")
    call("CreatePerson", GroupId="g", PersonId="b", PersonName="b", Image=photo("Colin_Powell", 0))
    call("DeletePerson", PersonId="a")
    expected = digest(services.index)
    # No close(): as after SIGKILL, the snapshot is older than the log.
    services.index_sync._stop.set()
    services.db.dispose()
    again = Services(settings)
    try:
        assert again.index_report["how"] == "snapshot" and again.index_report["replayed"] >= 2
        assert digest(again.index) == expected
        assert_agrees(again)
    finally:
        again.close()


def test_a_second_process_writes_and_the_first_catches_up(settings):
    server = Services(settings)
    other = Services(settings, owner=False, background=False)
    try:
        Client(server, "acme")("CreateGroup", GroupId="g", GroupName="g")
        call = Client(other, "acme")
        call("CreatePerson", GroupId="g", PersonId="a", PersonName="a", Image=photo("Tony_Blair", 0))
        server.index_sync.catch_up()  # the poller does this every second
        assert digest(server.index) == digest(other.index) != {}
        assert_agrees(server)
        # The server's next own write sees the gap and reads the log.
        Client(server, "acme")("CreatePerson", GroupId="g", PersonId="b", PersonName="b",
                               Image=photo("Colin_Powell", 0))
        assert_agrees(server)
    finally:
        other.close()
        server.close()


def test_pruned_log_and_foreign_snapshot_force_a_rebuild(settings, tmp_path):
    services = Services(settings)
    call = Client(services, "acme")
    call("CreateGroup", GroupId="g", GroupName="g")
    call("CreatePerson", GroupId="g", PersonId="a", PersonName="a", Image=photo("Tony_Blair", 0))
    services.index_sync.prune_after_ms = -1000  # prune everything behind the snapshot
    services.index_sync.snapshot()
    with services.db.read() as s:
        assert s.scalar(select(IndexChange.seq).limit(1)) is None
    lagging = IndexManager()  # an index that never saw the pruned changes
    sync = IndexSync(services.db, lagging, None)
    sync.catch_up()
    assert digest(lagging) == digest(services.index)
    services.close()

    # The same data dir pointed at an empty database: the snapshot is not trusted.
    fresh = Settings(data_dir=settings.data_dir, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    other = Services(fresh)
    try:
        assert other.index_report["how"] == "rebuild" and digest(other.index) == {}
    finally:
        other.close()


class SelfPersisting(IndexManager):
    """Stands in for an engine that keeps its state by itself (a Milvus server): the same
    object outlives one IndexSync and is handed to the next, as a server's data outlives a
    restart of ours. Local snapshots must never be asked of it."""

    persistent = True

    def snapshot(self, directory, seq=None, keep=2):
        raise AssertionError("a persistent engine was asked for a local snapshot")

    def load(self, directory):
        raise AssertionError("a persistent engine was loaded from a local snapshot")


def test_an_engine_that_persists_itself_resumes_from_its_own_seq(settings):
    services = Services(settings)
    try:
        call = Client(services, "acme")
        call("CreateGroup", GroupId="g", GroupName="g")
        call("CreatePerson", GroupId="g", PersonId="a", PersonName="a", Image=photo("Tony_Blair", 0))
        engine = SelfPersisting()
        owned = settings.data_dir / "engine-owner"
        sync = IndexSync(services.db, engine, owned, prune_after_seconds=-1)
        assert sync.start(background=False)["how"] == "rebuild"  # it held nothing yet
        assert digest(engine) == digest(services.index)
        # Written while no IndexSync feeds the engine (ours is "down"): the log keeps it.
        call("CreatePerson", GroupId="g", PersonId="b", PersonName="b", Image=photo("Colin_Powell", 0))
        call("DeletePerson", PersonId="a")
        again = IndexSync(services.db, engine, owned, prune_after_seconds=-1)
        report = again.start(background=False)
        assert report["how"] == "resume" and report["replayed"] >= 2
        assert digest(engine) == digest(services.index)
        # Its checkpoint writes no files and prunes the log behind the engine's own seq.
        assert again.snapshot() == engine.last_seq
        assert not owned.exists()
        with services.db.read() as s:
            assert s.scalar(select(IndexChange.seq).limit(1)) is None
        # A seq the log cannot have reached (another database, a restored backup): rebuilt.
        engine.finish_rebuild(engine.last_seq + 1000)
        assert IndexSync(services.db, engine, owned).start(background=False)["how"] == "rebuild"
        assert digest(engine) == digest(services.index)
    finally:
        services.close()
