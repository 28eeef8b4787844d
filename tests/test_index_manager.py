"""IndexManager: group filters, persons once, removals, snapshots, change-log replay, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from openiai.core.changes import Change
from openiai.core.features import fuse
from openiai.index import IndexManager

D = 128
A, V = "acct-1", "3.0"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def populate(m: IndexManager, n_persons: int = 400, seed: int = 0):
    """Persons p (pk 1000+p) with 1-3 faces (pk 100000+...), groups: p%4 -> group 10+p%4,
    and every person whose p % 10 == 0 is also in group 99."""
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((n_persons, D)))
    faces = {}
    fpk = 100_000
    for p in range(n_persons):
        vecs = unit(centers[p] + 0.3 * rng.standard_normal((1 + p % 3, D)) / np.sqrt(D))
        for v in vecs:
            m.upsert_face(A, V, fpk, 1000 + p, v)
            faces[fpk] = (1000 + p, v)
            fpk += 1
        groups = [10 + p % 4] + ([99] if p % 10 == 0 else [])
        m.set_person(A, V, 1000 + p, fuse(vecs), groups)
    return centers, faces


def groups_of(person_pk: int) -> set[int]:
    p = person_pk - 1000
    return {10 + p % 4} | ({99} if p % 10 == 0 else set())


@pytest.fixture(params=[100_000, 300], ids=["flat", "ivf"])
def manager(request):
    m = IndexManager(exact_threshold=request.param)
    centers, faces = populate(m)
    return m, centers, faces


def test_group_filter_and_persons_once(manager):
    m, centers, faces = manager
    q = centers[:40]
    for groups in ([10], [11, 99], [99]):
        for row in m.search_faces(A, V, q, groups, 20, unique_persons=False):
            assert row and all(groups_of(h.person) & set(groups) for h in row)
            assert all(faces[h.face][0] == h.person for h in row)
        for row in m.search_persons(A, V, q, groups, 20):
            assert all(groups_of(h.person) & set(groups) for h in row)
            assert len({h.person for h in row}) == len(row)
    # Person 1000 is in groups 10 and 99: found once, with its own fused vector first.
    for row in m.search_persons(A, V, centers[:1], [10, 99], 10):
        assert row[0].person == 1000 and [h.person for h in row].count(1000) == 1
    for row in m.search_faces(A, V, centers[:30], [10, 11, 12, 13, 99], 10):
        persons = [h.person for h in row]
        assert len(persons) == len(set(persons)) == 10
    assert m.search_faces(A, V, q[:2], [12345], 5) == [[], []]
    assert m.search_persons(A, V, q[:2], [], 5) == [[], []]
    assert len(m.search_faces(A, V, q[:1], None, 5)[0]) == 5


def test_exact_scores_below_threshold():
    m = IndexManager()
    centers, faces = populate(m, 200)
    pks = np.array(sorted(faces))
    mat = np.stack([faces[k][1] for k in pks])
    q = unit(np.random.default_rng(9).standard_normal((10, D)))
    rows = m.search_faces(A, V, q, None, 8, unique_persons=False)
    for i, row in enumerate(rows):
        s = mat @ q[i]
        top = np.argsort(-s)[:8]
        assert [h.face for h in row] == pks[top].tolist()
        np.testing.assert_allclose([h.score for h in row], s[top], rtol=1e-5, atol=1e-6)


def test_removals_never_returned(manager):
    m, centers, faces = manager
    q = centers[:50]
    by_person: dict[int, list[int]] = {}
    for f, (p, _) in faces.items():
        by_person.setdefault(p, []).append(f)
    gone_faces = [f for p in range(1000, 1050) for f in by_person[p][:1]]
    m.remove_faces(A, V, gone_faces)
    m.remove_persons(A, V, [1001, 1002])
    m.remove_memberships(A, V, 1004, [10])  # 1004 was only in group 10
    m.remove_group(A, V, 99)
    for row in m.search_faces(A, V, q, [10, 11, 12, 13, 99], 30, unique_persons=False):
        assert not {h.face for h in row} & set(gone_faces)
        assert not {h.person for h in row} & {1001, 1002, 1004}
    for row in m.search_persons(A, V, q, [10, 11, 12, 13, 99], 30):
        assert not {h.person for h in row} & {1001, 1002, 1004}
    assert m.search_persons(A, V, q, [99], 5) == [[] for _ in q]
    # A removed membership can come back; a face can be re-added.
    m.add_memberships(A, V, 1004, [10])
    assert m.search_persons(A, V, centers[4:5], [10], 1)[0][0].person == 1004
    m.upsert_face(A, V, gone_faces[0], 1000, faces[gone_faces[0]][1])
    assert m.search_faces(A, V, faces[gone_faces[0]][1][None], [10], 1)[0][0].face == gone_faces[0]
    counts = m.counts(A, V)
    assert counts["persons"] == 398 and counts["faces"] == len(faces) - len(gone_faces) + 1 - (
        len(by_person[1001]) - 1) - (len(by_person[1002]) - 1)


def test_snapshot_round_trip(manager, tmp_path):
    m, centers, _ = manager
    m.remove_persons(A, V, [1003])
    m.set_person("other", "3.0", 7, centers[5], [1])
    m.upsert_face("other", "3.0", 70, 7, centers[5])
    path = m.snapshot(tmp_path, seq=42)
    assert (tmp_path / "CURRENT").read_text() == path.name
    m2 = IndexManager(exact_threshold=m.collection(A, V).faces.exact_threshold)
    assert m2.load(tmp_path) == 42
    assert sorted(m2.collections(), key=repr) == sorted(m.collections(), key=repr)
    assert m2.counts(A, V) == m.counts(A, V)
    q = unit(centers[:60] + 0.01)
    for groups in (None, [10], [11, 99]):
        assert m2.search_faces(A, V, q, groups, 10) == m.search_faces(A, V, q, groups, 10)
        assert m2.search_persons(A, V, q, groups, 10) == m.search_persons(A, V, q, groups, 10)
    assert m2.search_faces("other", "3.0", centers[5:6], [1], 1)[0][0].face == 70
    # Writes keep working on the restored index (slots, free lists, maps).
    m2.upsert_face(A, V, 555_555, 1003, centers[3])
    m2.set_person(A, V, 1003, centers[3], [13])
    assert m2.search_persons(A, V, centers[3:4], [13], 1)[0][0].person == 1003
    # A second snapshot becomes current; an older one is pruned past `keep`.
    m2.snapshot(tmp_path, seq=43)
    m2.snapshot(tmp_path, seq=44)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("snap-")]) == 2
    assert IndexManager().load(tmp_path) == 44
    assert IndexManager().load(tmp_path / "nothing-here") == 0


def changes(centers: np.ndarray) -> list[Change]:
    out, seq = [], 0

    def add(kind, **payload):
        nonlocal seq
        seq += 1
        out.append(Change(seq, kind, A, V, payload))

    for p in range(30):
        add("face_upsert", face=500 + p, person=p, vector=centers[p].tobytes())
        add("person_upsert", person=p, vector=centers[p].tolist(), groups=[1, 2] if p % 2 else [1])
    add("face_remove", faces=[500])
    add("person_remove", persons=[1])
    add("memberships_remove", person=3, groups=[2])
    add("memberships_add", person=4, groups=[2])
    add("face_upsert", face=502, person=2, vector=centers[20])  # replace a face's vector
    add("group_remove", group=7)
    add("collection_drop")  # A/V dropped ...
    for p in range(5, 10):  # ... and rebuilt
        add("face_upsert", face=600 + p, person=p, vector=centers[p])
        add("person_upsert", person=p, vector=centers[p], groups=[1])
    return out


def state(m: IndexManager, centers):
    return (m.counts(A, V), m.search_faces(A, V, centers[:12], [1, 2], 5), m.search_persons(A, V, centers[:12], [2], 5))


def test_apply_replay_idempotent(tmp_path):
    centers = unit(np.random.default_rng(4).standard_normal((30, D)))
    log = changes(centers)
    cut = 45
    m = IndexManager()
    assert m.apply(log[:cut]) == cut
    m.snapshot(tmp_path)
    assert m.apply(log) == len(log)
    first = state(m, centers)
    assert m.apply(log) == len(log)  # replaying the whole log again changes nothing
    assert state(m, centers) == first
    # Restart: snapshot at `cut` + the whole log (older entries skipped by seq).
    m2 = IndexManager()
    assert m2.load(tmp_path) == cut
    m2.apply(log)
    assert state(m2, centers) == first
    assert m2.counts(A, V) == {"faces": 5, "persons": 5}
    # Before the drop: check what the intermediate state looked like.
    m3 = IndexManager()
    m3.apply(log[:66])
    assert m3.counts(A, V) == {"faces": 28, "persons": 29}  # face 500, person 1 (+ its face)
    assert m3.search_faces(A, V, centers[20:21], [1, 2], 2)[0][0].face in (520, 502)
    assert all(h.person != 1 for h in m3.search_persons(A, V, centers[:5], [1, 2], 10)[0])
    assert [h.person for h in m3.search_persons(A, V, centers, [2], 30)[0]].count(3) == 0
    assert 4 in [h.person for h in m3.search_persons(A, V, centers[4:5], [2], 1)[0]]
    with pytest.raises(ValueError):
        IndexManager().apply([Change(1, "nope", A, V, {})])


def test_concurrent_searches_and_writes():
    m = IndexManager(exact_threshold=1500)
    centers, faces = populate(m, 600, seed=3)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = centers[rng.integers(0, len(centers), 2)]
                for row in m.search_faces(A, V, q, [10, 99], 10):
                    assert all(groups_of(h.person) & {10, 99} for h in row if h.person < 2000)
                m.search_persons(A, V, q, None, 5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    rng = np.random.default_rng(11)
    try:
        for i in range(300):
            v = unit(rng.standard_normal(D))
            m.upsert_face(A, V, 900_000 + i, 5000 + i, v)
            m.set_person(A, V, 5000 + i, v, [10])
            if i % 3 == 0:
                m.remove_persons(A, V, [5000 + i])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert m.counts(A, V)["persons"] == 600 + 200


def test_by_group(manager):
    m, centers, _ = manager
    res = m.search_persons_by_group(A, V, centers[:3], [10, 99, 4242], 5)
    assert res[0][10][0].person == 1000 and res[0][99][0].person == 1000
    assert 4242 not in res[0]
    assert all(groups_of(h.person) & {99} for h in res[1][99])
    faces = m.search_faces_by_group(A, V, centers[1:2], [11, 12], 3)
    assert faces[0][11][0].person == 1001 and all(groups_of(h.person) & {12} for h in faces[0][12])
