"""What every vector index engine promises (openiai.index.engine.VectorIndex).

Written against the protocol alone: writes arrive only as change-log entries through
``apply`` or as a rebuild (``clear`` / ``bulk_load`` / ``finish_rebuild``), reads only through
the searches and counts. A new engine joins by adding itself to ENGINES. The vectors are far
apart (random directions in 128 dimensions), so an approximate engine must pass too.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from openiai.core import versions
from openiai.core.changes import KINDS, Change
from openiai.core.features import fuse
from openiai.index import Hit, IndexManager, VectorIndex

A, V = 7, "3.0"  # the collection most tests use
OTHER_ACCOUNT, OTHER_VERSION = 8, "2.0"
DIM = versions.get(V).dim

# name -> a function returning an engine; called again for a "restarted" one. The in-memory
# engine runs in both of its tiers: exact, and IVF-PQ with re-ranking (a threshold low enough
# that both spaces of the test collection are past it).
ENGINES = {
    "memory-exact": lambda: IndexManager(),
    "memory-ivf": lambda: IndexManager(exact_threshold=50),
    "milvus-lite": lambda: milvus_lite_engine(),  # its default group filter: fetch, then keep
}
# A Milvus server, where one is given (e.g. the `milvus` PyPI package's embedded server):
# OPENIAI_TEST_MILVUS_URL=milvus://127.0.0.1:19530. Each engine under a prefix of its own.
if os.environ.get("OPENIAI_TEST_MILVUS_URL"):
    ENGINES["milvus-server"] = lambda: milvus_server_engine()


def milvus_server_engine() -> VectorIndex:
    from milvus_lite_support import fresh_prefix

    from openiai.index.milvus_engine import MilvusIndex

    url = os.environ["OPENIAI_TEST_MILVUS_URL"]
    return MilvusIndex.from_url(f"{url}{'&' if '?' in url else '?'}prefix={fresh_prefix()}")


# Milvus filtering by itself (array_contains_any; a server's default): the group filter tests.
MILVUS_FILTER = "milvus-lite-filter=milvus"
WITH_MILVUS_FILTER = pytest.mark.parametrize("make_engine", [*sorted(ENGINES), MILVUS_FILTER],
                                             indirect=True)


def milvus_lite_engine(options: str = "") -> VectorIndex:
    """A Milvus engine on this session's Milvus Lite file, under a fresh name prefix (so an
    engine made "again" in a test starts empty); skipped, with the reason printed, where Milvus
    Lite cannot start."""
    from milvus_lite_support import lite_engine

    return lite_engine(options)


@pytest.fixture(params=sorted(ENGINES))
def make_engine(request):
    if request.param == MILVUS_FILTER:
        return lambda: milvus_lite_engine("filter=milvus")
    return ENGINES[request.param]


@pytest.fixture
def engine(make_engine) -> VectorIndex:
    e = make_engine()
    e.clear()  # an engine behind a server may hold a previous run's content
    return e


def unit(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class World:
    """Persons 100.. with 1-3 faces each (face pk = 1000 * person + i), their groups, and the
    change log that enrols them, in account A, version V:

    * group 1: persons 100..129; group 2: persons 120..149 (120..129 are in both);
    * group 3: persons 150..159, which nobody else is in.
    """

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.persons = list(range(100, 160))
        self.center = {p: unit(rng.standard_normal(DIM)) for p in self.persons}
        self.faces: dict[int, tuple[int, np.ndarray]] = {}  # face pk -> (person pk, vector)
        for p in self.persons:
            for i in range(1 + p % 3):
                self.faces[1000 * p + i] = (p, unit(self.center[p] + 0.15 * rng.standard_normal(DIM) / np.sqrt(DIM)))
        self.groups = {p: [g for g, (lo, hi) in ((1, (100, 130)), (2, (120, 150)), (3, (150, 160)))
                           if lo <= p < hi] for p in self.persons}
        self._seq = itertools.count(1)
        self.log: list[Change] = []
        for p in self.persons:
            for f in self.faces_of(p):
                self.change("face_upsert", face=f, person=p, vector=self.faces[f][1])
            self.change("person_upsert", person=p, vector=self.fused(p), groups=self.groups[p])

    def faces_of(self, person: int) -> list[int]:
        return [f for f, (p, _) in self.faces.items() if p == person]

    def fused(self, person: int) -> np.ndarray:
        return fuse(np.stack([self.faces[f][1] for f in self.faces_of(person)]))

    def in_groups(self, groups) -> set[int]:
        return {p for p in self.persons if set(self.groups[p]) & set(groups)}

    def change(self, kind: str, account=A, version=V, **payload) -> Change:
        ch = Change(next(self._seq), kind, account, version, payload)
        self.log.append(ch)
        return ch


def enrolled(engine: VectorIndex, seed: int = 0) -> World:
    world = World(seed)
    assert engine.apply(world.log) == world.log[-1].seq
    return world


def top(rows: list[list[Hit]]) -> list[Hit]:
    return [row[0] for row in rows]


def observed(engine: VectorIndex, world: World) -> dict:
    """What a client sees of collection A/V: the counts, what each face's vector finds first,
    and what each person's center finds first within each group it was enrolled in. First hits
    of stored vectors only: an approximate engine finds those as surely as an exact one."""
    faces = sorted(world.faces)
    face_rows = engine.search_faces(A, V, np.stack([world.faces[f][1] for f in faces]), None, 1,
                                    unique_persons=False)
    person_top = {}
    for g in (1, 2, 3):
        members = sorted(world.in_groups([g]))
        rows = engine.search_persons(A, V, np.stack([world.center[p] for p in members]), [g], 1)
        person_top.update({(p, g): row[0].person if row else None for p, row in zip(members, rows)})
    return {"counts": engine.counts(A, V),
            "group_counts": {g: engine.group_counts(A, V, g) for g in ((1,), (2,), (3,), (1, 2, 3))},
            "face_top": {f: (row[0].face, row[0].person) if row else None for f, row in zip(faces, face_rows)},
            "person_top": person_top}


# ------------------------------------------------------------------ the protocol itself
def test_is_a_vector_index(engine):
    assert isinstance(engine, VectorIndex)
    assert isinstance(engine.persistent, bool)
    assert engine.last_seq == 0 and engine.collections() == []


# ------------------------------------------------------------------ change log
def test_a_face_finds_itself_and_names_its_person(engine):
    world = enrolled(engine)
    face, (person, vec) = next(iter(world.faces.items()))
    (hit,) = top(engine.search_faces(A, V, vec, None, 1))
    assert (hit.face, hit.person) == (face, person) and hit.score == pytest.approx(1.0, abs=2e-3)
    (hit,) = top(engine.search_persons(A, V, world.fused(person), None, 1))
    assert (hit.face, hit.person) == (None, person) and hit.score == pytest.approx(1.0, abs=2e-3)


def test_every_query_gets_its_own_row_best_first(engine):
    world = enrolled(engine)
    probes = np.stack([world.center[p] for p in (100, 140, 155)])
    rows = engine.search_persons(A, V, probes, None, 4)
    assert [row[0].person for row in rows] == [100, 140, 155]
    for row in rows:
        assert len(row) == 4 and [h.score for h in row] == sorted((h.score for h in row), reverse=True)


def test_replaying_the_log_changes_nothing(engine):
    world = enrolled(engine)
    world.change("face_remove", faces=[100_000])
    world.change("memberships_remove", person=121, groups=[1])
    world.change("memberships_add", person=151, groups=[1])
    world.change("person_remove", persons=[101])
    world.change("group_remove", group=3)
    world.change("face_upsert", face=140_000, person=140, vector=world.center[141])
    world.change("collection_drop", account=OTHER_ACCOUNT)
    assert {ch.kind for ch in world.log} == KINDS  # the log below speaks the whole vocabulary
    last = world.log[-1].seq
    assert engine.apply(world.log) == last
    seen = observed(engine, world)
    assert engine.apply(world.log) == last  # the whole log again
    assert engine.apply(world.log[len(world.log) // 2:]) == last  # a tail again
    assert observed(engine, world) == seen
    # Idempotent by seq, not by content: a change at an applied seq is skipped whatever it says.
    assert engine.apply([Change(last, "person_remove", A, V, {"persons": [140]})]) == last
    assert observed(engine, world) == seen
    assert seen["counts"]["persons"] == len(world.persons) - 1  # the log did act: 101 went


def test_the_log_in_batches_gives_what_it_gives_at_once(engine, make_engine):
    world = enrolled(engine)
    batched = make_engine()
    batched.clear()
    for start in range(0, len(world.log), 7):
        batched.apply(world.log[start:start + 7])
    assert batched.last_seq == engine.last_seq
    assert observed(batched, world) == observed(engine, world)


def test_an_unknown_change_kind_is_refused(engine):
    enrolled(engine)
    before = engine.last_seq
    with pytest.raises(ValueError):
        engine.apply([Change(before + 1, "nope", A, V, {})])
    assert engine.last_seq == before


# ------------------------------------------------------------------ group filters
@pytest.mark.parametrize("groups", [[1], [2], [3], [1, 3], [1, 2, 3]])
@WITH_MILVUS_FILTER
def test_searches_see_only_the_persons_of_the_groups(engine, groups):
    world = enrolled(engine)
    wanted = world.in_groups(groups)
    probes = np.stack([world.center[p] for p in world.persons])
    for row in engine.search_faces(A, V, probes, groups, 10, unique_persons=False):
        assert row and {h.person for h in row} <= wanted
        assert all(world.faces[h.face][0] == h.person for h in row)
    for row in engine.search_persons(A, V, probes, groups, 10):
        assert row and {h.person for h in row} <= wanted
    # Every member is reachable: its own vector finds it first.
    for p in sorted(wanted):
        assert top(engine.search_persons(A, V, world.center[p], groups, 1))[0].person == p


@WITH_MILVUS_FILTER
def test_no_groups_unknown_groups_and_k_zero_find_nothing(engine):
    world = enrolled(engine)
    probes = np.stack([world.center[100], world.center[150]])
    for groups in ([], [404]):
        assert engine.search_faces(A, V, probes, groups, 5) == [[], []]
        assert engine.search_persons(A, V, probes, groups, 5) == [[], []]
        assert engine.group_counts(A, V, groups) == {"faces": 0, "persons": 0}
    assert engine.search_faces(A, V, probes, None, 0) == [[], []]
    assert engine.search_persons(A, V, probes, [1], 0) == [[], []]


@WITH_MILVUS_FILTER
def test_a_person_in_several_groups_comes_once(engine):
    world = enrolled(engine)
    both = 125  # in groups 1 and 2
    rows = engine.search_persons(A, V, world.center[both], [1, 2], 20)
    assert [h.person for h in rows[0]].count(both) == 1
    faces = engine.search_faces(A, V, world.center[both], [1, 2], 20)
    assert len({h.person for h in faces[0]}) == len(faces[0]) == 20


def test_unique_persons_keeps_each_persons_best_face(engine):
    world = enrolled(engine)
    person = 101  # three faces
    rows = engine.search_faces(A, V, world.center[person], None, 3, unique_persons=False)
    assert [h.person for h in rows[0]] == [person] * 3
    rows = engine.search_faces(A, V, world.center[person], None, 3, unique_persons=True)
    assert rows[0][0].person == person and len({h.person for h in rows[0]}) == 3
    best = max(world.faces_of(person), key=lambda f: float(world.faces[f][1] @ world.center[person]))
    assert rows[0][0].face == best


@WITH_MILVUS_FILTER
def test_by_group_answers_each_group_on_its_own(engine):
    world = enrolled(engine)
    probes = np.stack([world.center[125], world.center[155]])
    by_group = engine.search_persons_by_group(A, V, probes, [1, 2, 3, 404], 3)
    for i, per_group in enumerate(by_group):
        assert set(per_group) == {1, 2, 3}  # 404 has nobody: left out
        for g, row in per_group.items():
            alone = engine.search_persons(A, V, probes[i], [g], 3)[0]
            assert [h.person for h in row] == [h.person for h in alone]
            assert [h.score for h in row] == pytest.approx([h.score for h in alone], abs=1e-5)
    faces = engine.search_faces_by_group(A, V, probes, [2, 3], 2)
    assert faces[0][2][0].person == 125 and faces[1][3][0].person == 155
    assert all(h.person in world.in_groups([3]) for h in faces[0][3])


# ------------------------------------------------------------------ counts
@WITH_MILVUS_FILTER
def test_counts_follow_writes(engine):
    world = enrolled(engine)
    assert engine.counts(A, V) == {"faces": len(world.faces), "persons": len(world.persons)}
    for groups in ([1], [2], [3], [1, 2], [1, 2, 3]):
        members = world.in_groups(groups)
        assert engine.group_counts(A, V, groups) == {
            "faces": sum(len(world.faces_of(p)) for p in members), "persons": len(members)}
    engine.apply([world.change("person_remove", persons=[101]),
                  world.change("face_remove", faces=[102_000, 999_999])])  # 999_999: never stored
    assert engine.counts(A, V) == {"faces": len(world.faces) - 4, "persons": len(world.persons) - 1}
    assert engine.group_counts(A, V, [1]) == {
        "faces": sum(len(world.faces_of(p)) for p in world.in_groups([1])) - 4, "persons": 29}
    assert engine.counts(A, "2.0") == {"faces": 0, "persons": 0}


def test_collections_are_apart(engine):
    world = enrolled(engine)
    other = World(seed=1)  # the same pks, other vectors, in another account and version
    engine.apply([Change(world.log[-1].seq + ch.seq, ch.kind, OTHER_ACCOUNT, OTHER_VERSION, ch.payload)
                  for ch in other.log])
    assert sorted(engine.collections()) == sorted([(A, V), (OTHER_ACCOUNT, OTHER_VERSION)])
    face, (_, vec) = next(iter(other.faces.items()))
    (hit,) = top(engine.search_faces(OTHER_ACCOUNT, OTHER_VERSION, vec, None, 1))
    assert hit.face == face and hit.score > 0.99
    (hit,) = top(engine.search_faces(A, V, vec, None, 1))
    assert hit.score < 0.5  # A/V holds world's vectors, not other's
    assert engine.search_faces(A, OTHER_VERSION, vec, None, 1) == [[]]  # no such collection
    engine.apply([Change(engine.last_seq + 1, "collection_drop", OTHER_ACCOUNT, OTHER_VERSION, {})])
    assert engine.collections() == [(A, V)]
    assert engine.counts(A, V) == {"faces": len(world.faces), "persons": len(world.persons)}


# ------------------------------------------------------------------ removals
@WITH_MILVUS_FILTER
def test_removed_things_are_never_returned(engine):
    world = enrolled(engine)
    gone_face = 110_001  # person 110 keeps its faces 110_000 and 110_002
    engine.apply([
        world.change("face_remove", faces=[gone_face]),
        world.change("person_remove", persons=[111]),
        world.change("memberships_remove", person=125, groups=[1]),  # still in group 2
        world.change("group_remove", group=3),
    ])
    probes = np.stack([world.center[p] for p in world.persons])
    for groups in (None, [1, 2, 3]):
        for row in engine.search_faces(A, V, probes, groups, 30, unique_persons=False):
            assert gone_face not in {h.face for h in row} and 111 not in {h.person for h in row}
        for row in engine.search_persons(A, V, probes, groups, 30):
            assert 111 not in {h.person for h in row}
    assert top(engine.search_faces(A, V, world.faces[gone_face][1], None, 1))[0].face != gone_face
    assert 125 not in {h.person for h in engine.search_persons(A, V, world.center[125], [1], 30)[0]}
    assert top(engine.search_persons(A, V, world.center[125], [2], 1))[0].person == 125
    # A removed group's members stay, found without a filter.
    assert engine.search_persons(A, V, world.center[155], [3], 5) == [[]]
    assert top(engine.search_persons(A, V, world.center[155], None, 1))[0].person == 155


def test_what_was_removed_can_come_back(engine):
    world = enrolled(engine)
    engine.apply([world.change("person_remove", persons=[111]),
                  world.change("memberships_remove", person=112, groups=[1])])
    engine.apply([world.change("face_upsert", face=111_000, person=111, vector=world.faces[111_000][1]),
                  world.change("person_upsert", person=111, vector=world.faces[111_000][1], groups=[1]),
                  world.change("memberships_add", person=112, groups=[1])])
    assert top(engine.search_faces(A, V, world.faces[111_000][1], [1], 1))[0].face == 111_000
    assert top(engine.search_persons(A, V, world.center[112], [1], 1))[0].person == 112


def test_a_face_upsert_replaces_the_vector(engine):
    world = enrolled(engine)
    engine.apply([world.change("face_upsert", face=100_000, person=100, vector=world.center[140])])
    hits = engine.search_faces(A, V, world.center[140], None, 2, unique_persons=False)[0]
    assert 100_000 in {h.face for h in hits}
    assert 100_000 not in {h.face for h in engine.search_faces(A, V, world.center[100], None, 1)[0]}
    assert engine.counts(A, V)["faces"] == len(world.faces)


# ------------------------------------------------------------------ rebuild
def test_a_rebuild_replaces_everything_and_sets_the_seq(engine, make_engine):
    replayed = make_engine()
    replayed.clear()
    world = enrolled(replayed)
    engine.apply([Change(1, "face_upsert", A, V, {"face": 1, "person": 2, "vector": world.center[100]}),
                  Change(2, "face_upsert", 9, V, {"face": 3, "person": 4, "vector": world.center[101]})])
    engine.clear()
    assert engine.last_seq == 0 and engine.collections() == []
    assert engine.search_faces(A, V, world.center[100], None, 1) == [[]]
    assert engine.counts(9, V) == {"faces": 0, "persons": 0}
    members = [(p, g) for p in world.persons for g in world.groups[p]]
    faces = sorted(world.faces.items())
    engine.bulk_load(A, V,
                     face_pks=np.array([f for f, _ in faces]),
                     face_person_pks=np.array([p for _, (p, _) in faces]),
                     face_vectors=np.stack([v for _, (_, v) in faces]),
                     person_pks=np.array(world.persons),
                     person_vectors=np.stack([world.fused(p) for p in world.persons]),
                     member_person_pks=np.array([p for p, _ in members]),
                     member_group_pks=np.array([g for _, g in members]))
    engine.finish_rebuild(world.log[-1].seq)
    assert engine.last_seq == world.log[-1].seq
    assert engine.collections() == [(A, V)]  # nothing left of what was there before
    assert observed(engine, world) == observed(replayed, world)
    # The log continues from the rebuild's seq: older entries are skipped, newer ones applied.
    engine.apply(world.log + [world.change("person_remove", persons=[140])])
    assert engine.counts(A, V) == {"faces": len(world.faces) - 3, "persons": len(world.persons) - 1}


# ------------------------------------------------------------------ local snapshots
def test_a_snapshot_restores_what_was_there(engine, make_engine, tmp_path):
    if engine.persistent:
        pytest.skip("persists by itself: IndexSync never asks it for local snapshots")
    world = enrolled(engine)
    engine.apply([world.change("person_remove", persons=[111]),
                  world.change("memberships_remove", person=125, groups=[1])])
    engine.snapshot(tmp_path)
    restarted = make_engine()
    assert restarted.load(tmp_path) == engine.last_seq
    assert restarted.collections() == engine.collections()
    assert observed(restarted, world) == observed(engine, world)
    # It takes the log from there on.
    restarted.apply([world.change("person_remove", persons=[140])])
    assert restarted.counts(A, V)["persons"] == len(world.persons) - 2
    assert make_engine().load(tmp_path / "no-snapshot-here") == 0


# ------------------------------------------------------------------ Milvus alone
def test_milvus_reads_more_rows_than_one_query_returns(monkeypatch):
    """Regrouping reads every row of a group; past one query's limit it pages with a query
    iterator (a Milvus server refuses offset paging past 16,384 rows). A limit of 16 here makes
    group 1's 30 persons and ~60 faces take several pages."""
    from openiai.index import milvus_engine

    engine = milvus_lite_engine()
    world = enrolled(engine)
    monkeypatch.setattr(milvus_engine, "QUERY_LIMIT", 16)
    iterators = []
    real = engine.client.query_iterator
    monkeypatch.setattr(engine.client, "query_iterator",
                        lambda *a, **kw: iterators.append(kw) or real(*a, **kw))
    in_one = world.in_groups([1])
    faces_in_one = sum(len(world.faces_of(p)) for p in in_one)
    assert engine.group_counts(A, V, [1]) == {"faces": faces_in_one, "persons": len(in_one)}
    engine.apply([world.change("group_remove", group=1)])
    assert engine.group_counts(A, V, [1]) == {"faces": 0, "persons": 0}
    assert iterators, "the rows fit in one query: nothing paged"
    # Those also in group 2 are still there, with their vectors.
    both = sorted(world.in_groups([1]) & world.in_groups([2]))
    rows = engine.search_persons(A, V, np.stack([world.center[p] for p in both]), [2], 1)
    assert [row[0].person for row in rows] == both
    assert engine.counts(A, V) == {"faces": len(world.faces), "persons": len(world.persons)}


