"""``openiai bench priority``: does a cheap request wait behind image work?

Starts ``openiai serve`` twice on one data directory (a gallery of LFW identities enrolled
once): first with ``OPENIAI_SEPARATE_POOLS=0`` (every action on the same handler threads: the
"before"), then with the default separate pools (metadata actions on threads of their own:
the "after"). In each, one client sends GetGroupList back to back, first on an idle server,
then while ``--clients`` threads (one SDK client each) send DetectFace and SearchPersons on
real LFW photos; the table gives GetGroupList p50/p99 as the client sees it, idle and under
load, and the image requests/s the load got.

Timings depend on the machine and on whatever else runs on it; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from openiai.bench.api import GROUP, Sdk, build_requests, enrol, pick_gallery
from openiai.bench.server import Server

MODES = (("before: one pool", "0"), ("after: separate pools", "1"))


def probe(sdk: Sdk, until, pause: float = 0.02) -> tuple[list[float], int]:
    """GetGroupList latencies (ms) sent one after the other while ``until()`` is False."""
    latencies, errors = [], 0
    while not until(len(latencies) + errors):
        t0 = time.perf_counter()
        try:
            sdk.call("GetGroupList")
            latencies.append((time.perf_counter() - t0) * 1000)
        except Exception:  # noqa: BLE001 - counted; the table says how many
            errors += 1
        time.sleep(pause)
    return latencies, errors


def image_load(factory, requests: dict[str, list], clients: int, stop: threading.Event,
               counts: list[int]) -> list[threading.Thread]:
    """``clients`` threads alternating DetectFace and SearchPersons until ``stop``."""
    actions = list(requests)

    def worker(i: int) -> None:
        sdk = factory()
        k = i
        while not stop.is_set():
            action = actions[k % len(actions)]
            _name, req = requests[action][k % len(requests[action])]
            k += 1
            try:
                sdk.send(action, req)
                counts[i] += 1
            except Exception:  # noqa: BLE001 - the load only has to be there
                pass

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    return threads


def measure(server: Server, key: tuple[str, str], gallery, args) -> dict:
    factory = lambda: Sdk(server.endpoint, *key)  # noqa: E731
    sdk = factory()
    idle, idle_errors = probe(sdk, lambda n: n >= args.idle_requests)
    requests = {a: build_requests(sdk, a, gallery) for a in ("DetectFace", "SearchPersons")}
    stop, counts = threading.Event(), [0] * args.clients
    threads = image_load(factory, requests, args.clients, stop, counts)
    time.sleep(args.ramp)  # every load thread has a request in flight
    started, before = time.perf_counter(), sum(counts)
    deadline = started + args.seconds
    loaded, load_errors = probe(sdk, lambda _n: time.perf_counter() >= deadline)
    image_rps = (sum(counts) - before) / (time.perf_counter() - started)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    pct = lambda v, q: float(np.percentile(v, q)) if v else float("nan")  # noqa: E731
    return {"idle_p50": pct(idle, 50), "idle_p99": pct(idle, 99), "idle_n": len(idle),
            "load_p50": pct(loaded, 50), "load_p99": pct(loaded, 99), "load_n": len(loaded),
            "errors": idle_errors + load_errors, "image_rps": image_rps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai bench priority", description=__doc__.split("\n\n")[0])
    ap.add_argument("--gallery", type=int, default=50, help="LFW identities enrolled (default 50)")
    ap.add_argument("--clients", type=int, default=16, help="image load threads (default 16)")
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="GetGroupList probing under load, per mode (default 15)")
    ap.add_argument("--idle-requests", type=int, default=200,
                    help="GetGroupList calls on the idle server, per mode (default 200)")
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds of load before probing")
    ap.add_argument("--data-dir", help="server data directory (default: a temporary one, removed)")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))  # the table stays readable in a log
    temp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="openiai-bench-priority-"))
    data_dir = Path(args.data_dir) if args.data_dir else temp
    load_before = os.getloadavg()[0]
    results = {}
    try:
        gallery = pick_gallery(args.gallery)
        for i, (label, flag) in enumerate(MODES):
            server = Server(data_dir, extra_env={"OPENIAI_SEPARATE_POOLS": flag})
            try:
                server.start(timeout=180, wait_ready=True)
                key = server.create_key("bench")
                if i == 0:
                    factory = lambda: Sdk(server.endpoint, *key)  # noqa: E731
                    n = enrol(factory, gallery, console)
                    console.print(f"enrolled {n} persons in group {GROUP}")
                results[label] = measure(server, key, gallery, args)
                r = results[label]
                console.print(f"{label}: idle p50 {r['idle_p50']:.1f} ms, under load p50 "
                              f"{r['load_p50']:.1f} ms, p99 {r['load_p99']:.1f} ms")
            finally:
                server.stop(timeout=30)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    table = Table(title=f"GetGroupList latency (ms, client side), idle and under {args.clients} "
                  f"threads of DetectFace/SearchPersons; {os.cpu_count()} CPUs, 1-min load "
                  f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    for col in ("mode", "idle p50", "idle p99", "load p50", "load p99", "probes idle/load",
                "errors", "image req/s"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for label, r in results.items():
        table.add_row(label, f"{r['idle_p50']:.1f}", f"{r['idle_p99']:.1f}",
                      f"{r['load_p50']:.1f}", f"{r['load_p99']:.1f}",
                      f"{r['idle_n']}/{r['load_n']}", str(r["errors"]), f"{r['image_rps']:.1f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
