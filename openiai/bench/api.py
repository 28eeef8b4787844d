"""``openiai bench api``: the whole server, end to end, through the official Python SDK.

Starts ``openiai serve`` in a subprocess on a fresh data directory, creates a key with the
``openiai keys`` command, enrols a gallery of LFW identities (people with at least two images:
the first image enrolled through CreatePerson, the second kept as a probe), then drives
DetectFace, CompareFace and SearchPersons with 1, 4 and 16 concurrent SDK clients (one thread
and one ``IaiClient`` each) for ``--seconds`` per cell and prints requests/s, p50/p99 latency
as the client sees it, and the server's own time per stage (decode, detect, embed, search,
serialise), from the difference of two scrapes of ``GET /metrics``
(``openiai_stage_seconds{action,stage}`` sums, per request counted by
``openiai_request_duration_seconds{action}``).

``--inference float,int8`` compares the recognizer's arithmetic in one run: a server per value,
one after the other, the sequence repeated ``--rounds`` times so that the servers alternate; the
table gets an inference column and the run ends with each value's requests/s against the
first's.

An action the server does not implement yet (``UnsupportedOperation``) is skipped with a
message; a server without ``/metrics`` gets the table without the stage columns.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from openiai.bench.lfw import lfw_images_dir
from openiai.bench.server import Server

STAGES = ("decode", "detect", "embed", "search", "serialise")
ACTIONS = ("DetectFace", "CompareFace", "SearchPersons")
GROUP = "bench"


# ------------------------------------------------------------------------------ http
def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    import httpx

    r = httpx.get(url, timeout=timeout)
    return r.status_code, r.content


# ------------------------------------------------------------------------------ metrics
def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label items): value} of a Prometheus text exposition."""
    out: dict[tuple[str, tuple], float] = {}
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # a minimal reader for `name{a="b",...} value` lines
        import re

        line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
        label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            m = line_re.match(line)
            if m:
                labels = tuple(sorted(label_re.findall(m.group(3) or "")))
                out[(m.group(1), labels)] = float(m.group(4))
        return out
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def scrape(endpoint: str) -> dict | None:
    """The server's metrics, or None where it has no /metrics endpoint."""
    try:
        status, body = http_get(f"http://{endpoint}/metrics", 10)
    except Exception:
        return None
    if status != 200:
        return None
    try:
        return parse_metrics(body.decode("utf-8"))
    except Exception:
        return None


def stage_split(before: dict | None, after: dict | None, action: str, client_requests: int) -> dict:
    """Mean server seconds per request of `action` for each stage, plus the server's own mean
    latency, from two scrapes; {} when there are no metrics."""
    if before is None or after is None:
        return {}

    def delta(name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    n = delta("openiai_request_duration_seconds_count", action=action) or client_requests
    if not n:
        return {}
    out = {stage: delta("openiai_stage_seconds_sum", action=action, stage=stage) / n
           for stage in STAGES}
    total = delta("openiai_request_duration_seconds_sum", action=action)
    if total:
        out["server"] = total / n
        # Server time outside the stages: authentication, parsing, waiting for a handler thread.
        out["other"] = max(0.0, out["server"] - sum(out[s] for s in STAGES))
    out["requests_seen"] = n
    return out


# ------------------------------------------------------------------------------ SDK
class Sdk:
    def __init__(self, endpoint: str, secret_id: str, secret_key: str) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.iai.v20200303 import iai_client, models

        self.models = models
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint,
                                                        reqTimeout=120))
        self.client = iai_client.IaiClient(credential.Credential(secret_id, secret_key),
                                           "ap-guangzhou", profile)

    def request(self, action: str, **params):
        req = getattr(self.models, f"{action}Request")()
        req.from_json_string(json.dumps(params))
        return req

    def send(self, action: str, req):
        return getattr(self.client, action)(req)

    def call(self, action: str, **params) -> dict:
        return json.loads(self.send(action, self.request(action, **params)).to_json_string())


def sdk_error_code(exc: BaseException) -> str:
    return getattr(exc, "code", None) or type(exc).__name__


# ------------------------------------------------------------------------------ data
def pick_gallery(n: int) -> list[tuple[str, str, str]]:
    """(person, enrolled image b64, probe image b64) for the first n LFW people with >= 2 images."""
    root = lfw_images_dir()
    if not root.is_dir():
        raise SystemExit(f"LFW images not found at {root}; set OPENIAI_TESTDATA")
    people = []
    for d in sorted(root.iterdir()):
        imgs = sorted(d.glob("*.jpg"))
        if len(imgs) >= 2:
            people.append((d.name, imgs[0], imgs[1]))
        if len(people) == n:
            break
    enc = lambda p: base64.b64encode(p.read_bytes()).decode("ascii")  # noqa: E731
    return [(name, enc(a), enc(b)) for name, a, b in people]


