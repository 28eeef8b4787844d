"""The in-memory engine's FAISS vector space: exact below a size threshold, IVF-PQ fast-scan
+ re-rank above.

* ``n < exact_threshold``: ``IndexIDMap2(IndexFlatIP)``, exact float32 inner product.
* ``n >= exact_threshold``: ``IndexIVFPQFastScan`` (``IVF<nlist>,PQ<d/2>x4fs``, inner
  product; 32 B of 4-bit PQ codes per vector, scanned with SIMD lookup tables) produces
  ``max(320, 2k)`` candidates, which are re-ranked exactly against a float16 copy of the
  vectors (256 B per vector; its scores differ from float32 ones by ~1e-4). Removal is a
  tombstone (a bitmap over slots; FAISS 1.15's ``remove_ids`` on fast-scan lists corrupts
  codes added afterwards), and the lists are re-encoded from the float16 copy once stale
  entries exceed ``compact_ratio`` of the live ones.
* Why (measured with ``openiai bench search`` on SFace embeddings of LFW + Gaussian
  distractors with their covariance): SFace features spread over nearly all 128 dimensions
  (the top 64 principal axes hold only 63% of the variance), so for a probe of somebody who
  is NOT enrolled, the exact top-1 is one of many near-equal distractors and every
  partitioning index (IVF-Flat/SQ, HNSW M=32 ef=256: recall@1 0.87 at 200k) has to look at
  most of the collection to find it. A compressed scan of (nearly) everything is what keeps
  recall@1 >= 0.99, and fast-scan PQ does 1M vectors in a few ms on one core.
* Filters: an ``IDSelectorBitmap`` over the slots; an allowed subset of at most
  ``exact_subset`` ids is instead searched exactly (gather its float16 rows + matmul).
* The coarse quantizer and PQ are trained once, on a sample of the data present when the
  switch happens; when the store has grown ``rebuild_factor`` times past that size, the
  next write re-trains.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import faiss
import numpy as np

from .backend import Allowed

DEFAULT_EXACT_THRESHOLD = 100_000
DEFAULT_EXACT_SUBSET = 4_096
MIN_CANDIDATES = 320
_FULL_THREADS = max(1, faiss.omp_get_max_threads())
_local = threading.local()


def _omp_threads(n: int) -> None:
    """OpenMP team size for FAISS calls made by this thread (an ICV of the calling thread).

    One query gains nothing from a team and loses a lot to it on a loaded box (flat search of
    100k vectors: 6 ms on one thread, 50 ms with two), so single queries run on one thread.
    """
    if getattr(_local, "omp", None) != n:
        faiss.omp_set_num_threads(n)
        _local.omp = n


def auto_nlist(n: int) -> int:
    """Power of two near sqrt(n): 100k -> 256, 1M -> 1024, 3M -> 2048."""
    target = math.sqrt(max(n, 1))
    return int(max(16, 2 ** round(math.log2(target))))


def auto_nprobe(nlist: int) -> int:
    """Lists scanned per query: 3/4 of them (measured: 1M faces, nlist 1024, 320 candidates
    re-ranked: recall@1 0.995 at 768 lists, 0.987 at 1024 with 100 candidates, 0.968 at 512)."""
    return int(max(1, (3 * nlist) // 4))


def _empty(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)


class FaissBackend:
    """A :class:`~openiai.index.backend.VectorBackend` of `dim`-wide vectors."""

    def __init__(
        self,
        dim: int,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        nlist: int | None = None,
        nprobe: int | None = None,
        exact_subset: int = DEFAULT_EXACT_SUBSET,
        rebuild_factor: float = 4.0,
        compact_ratio: float = 0.1,
        train_size: int = 65_536,
        seed: int = 1234,
    ) -> None:
        self.dim = int(dim)
        self.exact_threshold = int(exact_threshold)
        self._nlist_fixed = nlist
        self._nprobe_fixed = nprobe
        self.exact_subset = int(exact_subset)
        self.rebuild_factor = float(rebuild_factor)
        self.compact_ratio = float(compact_ratio)
        self.train_size = int(train_size)
        self.seed = int(seed)
        self._index = self._new_flat()
        self._vec16: np.ndarray | None = None  # slot -> float16 vector (IVF tier only)
        self._alive: np.ndarray | None = None  # slot -> live (IVF tier only)
        self._live = 0
        self._alive_bits: Allowed | None = None
        self._trained_n = 0
        self.nprobe = 0

    # ------------------------------------------------------------------ introspection
    @property
    def kind(self) -> str:
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "flat"

    @property
    def nlist(self) -> int:
        return int(self._index.nlist) if self.kind == "ivf" else 0

    def describe(self) -> str:
        if self.kind == "flat":
            return "flat (exact)"
        return f"IVF{self.nlist},PQ{self.dim // 2}x4fs nprobe={self.nprobe} + fp16 re-rank"

    def count(self) -> int:
        return self._live if self.kind == "ivf" else int(self._index.ntotal)

    def stale(self) -> int:
        """Index entries that no longer count (removed or superseded slots)."""
        return int(self._index.ntotal) - self._live if self.kind == "ivf" else 0

    # ------------------------------------------------------------------ construction
    def _new_flat(self):
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _store16(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        top = int(ids.max()) + 1 if len(ids) else 0
        if self._vec16 is None or top > len(self._vec16):
            cap = max(top, int((0 if self._vec16 is None else len(self._vec16)) * 1.25) + 1024)
            grown = np.zeros((cap, self.dim), np.float16)
            alive = np.zeros(cap, bool)
            if self._vec16 is not None:
                grown[: len(self._vec16)] = self._vec16
                alive[: len(self._alive)] = self._alive
            self._vec16, self._alive = grown, alive
        self._vec16[ids] = vectors.astype(np.float16)
        self._live += int(np.count_nonzero(~self._alive[ids]))
        self._alive[ids] = True
        self._alive_bits = None

    def _build_ivf(self, ids: np.ndarray, vectors: np.ndarray):
        _omp_threads(_FULL_THREADS)
        n = len(ids)
        nlist = int(min(self._nlist_fixed or auto_nlist(n), max(1, n // 64)))
        index = faiss.index_factory(self.dim, f"IVF{nlist},PQ{self.dim // 2}x4fs", faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = 12
        ivf.cp.seed = self.seed
        rng = np.random.default_rng(self.seed)
        m = min(n, max(self.train_size, 40 * nlist))
        sample = vectors if m == n else vectors[np.sort(rng.choice(n, m, replace=False))]
        index.train(np.ascontiguousarray(sample, np.float32))
        self._vec16 = self._alive = None
        self._live = 0
        self._store16(ids, vectors)
        step = 262_144
        for s in range(0, n, step):
            index.add_with_ids(np.ascontiguousarray(vectors[s:s + step], np.float32), ids[s:s + step])
        self._trained_n = n
        self.nprobe = int(min(nlist, self._nprobe_fixed or auto_nprobe(nlist)))
        return index

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors) stored (float16-rounded in the IVF tier)."""
        index = self._index
        if self.kind == "flat":
            n = index.ntotal
            if n == 0:
                return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
            ids = faiss.vector_to_array(index.id_map).astype(np.int64)
            xb = faiss.rev_swig_ptr(faiss.downcast_index(index.index).get_xb(), n * self.dim)
            return ids, np.array(xb, dtype=np.float32).reshape(n, self.dim)
        ids = np.flatnonzero(self._alive).astype(np.int64)
        return ids, self._vec16[ids].astype(np.float32)

    def compact(self) -> None:
        """Re-encode the live vectors into fresh lists (same trained quantizer and PQ)."""
        if self.kind != "ivf":
            return
        ids, vecs = self.export()
        fresh = faiss.clone_index(self._index)
        fresh.reset()
        _omp_threads(_FULL_THREADS)
        for s in range(0, len(ids), 262_144):
            fresh.add_with_ids(vecs[s:s + 262_144], ids[s:s + 262_144])
        self._index = fresh

    def _maybe_switch(self) -> None:
        n = self.count()
        if self.kind == "flat":
            if n >= self.exact_threshold:
                ids, vecs = self.export()
                self._index = None
                self._index = self._build_ivf(ids, vecs)
        elif n < self.exact_threshold // 2:
            ids, vecs = self.export()
            flat = self._new_flat()
            if n:
                flat.add_with_ids(vecs, ids)
            self._index, self._vec16, self._alive, self._live = flat, None, None, 0
            self._trained_n, self.nprobe = 0, 0
        elif self._nlist_fixed is None and n > self.rebuild_factor * self._trained_n:
            self.rebuild()
        elif self.stale() > max(1024, self.compact_ratio * n):
            self.compact()

    def rebuild(self) -> None:
        """Re-train on the current content (IVF tier only; else no-op)."""
        if self.kind == "ivf" and self.count():
            ids, vecs = self.export()
            self._index = None  # let the old lists go before the new ones are allocated
            self._index = self._build_ivf(ids, vecs)

    def bulk_build(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the content with these vectors, building the final structure directly."""
        ids = np.ascontiguousarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32)
        self._index = None
        self._vec16 = self._alive = None
        self._live = 0
        if len(ids) >= self.exact_threshold:
            self._index = self._build_ivf(ids, vectors)
        else:
            self._index = self._new_flat()
            self._trained_n, self.nprobe = 0, 0
            if len(ids):
                self._index.add_with_ids(vectors, ids)

    # ------------------------------------------------------------------ protocol
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids) == 0:
            return
        if self.kind == "ivf":
            self._store16(ids, vectors)
        self._index.add_with_ids(vectors, ids)
        self._maybe_switch()

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        if len(ids) == 0 or self.count() == 0:
            return 0
        if self.kind == "ivf":
            ids = np.unique(ids[(ids >= 0) & (ids < len(self._alive))])
            ids = ids[self._alive[ids]]
            self._alive[ids] = False
            self._live -= len(ids)
            self._alive_bits = None
            removed = len(ids)
        else:
            removed = int(self._index.remove_ids(ids))
        if removed:
            self._maybe_switch()
        return removed

    def _rerank(self, queries: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = len(queries)
        out_s, out_i = _empty(q, k)
        for i in range(q):
            c = np.unique(cand[i][cand[i] >= 0])  # a superseded entry can share a live slot
            if len(c) == 0:
                continue
            sc = self._vec16[c].astype(np.float32) @ queries[i]
            top = np.argsort(-sc, kind="stable")[:k]
            out_s[i, : len(top)], out_i[i, : len(top)] = sc[top], c[top]
        return out_s, out_i

    def _exact_subset(self, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sc = queries @ self._vec16[ids].astype(np.float32).T
        kk = min(k, len(ids))
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk] if kk < len(ids) else np.tile(np.arange(len(ids)), (len(queries), 1))
        ps = np.take_along_axis(sc, part, 1)
        order = np.argsort(-ps, axis=1, kind="stable")
        out_s, out_i = _empty(len(queries), k)
        out_s[:, :kk] = np.take_along_axis(ps, order, 1)
        out_i[:, :kk] = ids[np.take_along_axis(part, order, 1)]
        return out_s, out_i

    def search(self, queries: np.ndarray, k: int, allowed: Allowed | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        q, n = len(queries), self.count()
        k = int(k)
        if q == 0 or k <= 0:
            return _empty(q, max(k, 0))
        if n == 0 or (allowed is not None and allowed.count == 0):
            return _empty(q, k)
        _omp_threads(1 if q < 16 else _FULL_THREADS)
        ivf = self.kind == "ivf"
        if ivf and allowed is not None and allowed.count <= self.exact_subset:
            return self._exact_subset(queries, allowed.ids(), k)
        bitmap = sel = None
        if ivf:
            nprobe = self.nprobe
            if allowed is None and self.stale():
                if self._alive_bits is None:
                    self._alive_bits = Allowed(self._alive, self._live)
                allowed = self._alive_bits
            if allowed is not None:
                bitmap = allowed.bitmap()  # must outlive the search
                sel = faiss.IDSelectorBitmap(bitmap)
                nprobe = min(self.nlist, math.ceil(self.nprobe * n / max(allowed.count, 1)))
            params = faiss.SearchParametersIVF(sel=sel, nprobe=int(nprobe)) if sel else faiss.SearchParametersIVF(nprobe=int(nprobe))
            kc = min(n, max(MIN_CANDIDATES, 2 * k))
            _, cand = self._index.search(queries, kc, params=params)
            del bitmap, sel
            return self._rerank(queries, cand, k)
        kk = min(k, n if allowed is None else min(n, allowed.count))
        params = None
        if allowed is not None:
            bitmap = allowed.bitmap()
            sel = faiss.IDSelectorBitmap(bitmap)
            params = faiss.SearchParameters(sel=sel)
        scores, ids = self._index.search(queries, kk, params=params)
        del bitmap, sel
        if kk < k:
            pad_s, pad_i = _empty(q, k - kk)
            scores, ids = np.hstack([scores, pad_s]), np.hstack([ids, pad_i])
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32, copy=False)
        return scores, ids

    # ------------------------------------------------------------------ persistence
    def snapshot(self, path: Path) -> None:
        path = Path(path)
        faiss.write_index(self._index, str(path))
        if self.kind == "ivf":
            top = int(np.flatnonzero(self._alive).max()) + 1 if self._live else 0
            with open(f"{path}.fp16.npy", "wb") as f:
                np.save(f, self._vec16[:top])
            with open(f"{path}.alive.npy", "wb") as f:
                np.save(f, self._alive[:top])

    def load(self, path: Path) -> None:
        path = Path(path)
        index = faiss.read_index(str(path))  # the concrete, owning type
        if index.d != self.dim:
            raise ValueError(f"snapshot has dimension {index.d}, expected {self.dim}")
        self._index = index
        if isinstance(index, faiss.IndexIVF):
            self._vec16 = np.load(f"{path}.fp16.npy")
            self._alive = np.load(f"{path}.alive.npy")
            self._live = int(np.count_nonzero(self._alive))
            self._alive_bits = None
            self._trained_n = self._live
            self.nprobe = int(min(index.nlist, self._nprobe_fixed or auto_nprobe(index.nlist)))
        else:
            self._vec16, self._alive, self._live, self._trained_n, self.nprobe = None, None, 0, 0, 0
