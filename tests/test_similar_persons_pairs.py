"""The duplicate-person pair search (services/similar_persons.py) on the real in-memory vector
index, with synthetic unit vectors: every pair above the threshold found once, a crowd of
look-alikes larger than k found whole, batches resumable from a checkpoint. No models load."""

from __future__ import annotations

import itertools

import numpy as np

from openiai.index import IndexManager
from openiai.services import similar_persons as sp

DIM = 128
ACCOUNT, VERSION = 7, "3.0"


def _unit(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _gallery(seed=0):
    """60 strangers, 5 planted pairs, a crowd of 40 near-copies of one face (780 pairs), and
    10 persons in a group the check does not cover; pks are 1..n, groups 1 and 2 checked."""
    rng = np.random.default_rng(seed)
    strangers = _unit(rng, 60)
    twins = strangers[:5] + 0.15 * _unit(rng, 5)
    base = _unit(rng, 1)
    crowd = base + 0.05 * _unit(rng, 40)
    outside = strangers[5:15] + 0.05 * _unit(rng, 10)  # copies, but in group 3
    vectors = np.concatenate([strangers, twins, crowd, outside]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pks = np.arange(1, len(vectors) + 1, dtype=np.int64)
    groups = np.r_[np.where(np.arange(105) % 2 == 0, 1, 2), np.full(10, 3)]
    index = IndexManager()
    index.bulk_load(ACCOUNT, VERSION, face_pks=pks, face_person_pks=pks, face_vectors=vectors,
                    person_pks=pks, person_vectors=vectors, member_person_pks=pks,
                    member_group_pks=groups)
    checked = groups != 3
    return index, pks[checked], vectors[checked]


def _brute(pks, vectors, min_cos):
    sims = vectors @ vectors.T
    return {(int(pks[i]), int(pks[j])) for i, j in itertools.combinations(range(len(pks)), 2)
            if sims[i, j] >= min_cos}


def _search(index):
    def search(q, k):
        return [[(h.person, h.score) for h in row]
                for row in index.search_persons(ACCOUNT, VERSION, q, [1, 2], k)]
    return search


def test_every_pair_above_the_threshold_once():
    index, pks, vectors = _gallery()
    min_cos = 0.6
    found = sp.dedupe(sp.pairs_array(sp.find_pairs(_search(index), pks, vectors, min_cos, 0, len(pks))))
    got = {(int(a), int(b)) for a, b, _ in found.tolist()}
    want = _brute(pks, vectors, min_cos)
    assert len(want) == 5 + 40 * 39 // 2  # the planted twins and the whole crowd
    assert got == want
    assert all(a < b for a, b in got)
    # each pair's cosine is its real one
    row = {int(p): i for i, p in enumerate(pks)}
    for a, b, cos in found.tolist():
        assert abs(cos - float(vectors[row[a]] @ vectors[row[b]])) < 1e-4


def test_batches_resume_from_a_checkpoint(tmp_path):
    """Batches appended to the pair file; a batch cut off after its append but before its
    checkpoint is truncated away and redone: the same records as an uninterrupted run."""
    index, pks, vectors = _gallery(seed=1)
    search, min_cos = _search(index), 0.6

    def run(name: str, crash_at: int | None) -> np.ndarray:
        pair_file = sp.PairFile(tmp_path / name)
        pair_file.truncate(0)
        saved = 0
        for start in range(0, len(pks), 16):
            pair_file.truncate(saved)  # what a resumed step does first
            found = sp.pairs_array(sp.find_pairs(search, pks, vectors, min_cos, start, start + 16))
            length = pair_file.append(sp.dedupe(found))
            if start == crash_at:  # "crash" after the append: the checkpoint still says `saved`
                pair_file.truncate(saved)
                length = pair_file.append(sp.dedupe(found))
            saved = length
        return pair_file.read()

    clean, resumed = run("clean.bin", None), run("resumed.bin", 32)
    assert len(resumed) == len(clean)
    got = {(int(a), int(b)) for a, b, _ in sp.dedupe(resumed.copy()).tolist()}
    assert got == _brute(pks, vectors, min_cos)


def test_result_rows_order_and_fields():
    index, pks, vectors = _gallery(seed=2)
    gallery = sp.Gallery(pks, [f"p{p}" for p in pks], [["g1"] if p % 2 else ["g2"] for p in pks],
                         vectors)
    found = sp.dedupe(sp.pairs_array(sp.find_pairs(_search(index), pks, vectors, 0.6, 0, len(pks))))
    rows = sp.result_rows(gallery, found, VERSION)
    assert rows and set(rows[0]) == {"PersonId", "SimilarPersonId", "Score", "GroupIds",
                                     "SimilarGroupIds"}
    assert [r["Score"] for r in rows] == sorted((r["Score"] for r in rows), reverse=True)
    assert all(int(r["PersonId"][1:]) < int(r["SimilarPersonId"][1:]) for r in rows)
    assert all(0 <= r["Score"] <= 100 for r in rows)


def test_strengths_map_to_the_calibrated_scores():
    # 1 (stronger) accepts more pairs than 2: a lower score threshold, i.e. a higher FAR.
    assert sp.threshold_score(1, VERSION) < sp.threshold_score(2, VERSION)
    assert sp.threshold_cosine(1, VERSION) < sp.threshold_cosine(2, VERSION)
    assert sp.estimate_minutes(0, 1.0) == 0
    assert sp.estimate_minutes(1, 1e-4) == 1
    assert sp.estimate_minutes(2_000_000, 0.01) == 343  # 10 ms + snapshot + step overhead
    assert sp.estimate_minutes(2_000_000, 0.01, share=0.5) == 686