def test_milvus_fetch_filter_finds_what_milvus_filters(monkeypatch):
    """The ``fetch`` group filter (unfiltered search, rows kept here) answers exactly what
    Milvus's own filter does, also where it gives up fetching (a small limit here) and lets
    Milvus filter."""
    from openiai.index import milvus_engine

    fetch, filtered = milvus_lite_engine(), milvus_lite_engine("filter=milvus")
    assert (fetch.group_filter, filtered.group_filter) == ("fetch", "milvus")
    world = enrolled(fetch)
    enrolled(filtered)
    probes = np.stack([world.center[p] for p in world.persons])

    def answers(engine, groups):
        faces = engine.search_faces(A, V, probes, groups, 10, unique_persons=False)
        persons = engine.search_persons(A, V, probes, groups, 10)
        rows = faces + persons
        return ([[(h.face, h.person) for h in row] for row in rows],
                np.array([[h.score for h in row] for row in rows]))

    for limits in ((8, 4096), (2, 16)):  # the second: group 3 falls back to Milvus's filter
        monkeypatch.setattr(milvus_engine, "OVERFETCH", limits[0])
        monkeypatch.setattr(milvus_engine, "OVERFETCH_MAX", limits[1])
        for groups in ([1], [3], [1, 3], [2, 3]):
            (got, got_scores), (want, want_scores) = answers(fetch, groups), answers(filtered, groups)
            assert got == want, (limits, groups)
            assert np.allclose(got_scores, want_scores, atol=1e-4)
