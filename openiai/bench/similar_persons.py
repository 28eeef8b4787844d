"""``openiai eval similar-persons``: CheckSimilarPerson on an LFW gallery with planted duplicates.

The gallery: ``--persons`` (4,000) persons in two groups. ``--duplicates`` (300) LFW identities
with at least two photos are each enrolled twice, under two PersonIds with different photos
(the planted duplicates); every other person is a different LFW identity with one photo (LFW's
name aliases merged, so no identity is enrolled twice by accident). Persons go to the two
groups at random, so a planted pair is sometimes inside one group, sometimes across both, and
the check covers both groups.

Enrolment is CreatePerson through the API's dispatch on in-process Services (the HTTP server's
validation, pipeline, database and vector index, minus the wire), into a SQLite database under
``--data-dir``; a second run on the same directory reuses it. Then the check runs at each
UniquePersonControl, in this thread (the job's steps without the runner's throttling), and
prints, against the planted pairs: pairs found, precision, recall, the job time, and the
estimate EstimateCheckSimilarPersonCostTime would have given.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..core.settings import Settings
from . import evaluate

VERSION = "2020-03-03"
GROUPS = ("dupes-a", "dupes-b")


def build_gallery(persons: int, duplicates: int, seed: int) -> list[tuple[str, str, Path, str]]:
    """(PersonId, identity, photo, GroupId) rows: ``duplicates`` identities twice, the rest once."""
    paths = evaluate.all_images(evaluate.lfw_dir())
    ids = evaluate.merge_aliases(paths)
    by_id: dict[int, list[Path]] = {}
    for p, i in zip(paths, ids):
        by_id.setdefault(int(i), []).append(p)
    rng = random.Random(seed)
    multi = sorted(i for i, ps in by_id.items() if len(ps) >= 2)
    single_pool = sorted(by_id)
    rng.shuffle(multi)
    dup = multi[:duplicates]
    rest = [i for i in single_pool if i not in set(dup)]
    rng.shuffle(rest)
    others = rest[:persons - 2 * duplicates]
    if len(others) < persons - 2 * duplicates:
        raise SystemExit(f"LFW has too few identities for {persons} persons")
    rows = []
    for i in dup:
        a, b = rng.sample(by_id[i], 2)
        rows.append((f"d{i}a", str(i), a, rng.choice(GROUPS)))
        rows.append((f"d{i}b", str(i), b, rng.choice(GROUPS)))
    for i in others:
        rows.append((f"s{i}", str(i), rng.choice(by_id[i]), rng.choice(GROUPS)))
    rng.shuffle(rows)  # creation order mixes duplicates and the rest
    return rows


def enrol(services, account_id: int, rows, workers: int) -> dict[str, str]:
    """CreatePerson for each row; {PersonId: identity} of those enrolled."""
    import base64

    from ..api.dispatch import dispatch
    from ..core.errors import ApiError

    for gid in GROUPS:
        try:
            dispatch(services, account_id, VERSION, "CreateGroup",
                     {"GroupId": gid, "GroupName": gid, "FaceModelVersion": "3.0"})
        except ApiError as exc:
            if exc.code != "InvalidParameterValue.GroupIdAlreadyExist":
                raise

    def one(row) -> tuple[str, str] | None:
        pid, ident, path, gid = row
        try:
            dispatch(services, account_id, VERSION, "CreatePerson",
                     {"GroupId": gid, "PersonId": pid, "PersonName": pid,
                      "Image": base64.b64encode(path.read_bytes()).decode()})
        except ApiError as exc:
            if exc.code != "InvalidParameterValue.PersonIdAlreadyExist":
                return None
        return pid, ident

    out: dict[str, str] = {}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for n, got in enumerate(pool.map(one, rows), 1):
            if got:
                out[got[0]] = got[1]
            if n % 500 == 0:
                print(f"  enrolled {n}/{len(rows)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"enrolment: {len(out)} of {len(rows)} persons in {time.perf_counter() - t0:.0f} s")
    return out


def planted(enrolled: dict[str, str]) -> set[frozenset]:
    by_ident: dict[str, list[str]] = {}
    for pid, ident in enrolled.items():
        by_ident.setdefault(ident, []).append(pid)
    return {frozenset(p) for p in by_ident.values() if len(p) == 2}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai eval similar-persons", description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=4000)
    ap.add_argument("--duplicates", type=int, default=300, help="planted duplicate identities")
    ap.add_argument("--workers", type=int, default=2, help="enrolment threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="keep the enrolled database here (reused by the next run); default: a "
                         "temporary directory, removed afterwards")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    from ..api.dispatch import dispatch
    from ..services import Services
    from ..services import similar_persons as sp
    from ..store.repo import find_group

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="openiai-dupes-"))
    settings = Settings.from_env(data_dir=data_dir)
    settings.database_url = None
    services = Services(settings)
    try:
        account_id = services.keys.ensure_account("eval-similar-persons")
        rows = build_gallery(args.persons, args.duplicates, args.seed)
        manifest = data_dir / "similar_persons_gallery.json"
        if manifest.is_file():
            enrolled = json.loads(manifest.read_text())
            print(f"reusing the gallery in {data_dir}: {len(enrolled)} persons")
        else:
            enrolled = enrol(services, account_id, rows, args.workers)
            manifest.write_text(json.dumps(enrolled))
        truth = planted(enrolled)
        with services.db.read() as s:
            groups = {find_group(s, account_id, g).pk: g for g in GROUPS}
        report = {"persons": len(enrolled), "planted_pairs": len(truth),
                  "load_before": os.getloadavg()}
        print(f"gallery: {len(enrolled)} persons, {len(truth)} planted duplicate pairs, "
              f"groups {', '.join(GROUPS)}; load {report['load_before'][0]:.1f}")
        per_person = sp.measure_search_seconds(services.db, services.index, account_id, "3.0",
                                               groups, sample=256)
        report["search_ms_per_person"] = per_person * 1000
        t0 = time.perf_counter()
        gallery = sp.snapshot(services.db, account_id, groups, "3.0")
        report["snapshot_seconds"] = snap = time.perf_counter() - t0
        estimate = dispatch(services, account_id, VERSION, "EstimateCheckSimilarPersonCostTime",
                            {"GroupIds": list(GROUPS)})["EstimatedTimeCost"]
        report["estimated_minutes"] = estimate
        unthrottled = len(gallery) * (per_person + sp.SNAPSHOT_SECONDS_PER_PERSON
                                      + sp.STEP_SECONDS / sp.BATCH)
        report["estimated_seconds_unthrottled"] = unthrottled
        print(f"measured: search {per_person * 1000:.3f} ms/person, snapshot {snap:.2f} s "
              f"({snap / max(1, len(gallery)) * 1e6:.0f} us/person) -> EstimatedTimeCost "
              f"{estimate} min at the runner's share {services.jobs.share:g} "
              f"({unthrottled:.1f} s of work unthrottled)")
        for strength in (1, 2):
            # The action and the job runner's steps as the server runs them, in this thread
            # and unthrottled (the server's runner sleeps between steps to keep its share).
            t0 = time.perf_counter()
            job_id = dispatch(services, account_id, VERSION, "CheckSimilarPerson",
                              {"GroupIds": list(GROUPS), "UniquePersonControl": strength})["JobId"]
            services.jobs.run_until_idle(timeout=3600)
            elapsed = time.perf_counter() - t0
            out = dispatch(services, account_id, VERSION, "GetSimilarPersonResult",
                           {"JobId": job_id})
            assert out["Progress"] == 100.0, out
            token = out["SimilarPersonsUrl"].rsplit("/", 1)[1]
            result = json.loads(services.links.open(token).read_text())
            found = {frozenset((r["PersonId"], r["SimilarPersonId"])) for r in result}
            tp = len(found & truth)
            precision = tp / len(found) if found else 1.0
            recall = tp / len(truth) if truth else 1.0
            n = len(gallery)
            far = sp.STRENGTH_FAR[strength]
            expected_false = far * n * (n - 1) / 2
            figures = {"strength": strength, "far": far,
                       "threshold_score": round(sp.threshold_score(strength, "3.0"), 2),
                       "pairs": len(found), "true_pairs": tp, "precision": precision,
                       "recall": recall, "false_pairs": len(found) - tp,
                       "expected_false_pairs": expected_false, "job_seconds": elapsed}
            report[f"strength_{strength}"] = figures
            print(f"UniquePersonControl {strength} (FAR {far:g}, score >= "
                  f"{figures['threshold_score']}): {len(found)} pairs, {tp} planted; precision "
                  f"{precision:.3f}, recall {recall:.3f}; false pairs {len(found) - tp} "
                  f"(FAR x pairs = {expected_false:.0f}); job {elapsed:.1f} s")
        report["load_after"] = os.getloadavg()
        print(f"load (1/5/15 min) after: {' '.join(f'{x:.1f}' for x in report['load_after'])}")
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=float))
    finally:
        services.close()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
