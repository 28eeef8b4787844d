"""`openiai bench api`: metrics diffing, graceful skips, and a tiny end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys

from harness import REPO
from openiai.bench import api as bench

METRICS_BEFORE = """\
# HELP openiai_stage_seconds Time per stage of an API request.
# TYPE openiai_stage_seconds histogram
openiai_stage_seconds_bucket{action="DetectFace",stage="detect",le="+Inf"} 10.0
openiai_stage_seconds_count{action="DetectFace",stage="detect"} 10.0
openiai_stage_seconds_sum{action="DetectFace",stage="detect"} 0.05
openiai_stage_seconds_count{action="DetectFace",stage="decode"} 10.0
openiai_stage_seconds_sum{action="DetectFace",stage="decode"} 0.01
# TYPE openiai_request_duration_seconds histogram
openiai_request_duration_seconds_count{action="DetectFace"} 10.0
openiai_request_duration_seconds_sum{action="DetectFace"} 0.08
"""
METRICS_AFTER = METRICS_BEFORE.replace(
    'stage="detect"} 0.05', 'stage="detect"} 0.25').replace(
    'stage="decode"} 0.01', 'stage="decode"} 0.05').replace(
    'openiai_request_duration_seconds_count{action="DetectFace"} 10.0',
    'openiai_request_duration_seconds_count{action="DetectFace"} 50.0').replace(
    'openiai_request_duration_seconds_sum{action="DetectFace"} 0.08',
    'openiai_request_duration_seconds_sum{action="DetectFace"} 0.48')


def test_stage_split_from_two_scrapes():
    split = bench.stage_split(bench.parse_metrics(METRICS_BEFORE),
                              bench.parse_metrics(METRICS_AFTER), "DetectFace", 40)
    assert split["requests_seen"] == 40
    assert abs(split["detect"] - 0.005) < 1e-12  # 0.2 s over 40 requests
    assert abs(split["decode"] - 0.001) < 1e-12
    assert split["embed"] == 0.0 and split["search"] == 0.0
    assert abs(split["server"] - 0.01) < 1e-12
    assert abs(split["other"] - 0.004) < 1e-12


def test_no_metrics_endpoint_means_no_split():
    assert bench.stage_split(None, None, "DetectFace", 10) == {}
    assert bench.scrape("127.0.0.1:9") is None  # nothing listens there


def test_unsupported_action_is_skipped_with_a_message():
    class Unsupported(Exception):
        code = "UnsupportedOperation"

    class FakeSdk:
        def send(self, action, req):
            raise Unsupported("not yet")

    why = bench.probe_supported(FakeSdk(), "SearchPersons", [("x", object())])
    assert "UnsupportedOperation" in why


def test_bench_api_end_to_end_smoke(tmp_path):
    out_json = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "openiai.cli", "bench", "api", "--gallery", "6",
                          "--seconds", "0.5", "--clients", "1,2", "--json", str(out_json)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "req/s" in run.stdout
    result = json.loads(out_json.read_text())
    done = {(c["action"], c["clients"]) for c in result["cells"]}
    for action in bench.ACTIONS:
        if action in result["skipped"]:
            assert "UnsupportedOperation" in result["skipped"][action]
            continue
        assert {(action, 1), (action, 2)} <= done
    has_metrics = "no /metrics endpoint" not in run.stdout
    for cell in result["cells"]:
        assert cell["ok"] > 0 and not cell["errors"], cell
        assert bool(cell["stages"]) == has_metrics, cell


def test_rate_ratios_pair_each_mode_with_the_first_in_the_same_round():
    cell = lambda mode, rnd, rps: dict(action="CompareFace", clients=4, inference=mode,  # noqa: E731
                                       round=rnd, rps=rps, processes=1)
    cells = [cell("float", 1, 40.0), cell("int8", 1, 48.0), cell("float", 2, 20.0),
             cell("int8", 2, 30.0)]
    ratio = bench.rate_ratios(cells, ["float", "int8"])[("CompareFace", 4, "int8")]
    assert abs(ratio - (1.2 * 1.5) ** 0.5) < 1e-9  # round by round, not pooled rates


def test_bench_api_compares_inference_modes_in_one_run(tmp_path):
    out_json = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "openiai.cli", "bench", "api", "--gallery", "4",
                          "--seconds", "0.5", "--clients", "1", "--actions", "CompareFace",
                          "--inference", "float,int8", "--json", str(out_json)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "OPENIAI_INFERENCE=float" in run.stdout and "OPENIAI_INFERENCE=int8" in run.stdout
    assert "requests/s int8 / float" in run.stdout
    cells = json.loads(out_json.read_text())["cells"]
    assert sorted(c["inference"] for c in cells) == ["float", "int8"]
    assert all(c["ok"] > 0 and not c["errors"] for c in cells)
