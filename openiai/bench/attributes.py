"""``openiai eval attributes``: every face attribute's measured accuracy against its floor.

Each evaluation runs the server's own code (the same models, heads and rules DetectFace and
DetectFaceAttributes use) on the shared labelled sets (``$OPENIAI_TESTDATA/attributes``,
``dlib/faces``), scoring only what training never saw: held-out CelebA-HQ identities, the
UTKFace / mask test split, FER2013 PublicTest, the eye crops and dlib's labelled faces. The
floors are issue 10's acceptance figures. Exit status 1 when a figure misses its floor.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
from pathlib import Path

from ..core.settings import Settings

# (name for --only, module, function): each function(testdata, limit) -> list of rows
# {"attribute", "set", "metric", "value", "floor", "higher_is_better", "n"}.
EVALUATIONS = (
    ("celeba", "openiai.bench.celeba", "evaluate_celeba"),
    ("smile_mouth", "openiai.bench.smile_mouth", "evaluate_smile_mouth"),
    ("demographics", "openiai.bench.demographics", "evaluate_demographics"),
    ("expression", "openiai.bench.expression", "evaluate_expression"),
    ("mask", "openiai.bench.masks", "evaluate_masks"),
    ("landmarks", "openiai.bench.landmarks", "evaluate_landmarks"),
    ("eyes", "openiai.bench.landmarks", "evaluate_eye_state"),
    ("mesh_rules", "openiai.bench.landmarks", "evaluate_mesh_rules"),
)


def passes(row: dict) -> bool | None:
    floor = row.get("floor")
    if floor is None:
        return None
    return row["value"] >= floor if row.get("higher_is_better", True) else row["value"] <= floor


def run(testdata: Path, only: set[str] | None = None, limit: int | None = None) -> list[dict]:
    rows: list[dict] = []
    for name, module, func in EVALUATIONS:
        if only and name not in only:
            continue
        started = time.perf_counter()
        fn = getattr(importlib.import_module(module), func)
        kwargs = {"limit": limit} if "limit" in inspect.signature(fn).parameters else {}
        for row in fn(testdata, **kwargs):
            rows.append(dict(row, evaluation=name, passes=passes(row),
                             seconds=round(time.perf_counter() - started, 1)))
    return rows


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Face attributes on the shared labelled sets (held-out parts)")
    for col in ("attribute", "set", "metric", "value", "floor", "ok", "n"):
        table.add_column(col, justify="right" if col in ("value", "floor", "n") else "left")
    for r in rows:
        ok = {True: "yes", False: "NO", None: "-"}[r["passes"]]
        floor = "-" if r.get("floor") is None else (
            f"{'>=' if r.get('higher_is_better', True) else '<='} {r['floor']:g}")
        table.add_row(r["attribute"], r["set"], r["metric"], f"{r['value']:.4g}", floor, ok,
                      str(r["n"]))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="openiai eval attributes",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--testdata", type=Path, default=None,
                    help="shared faces folder (default $OPENIAI_TESTDATA)")
    ap.add_argument("--only", action="append", choices=[e[0] for e in EVALUATIONS],
                    help="run only these evaluations (repeatable)")
    ap.add_argument("--limit", type=int, default=None,
                    help="at most this many images per set (a quick look, not the figure)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    testdata = args.testdata or Settings.from_env().testdata_dir
    rows = run(testdata, set(args.only or ()), args.limit)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(r["passes"] is False for r in rows) else 0
