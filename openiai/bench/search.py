"""``openiai bench search``: the search index at scale, with real LFW embeddings.

For each ``--n N`` one account's collection is filled with N faces:

* real faces: LFW identities (SFace embeddings through the production engine, cached in
  bench/out/): for a person with m >= 2 images the first min(m-1, 5) are enrolled and the
  last is a (genuine) probe; people with a single image are alternately enrolled and used
  as probes of someone not enrolled (impostor probes: the top hit is then a distractor,
  the hard case for an approximate index);
* synthetic distractors up to N: one face per person (the worst case for memory: as many
  persons as faces), drawn from a Gaussian with the real embeddings' mean and covariance,
  re-normalised;
* two groups: one with every person, one with a random 10% of the persons (those are in
  both groups: a person is stored once, membership is a filter).

Measured: build (bulk load from arrays, both spaces), snapshot write, load from the snapshot
in a fresh process (time and resident memory delta per face), single-query latency p50/p99
(k=10) for SearchFaces over all groups, over the 10% group, and SearchPersons over all
groups; recall@1 / @10 against exact float32 search; QPS with 8 client threads; and, with
``--sweep``, recall and latency per nprobe (FAISS-benchmark style).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from openiai.bench.lfw import OUT_DIR, load_embeddings

ACCOUNT, VERSION = 1, "3.0"
G_ALL, G_TENTH = 1, 2
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# ------------------------------------------------------------------------------- data
class Dataset:
    def __init__(self, emb: np.ndarray, labels: np.ndarray, n: int, n_queries: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        by_id: dict[int, list[int]] = {}
        for i, lab in enumerate(labels.tolist()):
            by_id.setdefault(lab, []).append(i)
        enrolled_faces, enrolled_person, probes, single_toggle = [], [], [], False
        for lab, rows in sorted(by_id.items()):
            if len(rows) >= 2:
                for r in rows[: min(len(rows) - 1, 5)]:
                    enrolled_faces.append(r)
                    enrolled_person.append(lab)
                probes.append(rows[-1])
            else:
                single_toggle = not single_toggle
                if single_toggle:
                    enrolled_faces.append(rows[0])
                    enrolled_person.append(lab)
                else:
                    probes.append(rows[0])
        real = emb[enrolled_faces]
        if len(real) > n:
            real, enrolled_person = real[:n], enrolled_person[:n]
        n_real = len(real)
        n_syn = n - n_real
        # Distractors: Gaussian with the real embeddings' mean and covariance, re-normalised.
        mean = emb.mean(axis=0)
        cov = np.cov(emb, rowvar=False) + 1e-6 * np.eye(emb.shape[1])
        chol = np.linalg.cholesky(cov).astype(np.float32)
        faces = np.empty((n, emb.shape[1]), np.float32)
        faces[:n_real] = real
        step = 200_000
        for s in range(0, n_syn, step):
            m = min(step, n_syn - s)
            z = rng.standard_normal((m, emb.shape[1]), dtype=np.float32) @ chol.T + mean
            faces[n_real + s:n_real + s + m] = z / np.linalg.norm(z, axis=1, keepdims=True)
        # Persons: real identities (fused = normalised mean of their enrolled faces) + one per distractor.
        real_people = sorted(set(enrolled_person))
        pidx = {p: i for i, p in enumerate(real_people)}
        face_person = np.empty(n, np.int64)
        face_person[:n_real] = [pidx[p] for p in enrolled_person]
        face_person[n_real:] = len(real_people) + np.arange(n_syn)
        n_persons = len(real_people) + n_syn
        persons = np.empty((n_persons, emb.shape[1]), np.float32)
        sums = np.zeros((len(real_people), emb.shape[1]), np.float32)
        np.add.at(sums, face_person[:n_real], faces[:n_real])
        persons[: len(real_people)] = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        persons[len(real_people):] = faces[n_real:]
        self.faces, self.persons, self.face_person = faces, persons, face_person
        self.face_pks = np.arange(n, dtype=np.int64) + 1_000_000_000  # like database keys
        self.person_pks = np.arange(n_persons, dtype=np.int64) + 5_000_000_000
        tenth = np.sort(rng.choice(n_persons, max(1, n_persons // 10), replace=False))
        self.tenth_persons = tenth
        self.member_person = np.concatenate([np.arange(n_persons), tenth])
        self.member_group = np.concatenate([np.full(n_persons, G_ALL), np.full(len(tenth), G_TENTH)])
        probes = np.array(probes)
        if len(probes) > n_queries:
            probes = np.sort(rng.choice(probes, n_queries, replace=False))
        self.queries = emb[probes]
        self.n_real = n_real

    def bulk_load(self, manager) -> None:
        manager.bulk_load(
            ACCOUNT, VERSION,
            face_pks=self.face_pks, face_person_pks=self.person_pks[self.face_person], face_vectors=self.faces,
            person_pks=self.person_pks, person_vectors=self.persons,
            member_person_pks=self.person_pks[self.member_person], member_group_pks=self.member_group,
        )


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Indices (into base, or into rows when given) of the exact top-k by inner product."""
    sub = base if rows is None else base[rows]
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 256):
        sc = queries[s:s + 256] @ sub.T
        part = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sc, part, 1).argsort(axis=1)[:, ::-1]
        out[s:s + 256] = np.take_along_axis(part, order, 1)
    return out if rows is None else rows[out]


