"""FAISS backend: exact below the threshold, IVF recall above it, filters, removals."""

from __future__ import annotations

import numpy as np
import pytest

from openiai.index.backend import Allowed
from openiai.index.faiss_backend import FaissBackend

D = 128


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int, centers: int = 3000, spread: float = 0.6) -> np.ndarray:
    """Identity-like structure: points scattered around random centres (like faces of people)."""
    rng = np.random.default_rng(seed)
    c = unit(rng.standard_normal((centers, D)))
    x = c[rng.integers(0, centers, n)] + spread * rng.standard_normal((n, D)) / np.sqrt(D)
    return unit(x)


def exact(base: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    s = q @ base.T
    if mask is not None:
        s = np.where(mask[None, :], s, -np.inf)
    return ids[np.argsort(-s, axis=1)[:, :k]]


@pytest.fixture(scope="module")
def ivf_data():
    base = clustered(60_000, seed=1)
    ids = np.arange(60_000, dtype=np.int64)
    backend = FaissBackend(D, exact_threshold=20_000)
    backend.add(ids[:30_000], base[:30_000])  # crosses the threshold: switches to IVF
    backend.add(ids[30_000:], base[30_000:])
    rng = np.random.default_rng(2)
    probes = base[rng.choice(60_000, 150, replace=False)] + 0.5 * rng.standard_normal((150, D)) / np.sqrt(D)
    # Probes near enrolled vectors (another picture of an enrolled person). Probes unrelated to
    # everything are the IVF worst case (their top-1 is a coin toss among near-equals); their
    # recall is measured on real embeddings by `openiai bench search`.
    return base, ids, backend, unit(probes)


def test_exact_below_threshold():
    rng = np.random.default_rng(0)
    base = unit(rng.standard_normal((5000, D)))
    ids = rng.permutation(10_000)[:5000].astype(np.int64)
    b = FaissBackend(D, exact_threshold=100_000)
    b.add(ids, base)
    assert b.kind == "flat" and b.count() == 5000
    q = unit(rng.standard_normal((50, D)))
    scores, found = b.search(q, 10)
    np.testing.assert_array_equal(found, exact(base, ids, q, 10))
    np.testing.assert_allclose(scores[:, 0], np.max(q @ base.T, axis=1), rtol=1e-5)


def test_short_rows_are_padded():
    b = FaissBackend(D)
    b.add(np.array([3, 4], np.int64), unit(np.ones((2, D)) + np.eye(2, D)))
    scores, ids = b.search(unit(np.ones((1, D))), 5)
    assert ids.tolist()[0][2:] == [-1, -1, -1] and np.all(np.isneginf(scores[0, 2:]))
    _, ids = b.search(unit(np.ones((1, D))), 5, Allowed.from_ids(np.array([], np.int64), 5))
    assert (ids == -1).all()


def test_ivf_recall_above_threshold(ivf_data):
    base, ids, backend, queries = ivf_data
    assert backend.kind == "ivf"
    _, found = backend.search(queries, 10)
    truth = exact(base, ids, queries, 10)
    r1 = np.mean(found[:, 0] == truth[:, 0])
    r10 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), truth.tolist())])
    assert r1 >= 0.99, r1
    assert r10 >= 0.95, r10


@pytest.mark.parametrize("fraction", [0.002, 0.1, 0.6])
def test_ivf_filter_respected_and_accurate(ivf_data, fraction):
    base, ids, backend, queries = ivf_data
    rng = np.random.default_rng(int(fraction * 1000))
    mask = rng.random(len(ids)) < fraction
    allowed = Allowed(mask)
    _, found = backend.search(queries, 10, allowed)
    got = found[found >= 0]
    assert mask[got].all(), "a vector outside the filter was returned"
    truth = exact(base, ids, queries, 10, mask)
    assert np.mean(found[:, 0] == truth[:, 0]) >= 0.99


def test_flat_filter_exact():
    rng = np.random.default_rng(5)
    base = unit(rng.standard_normal((3000, D)))
    ids = np.arange(3000, dtype=np.int64)
    b = FaissBackend(D)
    b.add(ids, base)
    mask = rng.random(3000) < 0.05
    q = unit(rng.standard_normal((20, D)))
    _, found = b.search(q, 10, Allowed(mask))
    np.testing.assert_array_equal(found, exact(base, ids, q, 10, mask))


@pytest.mark.parametrize("threshold", [100_000, 2_000])
def test_removed_never_returned(threshold):
    base = clustered(6000, seed=7, centers=300)
    ids = np.arange(6000, dtype=np.int64)
    b = FaissBackend(D, exact_threshold=threshold)
    b.add(ids, base)
    gone = ids[::3]
    assert b.remove(gone) == len(gone)
    assert b.remove(gone) == 0
    assert b.count() == 6000 - len(gone)
    _, found = b.search(base[:300], 20)  # the removed vectors themselves as queries
    assert not np.isin(found, gone).any()
    b.add(gone[:10], base[gone[:10]])  # ids can come back
    _, found = b.search(base[gone[:10]], 1)
    assert found[:, 0].tolist() == gone[:10].tolist()


def test_switch_back_to_flat_and_snapshot(tmp_path):
    base = clustered(5000, seed=8, centers=200)
    ids = np.arange(5000, dtype=np.int64)
    b = FaissBackend(D, exact_threshold=4000)
    b.add(ids, base)
    assert b.kind == "ivf"
    b.snapshot(tmp_path / "x.index")
    c = FaissBackend(D, exact_threshold=4000)
    c.load(tmp_path / "x.index")
    assert c.kind == "ivf" and c.count() == 5000 and c.nprobe == b.nprobe
    np.testing.assert_array_equal(b.search(base[:50], 5)[1], c.search(base[:50], 5)[1])
    c.remove(ids[:3500])
    assert c.kind == "flat" and c.count() == 1500
    _, found = c.search(base[3500:3600], 1)
    assert found[:, 0].tolist() == list(range(3500, 3600))