def enrol(sdk_factory, gallery, console, workers: int = 4) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    sdk = sdk_factory()
    sdk.call("CreateGroup", GroupId=GROUP, GroupName="bench gallery")
    local = threading.local()
    failed = []

    def one(item):
        name, image, _ = item
        if not hasattr(local, "sdk"):
            local.sdk = sdk_factory()
        try:
            local.sdk.call("CreatePerson", GroupId=GROUP, PersonId=name,
                           PersonName=name[:60], Image=image)
        except TencentCloudSDKException as exc:
            failed.append((name, exc.code))

    with Progress(TextColumn("enrolling gallery"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console) as bar, \
            ThreadPoolExecutor(workers) as pool:
        task = bar.add_task("", total=len(gallery))
        for _ in pool.map(one, gallery):
            bar.advance(task)
    if failed:
        console.print(f"{len(failed)} gallery images not enrolled (e.g. {failed[:3]})")
    return len(gallery) - len(failed)


def build_requests(sdk, action: str, gallery) -> list:
    """Prepared SDK request objects for an action, one per gallery person (reused in turn)."""
    out = []
    for name, enrolled, probe in gallery:
        if action == "DetectFace":
            out.append((name, sdk.request(action, Image=probe)))
        elif action == "CompareFace":
            out.append((name, sdk.request(action, ImageA=enrolled, ImageB=probe)))
        elif action == "SearchPersons":
            out.append((name, sdk.request(action, GroupIds=[GROUP], Image=probe, MaxPersonNum=1)))
        else:
            raise ValueError(action)
    return out


# ------------------------------------------------------------------------------ the load
def drive(sdk_factory, action: str, requests: list, clients: int, seconds: float) -> dict:
    """`clients` threads, each with its own SDK client, sending requests for `seconds`."""
    start_gate = threading.Barrier(clients + 1)
    results: list[list] = [[] for _ in range(clients)]  # (latency s, ok, top1 hit or None)
    errors: dict[str, int] = {}
    lock = threading.Lock()
    deadline = [0.0]

    def worker(i: int) -> None:
        sdk = sdk_factory()
        k = i * max(1, len(requests) // clients)
        start_gate.wait()
        while time.perf_counter() < deadline[0]:
            name, req = requests[k % len(requests)]
            k += 1
            t0 = time.perf_counter()
            try:
                resp = sdk.send(action, req)
                ok, hit = True, None
                if action == "SearchPersons":
                    res = getattr(resp, "Results", None) or []
                    cands = (res[0].Candidates or []) if res else []
                    hit = bool(cands) and cands[0].PersonId == name
            except Exception as exc:  # noqa: BLE001 - every failure is counted by its code
                ok, hit = False, None
                code = sdk_error_code(exc)
                with lock:
                    errors[code] = errors.get(code, 0) + 1
            results[i].append((time.perf_counter() - t0, ok, hit))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    start_gate.wait()
    t_start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    rows = [r for rs in results for r in rs]
    lat = np.array([r[0] for r in rows if r[1]]) * 1000
    hits = [r[2] for r in rows if r[2] is not None]
    return {
        "requests": len(rows), "ok": int(len(lat)), "errors": errors, "seconds": elapsed,
        "rps": len(lat) / elapsed if elapsed else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "mean_ms": float(lat.mean()) if len(lat) else None,
        "top1": (sum(hits) / len(hits)) if hits else None,
    }


def probe_supported(sdk, action: str, requests: list) -> str | None:
    """None if the action works, else why it is skipped."""
    try:
        sdk.send(action, requests[0][1])
        return None
    except Exception as exc:  # noqa: BLE001
        code = sdk_error_code(exc)
        if code == "UnsupportedOperation":
            return "the server answers UnsupportedOperation (not implemented in this build)"
        return f"the first request failed: {code}: {getattr(exc, 'message', exc)}"


# ------------------------------------------------------------------------------ main
def _fmt(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(console, cells: list[dict], with_stages: bool, cpu: int, load: str = "") -> None:
    from rich.table import Table

    t = Table(title=f"openiai API through the Python SDK ({cpu} CPU cores, client and server "
                    f"on the same machine{load})",
              caption="req/s and p50/p99: client side, successful requests; stage columns: "
                      "server time per request (ms) from /metrics; other = server time outside "
                      "the stages (auth, parsing, waiting for a handler thread)")
    by_inference = any(c.get("inference") for c in cells)
    for col in ("action", *(("inference", "round") if by_inference else ()), "processes",
                "clients", "requests", "req/s", "p50 ms", "p99 ms", "errors"):
        t.add_column(col, justify="left" if col in ("action", "inference") else "right")
    if with_stages:
        for s in (*STAGES, "other", "server"):
            t.add_column(f"{s} ms", justify="right")
    for c in cells:
        errs = ", ".join(f"{k}×{v}" for k, v in c["errors"].items()) or "0"
        row = [c["action"], *((c.get("inference") or "-", str(c.get("round", 1)))
                              if by_inference else ()),
               str(c.get("processes", 1)), str(c["clients"]), str(c["requests"]), _fmt(c["rps"]),
               _fmt(c["p50_ms"]), _fmt(c["p99_ms"]), errs]
        if with_stages:
            st = c.get("stages") or {}
            row += [_fmt(st[s] * 1000 if s in st else None, ".2f") for s in (*STAGES, "other", "server")]
        t.add_row(*row)
    # The table is wide: never fold it to 80 columns when the output is a file or a pipe.
    wide = console.__class__(width=max(console.width, 200), file=console.file)
    wide.print(t)


def rate_ratios(cells: list[dict], modes: list[str]) -> dict[tuple[str, int, str], float]:
    """(action, clients, mode) -> geometric mean over rounds of mode's requests/s over the
    first mode's in the same round (one process count: the first)."""
    procs = cells[0].get("processes", 1) if cells else 1
    rate = {(c["action"], c["clients"], c["inference"], c["round"]): c["rps"] for c in cells
            if c.get("processes", 1) == procs}
    logs: dict[tuple[str, int, str], list[float]] = {}
    for (action, clients, mode, rnd), rps in rate.items():
        base = rate.get((action, clients, modes[0], rnd))
        if mode != modes[0] and base and rps > 0:
            logs.setdefault((action, clients, mode), []).append(float(np.log(rps / base)))
    return {k: float(np.exp(np.mean(v))) for k, v in logs.items()}


def print_ratios(console, cells: list[dict], modes: list[str]) -> None:
    for (action, clients, mode), ratio in sorted(rate_ratios(cells, modes).items()):
        console.print(f"{action} x{clients}: requests/s {mode} / {modes[0]} = {ratio:.2f} "
                      "(geometric mean over rounds)")


def run_server(args, data_dir: Path, procs: int, gallery, actions, clients, skipped: dict,
               console, inference: str | None = None) -> list[dict]:
    """One server (``--workers procs``, ``OPENIAI_INFERENCE=inference`` when given) on
    ``args.database_url`` (default: SQLite in its data directory, whatever OPENIAI_DATABASE_URL
    says: the benchmark measures a server on a database of its own), a gallery enrolled in an
    account of its own, and every cell."""
    server = Server(data_dir, database_url=args.database_url, port=args.port,
                    extra_env={"OPENIAI_INFERENCE": inference} if inference else None)
    if procs > 1:
        server.serve_args = ["--workers", str(procs)]
    cells = []
    try:
        t0 = time.perf_counter()
        server.start(timeout=120, wait_ready=True)  # time requests, not model loading
        console.print(f"server ({procs} process{'es' if procs > 1 else ''}"
                      f"{f', OPENIAI_INFERENCE={inference}' if inference else ''}) on "
                      f"{server.endpoint} (data {data_dir}), up in {time.perf_counter() - t0:.1f} s")
        account = f"bench-{procs}-{os.getpid()}-{int(time.time())}"
        key = json.loads(server.cli("keys", "create", "--account", account, "--create", "--json"))
        factory = lambda: Sdk(server.endpoint, key["SecretId"], key["SecretKey"])  # noqa: E731
        t0 = time.perf_counter()
        enrolled = enrol(factory, gallery, console)
        console.print(f"enrolled {enrolled} persons in {time.perf_counter() - t0:.1f} s")
        has_metrics = scrape(server.endpoint) is not None and procs == 1  # per-process counters
        sdk = factory()
        for n_procs_warm in range(procs):  # every worker has loaded its models
            sdk.call("DetectFace", Image=gallery[n_procs_warm % len(gallery)][2])
        for action in actions:
            reqs = build_requests(sdk, action, gallery)
            why = probe_supported(sdk, action, reqs)
            if why:
                skipped[action] = why
                console.print(f"[yellow]{action}: skipped: {why}[/yellow]")
                continue
            for n in clients:
                before = scrape(server.endpoint) if has_metrics else None
                cell = drive(factory, action, reqs, n, args.seconds)
                after = scrape(server.endpoint) if has_metrics else None
                cell.update(action=action, clients=n,
                            stages=stage_split(before, after, action, cell["requests"]))
                cells.append(cell)
                extra = f", top-1 {cell['top1']:.1%}" if cell["top1"] is not None else ""
                console.print(f"  {action} x{n} ({procs} proc): {cell['rps']:.1f} req/s, p50 "
                              f"{_fmt(cell['p50_ms'])} ms, p99 {_fmt(cell['p99_ms'])} ms{extra}")
    finally:
        server.stop(timeout=30)
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench api", description=__doc__.split("\n\n")[0])
    ap.add_argument("--gallery", type=int, default=300,
                    help="LFW identities enrolled (people with 2+ images; default 300)")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each cell (default 10)")
    ap.add_argument("--clients", default="1,4,16", help="concurrent SDK clients, comma-separated")
    ap.add_argument("--actions", default=",".join(ACTIONS), help="comma-separated actions")
    ap.add_argument("--data-dir", help="server data directory (default: a temporary one, removed)")
    ap.add_argument("--port", type=int, help="server port (default: a free one)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--database-url", help="run the server on this database (PostgreSQL for "
                    "--processes above 1); default SQLite in the data directory")
    ap.add_argument("--processes", default="1",
                    help="server processes (`serve --workers`), comma-separated: e.g. 1,2")
    ap.add_argument("--inference", default="",
                    help="recognizer arithmetic of the server (OPENIAI_INFERENCE), comma-separated "
                         "to compare in one run: e.g. float,int8 (default: the environment's)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the whole sequence this many times, so the compared servers "
                         "alternate and a busy machine slows each alike (default 1)")
    args = ap.parse_args(argv)

    from rich.console import Console

    console = Console()
    try:
        import tencentcloud.iai.v20200303  # noqa: F401
    except ImportError:
        console.print("[red]tencentcloud-sdk-python-iai is not installed[/red]: "
                      "pip install -e '.[test]' (or tencentcloud-sdk-python-iai)")
        return 2
    clients = [int(x) for x in args.clients.split(",") if x.strip()]
    actions = [a.strip() for a in args.actions.split(",") if a.strip()]
    unknown = set(actions) - set(ACTIONS)
    if unknown:
        ap.error(f"unknown action(s): {', '.join(sorted(unknown))}; choose from {', '.join(ACTIONS)}")
    modes = [m.strip() for m in args.inference.split(",") if m.strip()] or [None]
    if set(modes) - {None, "auto", "float", "int8"}:
        ap.error(f"--inference {args.inference}: expected auto, float or int8 (comma-separated)")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    temp = None
    if args.data_dir:
        data_dir = Path(args.data_dir)
    else:
        temp = Path(tempfile.mkdtemp(prefix="openiai-bench-api-"))
        data_dir = temp
    cells, skipped = [], {}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    gallery = pick_gallery(args.gallery)
    try:
        for rnd in range(1, args.rounds + 1):
            for procs in [int(x) for x in args.processes.split(",") if x.strip()]:
                for mode in modes:
                    run_dir = data_dir / f"p{procs}-{mode or 'env'}-r{rnd}"
                    run_cells = run_server(args, run_dir, procs, gallery, actions, clients,
                                           skipped, console, mode)
                    for cell in run_cells:
                        cell.update(processes=procs, inference=mode, round=rnd)
                    cells.extend(run_cells)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    load = ""
    if hasattr(os, "getloadavg"):
        load = f"; 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    if cells:
        print_table(console, cells, any(c["stages"] for c in cells), os.cpu_count() or 0, load)
    if len(modes) > 1:
        print_ratios(console, cells, modes)
    for action, why in skipped.items():
        console.print(f"{action}: skipped ({why})")
    if args.json:
        Path(args.json).write_text(json.dumps({"gallery": args.gallery, "seconds": args.seconds,
                                               "inference": modes, "rounds": args.rounds,
                                               "cells": cells, "skipped": skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
