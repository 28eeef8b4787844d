"""A group's FaceModelVersion upgrade at scale, with searches beside it: ``openiai bench upgrade``.

Builds a 2.0 group of ``--faces`` faces (one person each) in a fresh data directory: a few
hundred real LFW photos are detected, cut to their canonical crops and embedded with dlib's
ResNet once, then their rows (crop, landmarks, 2.0 vector) are repeated until the group holds
``--faces`` faces. The upgrade re-extracts every one of them from its stored crop with SFace,
so the job's cost is the real per-face cost whatever the repetition.

A real ``openiai serve`` then starts on that directory (``OPENIAI_JOBS_SHARE`` from
``--share``); SearchFaces on the group is timed through the official SDK before the upgrade,
throughout it (one client, back to back) and after the switch; the job's own time comes from
GetUpgradeGroupFaceModelVersionResult (StartTime .. EndTimestamp).

    nice openiai bench upgrade --faces 10000
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from ..core.clock import now_ms
from ..core.features import to_bytes
from ..core.settings import Settings
from ..services import Services
from ..store.db import Database
from ..store.schema import Face, FaceFeature, Group, Membership, Person
from .lfw import lfw_images_dir
from .server import Server

CHUNK = 2000


def _photos(count: int, skip: int = 0) -> list[Path]:
    """``count`` LFW photos, one per person (sorted), after the first ``skip`` people."""
    dirs = sorted(d for d in lfw_images_dir().iterdir() if d.is_dir())
    return [sorted(d.glob("*.jpg"))[0] for d in dirs[skip:skip + count]]


def seed(data_dir: Path, faces: int, distinct: int) -> tuple[str, list[Path]]:
    """Fill the data directory; returns (account name, probe photos of enrolled people)."""
    settings = Settings(data_dir=data_dir)
    services = Services(settings, with_index=False)
    account = services.keys.ensure_account("bench")
    pipeline = services.faces
    rows = []  # (crop bytes, crop landmarks, dlib vector, person dir)
    for path in _photos(distinct * 2):
        if len(rows) == distinct:
            break
        img = pipeline.load(base64.b64encode(path.read_bytes()).decode(), None)
        found = pipeline.detect(img.pixels, max_faces=1)
        if not found:
            continue
        crop, landmarks = pipeline.canonical_crop(img.pixels, found[0])
        vector = pipeline.feature(img.pixels, found[0], "2.0")
        rows.append((crop, [[float(x), float(y)] for x, y in landmarks], vector, path.parent))
    services.close()
    db = Database(settings.db_url)
    now = now_ms()
    with db.engine.begin() as conn:
        group_pk = conn.execute(insert(Group).values(
            account_id=account, group_id="bench", name="bench", tag="", ex_descriptions=[],
            face_model_version="2.0", created_ms=now, updated_ms=now)).inserted_primary_key[0]
    for start in range(0, faces, CHUNK):
        ids = range(start + 1, min(faces, start + CHUNK) + 1)
        src = [rows[(i - 1) % len(rows)] for i in ids]
        with db.engine.begin() as conn:
            conn.execute(insert(Person), [
                {"pk": i, "account_id": account, "person_id": f"p{i}", "name": f"p{i}",
                 "gender": 0, "face_model_version": "2.0", "created_ms": now} for i in ids])
            conn.execute(insert(Membership), [
                {"group_pk": group_pk, "person_pk": i, "ex_descriptions": [], "created_ms": now}
                for i in ids])
            conn.execute(insert(Face), [
                {"pk": i, "account_id": account, "face_id": str(10**18 + i), "person_pk": i,
                 "face_model_version": "2.0", "x": 0, "y": 0, "width": 100, "height": 100,
                 "crop_image": r[0], "crop_landmarks": r[1], "quality": None, "created_ms": now}
                for i, r in zip(ids, src)])
            conn.execute(insert(FaceFeature), [
                {"face_pk": i, "model_version": "2.0", "vector": to_bytes(r[2]),
                 "created_ms": now} for i, r in zip(ids, src)])
    db.dispose()
    probes = []
    for _, _, _, person_dir in rows[:20]:
        others = sorted(person_dir.glob("*.jpg"))[1:]
        probes.append(others[0] if others else sorted(person_dir.glob("*.jpg"))[0])
    return "bench", probes


def _client(server: Server, secret_id: str, secret_key: str):
    from tencentcloud.common import credential
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=server.endpoint,
                                                    reqTimeout=120))
    client = CommonClient("iai", "2020-03-03", credential.Credential(secret_id, secret_key),
                          "ap-guangzhou", profile)
    return lambda action, **params: client.call_json(action, params)["Response"]


def _search(call, probe: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = call("SearchFaces", GroupIds=["bench"], Image=probe, MaxPersonNum=5)
    return (time.perf_counter() - started) * 1000, out["FaceModelVersion"]


def _pct(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(ms), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1)} if ms else {"n": 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench upgrade", description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=10_000, help="faces in the 2.0 group")
    ap.add_argument("--distinct", type=int, default=300, help="distinct real crops repeated")
    ap.add_argument("--share", type=float, default=0.5, help="OPENIAI_JOBS_SHARE of the server")
    ap.add_argument("--batch", type=int, default=16, help="OPENIAI_JOBS_BATCH of the server")
    ap.add_argument("--searches", type=int, default=50, help="timed searches before/after")
    ap.add_argument("--data-dir", help="keep the data here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="openiai-bench-upgrade-"))
    try:
        t0 = time.perf_counter()
        account, probe_paths = seed(data_dir, args.faces, args.distinct)
        print(f"seeded {args.faces:,} faces ({args.distinct} distinct crops) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        probes = [base64.b64encode(p.read_bytes()).decode() for p in probe_paths]
        server = Server(data_dir, extra_env={"OPENIAI_JOBS_SHARE": str(args.share),
                                             "OPENIAI_JOBS_BATCH": str(args.batch)})
        server.start(timeout=600, wait_ready=True)
        try:
            call = _client(server, *server.create_key("bench"))
            before = [_search(call, probes[i % len(probes)])[0] for i in range(args.searches)]
            job = call("UpgradeGroupFaceModelVersion", GroupId="bench",
                       FaceModelVersion="3.0")["JobId"]
            during, versions_seen, i, result = [], set(), 0, {}
            while True:
                ms, version = _search(call, probes[i % len(probes)])
                i += 1
                result = call("GetUpgradeGroupFaceModelVersionResult", JobId=job)
                if result["Status"] != 0:
                    break
                during.append(ms)
                versions_seen.add(version)
            after = [_search(call, probes[i % len(probes)]) for i in range(args.searches)]
        finally:
            server.stop()
        job_s = (result["EndTimestamp"] - result["StartTime"]) / 1000
        out = {
            "faces": args.faces, "share": args.share, "batch": args.batch,
            "status": result["Status"], "job_s": round(job_s, 1),
            "faces_per_s": round(args.faces / job_s, 1) if job_s > 0 else None,
            "search_before": _pct(before), "search_during": _pct(during),
            "search_after": _pct([ms for ms, _ in after]),
            "versions_during": sorted(versions_seen),
            "version_after": sorted({v for _, v in after}),
            "load": os.getloadavg(), "cpus": os.cpu_count(),
        }
        print(f"upgrade of {args.faces:,} faces 2.0 -> 3.0: status {result['Status']}, "
              f"{job_s:.1f} s, {out['faces_per_s']} faces/s (share {args.share}, batch "
              f"{args.batch})")
        for name in ("before", "during", "after"):
            s = out[f"search_{name}"]
            print(f"  SearchFaces {name:<6}: n={s['n']:<4} p50 {s.get('p50_ms')} ms  "
                  f"p99 {s.get('p99_ms')} ms")
        print(f"  versions answered during: {out['versions_during']}, after: "
              f"{out['version_after']}; load average at the end {out['load']}")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
        return 0 if result["Status"] == 1 else 1
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