def recall(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    r1 = float(np.mean(found[:, 0] == truth[:, 0]))
    r10 = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))
    return r1, r10


# ------------------------------------------------------------------------------- measurements
def timed_single(fn, queries: np.ndarray) -> tuple[np.ndarray, list]:
    fn(queries[:1])  # warm: filter cache, pages
    times, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(q[None, :])[0])
        times.append(time.perf_counter() - t)
    return np.array(times) * 1000.0, results


def qps(fn, queries: np.ndarray, threads: int = 8, seconds: float = 3.0) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def worker(t: int) -> None:
        i = t
        while time.perf_counter() < stop:
            fn(queries[i % len(queries)][None, :])
            counts[t] += 1
            i += threads

    ths = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return sum(counts) / (time.perf_counter() - start)


def hits_to_index(rows: list, pk_base: int, k: int) -> np.ndarray:
    out = np.full((len(rows), k), -1, np.int64)
    for i, row in enumerate(rows):
        for j, h in enumerate(row[:k]):
            out[i, j] = (h.face if h.face is not None else h.person) - pk_base
    return out


def load_probe(snap_dir: str) -> None:
    """Run in a fresh process: load the snapshot, print load time and RSS delta as JSON."""
    import faiss  # noqa: F401  (imported before the baseline so that only the data counts)

    from openiai.index import IndexManager

    gc.collect()
    before = rss_bytes()
    t = time.perf_counter()
    m = IndexManager()
    seq = m.load(snap_dir)
    seconds = time.perf_counter() - t
    gc.collect()
    counts = m.counts(ACCOUNT, VERSION)
    print(json.dumps({"seconds": seconds, "rss_delta": rss_bytes() - before, "seq": seq, **counts}))


