"""Start-up time of the server's index with N enrolled faces: ``openiai bench startup``.

Fills a SQLite database with N faces (one per person, one group; real LFW embeddings first,
then distractors drawn from their empirical distribution, as ``bench search`` does), then
times what ``Services`` does at start:

* rebuild - no snapshot yet: read every face from the database and build the index;
* snapshot write - what a clean shutdown (or the periodic snapshot) costs;
* snapshot start - load the snapshot, replay the change log after it.

    openiai bench startup --n 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import shutil
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from ..services import Services
from ..core.settings import Settings
from ..core.clock import now_ms
from ..core.features import to_bytes
from ..store.db import Database
from ..store.schema import Face, FaceFeature, Group, Membership, Person
from .lfw import OUT_DIR, load_embeddings
from .search import Dataset, rss_bytes

CHUNK = 50_000


def fill(settings: Settings, faces: np.ndarray, console: Console) -> float:
    """N persons with one face each, all in one group of account `bench`; returns seconds."""
    started = time.perf_counter()
    services = Services(settings, with_index=False)  # migrations and the account only
    account = services.keys.ensure_account("bench")
    services.close()
    db = Database(settings.db_url)  # the tables only: no index while filling
    now = now_ms()
    with db.engine.begin() as conn:
        group_pk = conn.execute(insert(Group).values(
            account_id=account, group_id="bench", name="bench", tag="", ex_descriptions=[],
            face_model_version="3.0", created_ms=now, updated_ms=now)).inserted_primary_key[0]
    crop = b"\xff\xd8"  # the crop is not read at start-up; keep the file small
    landmarks = [[0.0, 0.0]] * 5
    for start in range(0, len(faces), CHUNK):
        stop = min(len(faces), start + CHUNK)
        with db.engine.begin() as conn:
            insert_persons(conn, account, group_pk, "3.0",
                           [(i, crop, landmarks, faces[i - 1]) for i in range(start + 1, stop + 1)])
        console.print(f"  filled {stop:,} / {len(faces):,}", end="\r")
    db.dispose()
    console.print()
    return time.perf_counter() - started


def insert_persons(conn, account: int, group_pk: int, version: str, rows) -> None:
    """One person with one face per row (pk, crop bytes, crop landmarks, vector), straight
    into the tables (no change log: the index is rebuilt from them at start-up)."""
    now = now_ms()
    conn.execute(insert(Person), [
        {"pk": i, "account_id": account, "person_id": f"p{i}", "name": f"p{i}", "gender": 0,
         "face_model_version": version, "created_ms": now} for i, *_ in rows])
    conn.execute(insert(Membership), [
        {"group_pk": group_pk, "person_pk": i, "ex_descriptions": [], "created_ms": now}
        for i, *_ in rows])
    conn.execute(insert(Face), [
        {"pk": i, "account_id": account, "face_id": str(10**18 + i), "person_pk": i,
         "face_model_version": version, "x": 0, "y": 0, "width": 100, "height": 100,
         "crop_image": crop, "crop_landmarks": landmarks, "quality": None, "created_ms": now}
        for i, crop, landmarks, _ in rows])
    conn.execute(insert(FaceFeature), [
        {"face_pk": i, "model_version": version, "vector": to_bytes(vector), "created_ms": now}
        for i, _, _, vector in rows])


def timed_start(settings: Settings) -> tuple[Services, dict, float]:
    started = time.perf_counter()
    services = Services(settings, background=False)
    return services, services.index_report, time.perf_counter() - started


def run(n: int, data_dir: Path, console: Console) -> dict:
    shutil.rmtree(data_dir, ignore_errors=True)
    emb, labels = load_embeddings()
    data = Dataset(emb, labels, n, n_queries=0)
    settings = Settings(data_dir=data_dir)
    console.print(f"[bold]N = {n:,}[/]: filling {settings.db_url}")
    fill_s = fill(settings, data.faces, console)
    services, report, rebuild_s = timed_start(settings)  # no snapshot yet: rebuild (+ first snapshot)
    rebuilt = report["how"]
    t = time.perf_counter()
    services.index_sync.snapshot()
    snap_s = time.perf_counter() - t
    faces = report["faces"]
    services.close()
    # The load is timed in a fresh process: in this one the freed rebuild temporaries would be
    # reused and hide the index's memory.
    probe = json.loads(subprocess.run(
        [sys.executable, "-m", "openiai.bench.startup", "--probe", str(data_dir)],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    load_s, loaded, rss = probe["seconds"], probe["how"], probe["rss"]
    return {"n": n, "faces": faces, "fill_s": fill_s, "rebuild_how": rebuilt, "rebuild_s": rebuild_s,
            "snapshot_s": snap_s, "load_how": loaded, "load_s": load_s, "rss_per_face": rss / max(1, faces)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench startup", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="faces (repeatable; default 1,000,000)")
    ap.add_argument("--data-dir", type=Path, default=OUT_DIR / "startup",
                    help="scratch data directory (deleted and refilled per N)")
    ap.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # internal: one timed start
    args = ap.parse_args(argv)
    if args.probe:
        rss0 = rss_bytes()
        services, report, seconds = timed_start(Settings(data_dir=args.probe))
        print(json.dumps({"seconds": seconds, "how": report["how"], "rss": rss_bytes() - rss0}))
        services.close()
        return 0
    console = Console()
    rows = [run(n, args.data_dir / f"n{n}", console) for n in (args.n or [1_000_000])]
    table = Table(title="index start-up (SQLite, 2 cores)")
    for col in ("faces", "fill DB", "start: rebuild from DB", "snapshot write", "start: snapshot + log",
                "index RSS / face"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['faces']:,}", f"{r['fill_s']:.1f} s", f"{r['rebuild_s']:.2f} s ({r['rebuild_how']})",
                      f"{r['snapshot_s']:.2f} s", f"{r['load_s']:.2f} s ({r['load_how']})",
                      f"{r['rss_per_face']:.0f} B")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