def run_one(n: int, emb, labels, args, console) -> dict:
    import faiss

    from openiai.index import IndexManager

    res: dict = {"N": n}
    t = time.perf_counter()
    ds = Dataset(emb, labels, n, args.queries, seed=args.seed)
    console.print(f"[dim]N={n:,}: data ready in {time.perf_counter() - t:.1f} s "
                  f"({ds.n_real:,} real faces, {len(ds.persons):,} persons, {len(ds.queries)} probes)[/dim]")
    from openiai.index.faiss_backend import FaissBackend

    def factory(dim: int):
        return FaissBackend(dim, exact_threshold=args.threshold, nlist=args.nlist, nprobe=args.nprobe)

    manager = IndexManager(backend_factory=factory)
    t = time.perf_counter()
    ds.bulk_load(manager)
    res["build_s"] = time.perf_counter() - t
    col = manager.collection(ACCOUNT, VERSION)  # the engine's own structure: timed from inside
    res["index"] = col.faces.describe()
    console.print(f"[dim]  built in {res['build_s']:.1f} s: {res['index']}[/dim]")

    # Incremental writes: 1,000 single-face enrolments (new persons in the 10% group) then removal.
    rng = np.random.default_rng(args.seed + 1)
    extra = ds.faces[rng.choice(n, 1000)]
    t = time.perf_counter()
    for i in range(1000):
        manager.set_person(ACCOUNT, VERSION, 9_000_000_000 + i, extra[i], [G_ALL, G_TENTH])
        manager.upsert_face(ACCOUNT, VERSION, 8_000_000_000 + i, 9_000_000_000 + i, extra[i])
    res["upsert_ms"] = (time.perf_counter() - t) / 1000 * 1000
    manager.remove_persons(ACCOUNT, VERSION, list(range(9_000_000_000, 9_000_001_000)))

    snap_dir = Path(args.out) / f"snapshot-{n}"
    shutil.rmtree(snap_dir, ignore_errors=True)
    t = time.perf_counter()
    manager.snapshot(snap_dir, seq=n)
    res["snapshot_s"] = time.perf_counter() - t
    res["snapshot_mb"] = sum(f.stat().st_size for f in snap_dir.rglob("*") if f.is_file()) / 2**20
    out = subprocess.run([sys.executable, "-m", "openiai.bench.search", "--_load-probe", str(snap_dir)],
                         capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    res["load_s"] = probe["seconds"]
    res["bytes_per_face"] = probe["rss_delta"] / n
    if not args.keep_snapshots:
        shutil.rmtree(snap_dir, ignore_errors=True)

    queries = ds.queries
    k = 10
    console.print("[dim]  exact ground truth...[/dim]")
    truth_all = exact_topk(ds.faces, queries, k)
    tenth_faces = np.flatnonzero(np.isin(ds.face_person, ds.tenth_persons))
    truth_tenth = exact_topk(ds.faces, queries, k, rows=tenth_faces)
    truth_pers = exact_topk(ds.persons, queries, k)
    base_f, base_p = int(ds.face_pks[0]), int(ds.person_pks[0])

    def faces_all(q):
        return manager.search_faces(ACCOUNT, VERSION, q, [G_ALL], k, unique_persons=False)

    def faces_tenth(q):
        return manager.search_faces(ACCOUNT, VERSION, q, [G_TENTH], k, unique_persons=False)

    def persons_all(q):
        return manager.search_persons(ACCOUNT, VERSION, q, [G_ALL], k)

    # Cold filter build for the 10% group (first search after a write).
    col._touch()
    t = time.perf_counter()
    with col.lock.read():
        col.filters([G_TENTH])
    res["filter_build_ms"] = (time.perf_counter() - t) * 1000

    for name, fn, truth, base in (("all", faces_all, truth_all, base_f), ("10%", faces_tenth, truth_tenth, base_f),
                                  ("persons", persons_all, truth_pers, base_p)):
        ms, rows = timed_single(fn, queries)
        found = hits_to_index(rows, base, k)
        r1, r10 = recall(found, truth)
        res[f"{name}_p50"], res[f"{name}_p99"] = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        res[f"{name}_r1"], res[f"{name}_r10"] = r1, r10
    res["qps8"] = qps(faces_all, queries, threads=8, seconds=args.qps_seconds)
    res["qps8_10%"] = qps(faces_tenth, queries, threads=8, seconds=args.qps_seconds)

    if args.sweep and col.faces.kind == "ivf":
        backend = col.faces
        rows = []
        saved = backend.nprobe
        for nprobe in sorted({backend.nlist // 16, backend.nlist // 8, backend.nlist // 4, backend.nlist // 2,
                              3 * backend.nlist // 4, backend.nlist} - {0}):
            if nprobe > backend.nlist:
                break
            backend.nprobe = nprobe
            ms, found_rows = timed_single(faces_all, queries)
            r1, r10 = recall(hits_to_index(found_rows, base_f, k), truth_all)
            rows.append((nprobe, r1, r10, float(np.percentile(ms, 50)), float(np.percentile(ms, 99))))
        backend.nprobe = saved
        res["sweep"] = rows
    del manager, col, ds
    gc.collect()
    faiss.omp_get_max_threads()
    return res


def open_backend(name: str, args):
    """(engine, memory probe) for ``--backend NAME``: the probe returns the resident bytes
    that hold the index (this process, for FAISS and for Milvus Lite, which runs inside it;
    None for a remote Milvus, whose memory is not on this machine)."""
    if name == "faiss":
        from openiai.index import IndexManager
        from openiai.index.faiss_backend import FaissBackend

        engine = IndexManager(backend_factory=lambda dim: FaissBackend(
            dim, exact_threshold=args.threshold, nlist=args.nlist, nprobe=args.nprobe))
        return engine, rss_bytes
    from openiai.index.milvus_engine import MilvusIndex

    url = args.milvus_url or f"milvus-lite:{Path(args.out).resolve() / 'bench-milvus.db'}?prefix=bench"
    engine = MilvusIndex.from_url(url)
    engine.clear()
    return engine, (rss_bytes if url.startswith("milvus-lite:") else (lambda: None))


def compare_backends(n: int, emb, labels, args, console) -> dict:
    """One collection of N faces in each ``--backend``, the same probes: build time, memory,
    single-query p50/p99 and recall@1 against exact search, QPS with 8 threads."""
    ds = Dataset(emb, labels, n, args.queries, seed=args.seed)
    k = 10
    truth_all = exact_topk(ds.faces, ds.queries, k)
    tenth_faces = np.flatnonzero(np.isin(ds.face_person, ds.tenth_persons))
    truth_tenth = exact_topk(ds.faces, ds.queries, k, rows=tenth_faces)
    base = int(ds.face_pks[0])
    out: dict = {"N": n}
    for name in args.backend:
        gc.collect()
        engine, memory = open_backend(name, args)
        before = memory()
        t = time.perf_counter()
        ds.bulk_load(engine)
        if hasattr(engine, "wait_indexed"):  # a Milvus server indexes in the background
            engine.wait_indexed()
        row = {"build_s": time.perf_counter() - t, "engine": getattr(engine, "describe", lambda: "")() or
               engine.collection(ACCOUNT, VERSION).faces.describe()}
        time.sleep(0.5)
        after = memory()
        row["bytes_per_face"] = None if before is None or after is None else (after - before) / n
        for label, groups, truth in (("all", [G_ALL], truth_all), ("10%", [G_TENTH], truth_tenth)):
            def fn(q, groups=groups):
                return engine.search_faces(ACCOUNT, VERSION, q, groups, k, unique_persons=False)

            ms, rows = timed_single(fn, ds.queries)
            r1, _ = recall(hits_to_index(rows, base, k), truth)
            row[f"{label}_p50"], row[f"{label}_p99"] = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
            row[f"{label}_r1"] = r1
            row[f"{label}_qps"] = qps(fn, ds.queries, threads=8, seconds=args.qps_seconds)
        console.print(f"[dim]  {name}: {row}[/dim]")
        out[name] = row
        if name != "faiss":
            engine.clear()
        del engine
    return out


COMPARE_ROWS = [
    ("engine", "engine", "{}"),
    ("build (bulk, faces + persons)", "build_s", "{:.1f} s"),
    ("resident memory / face", "bytes_per_face", "{:.0f} B"),
    ("SearchFaces all p50 / p99", ("all_p50", "all_p99"), "{:.2f} / {:.2f} ms"),
    ("  recall@1 vs exact", "all_r1", "{:.4f}"),
    ("  QPS, 8 threads", "all_qps", "{:.0f}"),
    ("SearchFaces 10% group p50 / p99", ("10%_p50", "10%_p99"), "{:.2f} / {:.2f} ms"),
    ("  recall@1 vs exact", "10%_r1", "{:.4f}"),
    ("  QPS, 8 threads", "10%_qps", "{:.0f}"),
]


def render_comparison(results: list[dict], backends: list[str], console) -> None:
    from rich.table import Table

    table = Table(title="openiai bench search --backend (k=10, single queries, same probes)")
    table.add_column("setting")
    for r in results:
        for b in backends:
            table.add_column(f"{b}, N = {r['N']:,}", justify="right")
    for label, key, fmt in COMPARE_ROWS:
        cells = []
        for r in results:
            for b in backends:
                v = r[b]
                vals = [v[k] for k in key] if isinstance(key, tuple) else [v[key]]
                cells.append("n/a" if None in vals else fmt.format(*vals))
        table.add_row(label, *cells)
    console.print(table)


ROWS = [
    ("index", "index", "{}"),
    ("build (bulk, both spaces)", "build_s", "{:.1f} s"),
    ("enrol 1 face+person (incremental)", "upsert_ms", "{:.2f} ms"),
    ("snapshot write", "snapshot_s", "{:.1f} s"),
    ("snapshot size", "snapshot_mb", "{:.0f} MiB"),
    ("load from snapshot (fresh process)", "load_s", "{:.2f} s"),
    ("resident memory / face (faces+persons)", "bytes_per_face", "{:.0f} B"),
    ("10% group filter build (cold)", "filter_build_ms", "{:.1f} ms"),
    ("SearchFaces all groups p50 / p99", ("all_p50", "all_p99"), "{:.2f} / {:.2f} ms"),
    ("  recall@1 / recall@10", ("all_r1", "all_r10"), "{:.4f} / {:.4f}"),
    ("SearchFaces 10% group p50 / p99", ("10%_p50", "10%_p99"), "{:.2f} / {:.2f} ms"),
    ("  recall@1 / recall@10", ("10%_r1", "10%_r10"), "{:.4f} / {:.4f}"),
    ("SearchPersons all groups p50 / p99", ("persons_p50", "persons_p99"), "{:.2f} / {:.2f} ms"),
    ("  recall@1 / recall@10", ("persons_r1", "persons_r10"), "{:.4f} / {:.4f}"),
    ("QPS, 8 threads, all groups", "qps8", "{:.0f}"),
    ("QPS, 8 threads, 10% group", "qps8_10%", "{:.0f}"),
]


def render(results: list[dict], console) -> None:
    from rich.table import Table

    table = Table(title="openiai bench search (k=10, single queries)")
    table.add_column("setting")
    for r in results:
        table.add_column(f"N = {r['N']:,}", justify="right")
    for label, key, fmt in ROWS:
        cells = []
        for r in results:
            if isinstance(key, tuple):
                cells.append(fmt.format(*(r[k] for k in key)))
            else:
                cells.append(fmt.format(r[key]))
        table.add_row(label, *cells)
    console.print(table)
    for r in results:
        if "sweep" in r:
            t = Table(title=f"nprobe sweep, N = {r['N']:,} ({r['index']}), SearchFaces all groups")
            for c in ("nprobe", "R@1", "R@10", "p50 ms", "p99 ms"):
                t.add_column(c, justify="right")
            for nprobe, r1, r10, p50, p99 in r["sweep"]:
                t.add_row(str(nprobe), f"{r1:.4f}", f"{r10:.4f}", f"{p50:.2f}", f"{p99:.2f}")
            console.print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench search", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append", help="collection size (repeatable); default 100000")
    ap.add_argument("--queries", type=int, default=1000, help="probe count (real LFW faces)")
    ap.add_argument("--limit", type=int, default=None, help="embed only the first LIMIT LFW images (faster first run)")
    ap.add_argument("--threshold", type=int, default=None, help="exact/IVF switch (default: the backend's)")
    ap.add_argument("--nlist", type=int, default=None, help="IVF lists (default: the backend's rule)")
    ap.add_argument("--nprobe", type=int, default=None, help="IVF lists scanned (default: the backend's rule)")
    ap.add_argument("--sweep", action="store_true", help="also print recall/latency per nprobe")
    ap.add_argument("--qps-seconds", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT_DIR))
    ap.add_argument("--keep-snapshots", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--_load-probe", dest="load_probe", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--backend", action="append", choices=["faiss", "milvus"],
                    help="compare engines side by side (repeatable: --backend faiss --backend milvus)")
    ap.add_argument("--milvus-url", default=None,
                    help="Milvus for --backend milvus (default: a Milvus Lite file in --out)")
    args = ap.parse_args(argv)
    if args.load_probe:
        load_probe(args.load_probe)
        return 0
    from rich.console import Console

    from openiai.index.faiss_backend import DEFAULT_EXACT_THRESHOLD

    console = Console()
    if args.threshold is None:
        args.threshold = DEFAULT_EXACT_THRESHOLD
    Path(args.out).mkdir(parents=True, exist_ok=True)
    emb, labels = load_embeddings(limit=args.limit, console=console)
    console.print(f"LFW: {len(emb):,} embeddings of {len(np.unique(labels)):,} people; "
                  f"{os.cpu_count()} CPUs; exact below {args.threshold:,} vectors")
    if args.backend:
        compared = []
        for n in args.n or [100_000]:
            compared.append(compare_backends(n, emb, labels, args, console))
            render_comparison(compared, args.backend, console)
        if args.json:
            Path(args.json).write_text(json.dumps(compared, indent=1))
        return 0
    results = []
    for n in args.n or [100_000]:
        results.append(run_one(n, emb, labels, args, console))
        render(results, console)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
