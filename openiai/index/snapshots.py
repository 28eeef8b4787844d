"""Atomic snapshot directories: what survives a crash at any moment of a write is either the
previous snapshot or the new one, never a mix.

Layout under the snapshot root::

    snap-<seq>-<ns>/      the files an engine wrote + meta.json ({"format", "seq", ...})
    CURRENT               the name of the newest complete snapshot directory

A snapshot is written into ``.tmp-snap-...``, every file and the directory are fsynced, the
directory is renamed into place, and only then does ``CURRENT`` (written aside, fsynced,
renamed over) name it. Older snapshots beyond ``keep`` and temporary directories left by a
crash are removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

FORMAT = 2  # 2: each collection records its own dimension (1: one dimension for all)
READABLE = (1, 2)
CURRENT = "CURRENT"
META = "meta.json"


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse to fsync a directory; the rename still orders
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def write(root, seq: int, fill: Callable[[Path], dict], keep: int = 2) -> Path:
    """Make a new current snapshot: `fill(directory)` writes its files there and returns the
    metadata to record beside ``format`` and ``seq``. Returns the snapshot's directory."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"snap-{int(seq):012d}-{time.time_ns()}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    meta = {"format": FORMAT, "seq": int(seq), **fill(tmp)}
    (tmp / META).write_text(json.dumps(meta))
    for f in tmp.iterdir():
        fsync_file(f)
    fsync_dir(tmp)
    final = root / name
    os.rename(tmp, final)
    cur_tmp = root / f".{CURRENT}.tmp"
    cur_tmp.write_text(name)
    fsync_file(cur_tmp)
    os.replace(cur_tmp, root / CURRENT)
    fsync_dir(root)
    _prune(root, keep, current=final, writing=tmp)
    return final


def _prune(root: Path, keep: int, current: Path, writing: Path) -> None:
    snaps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("snap-"))
    for old in snaps[:-keep] if keep > 0 else []:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-snap-*"):  # a crash mid-write left it behind
        if stale != writing:
            shutil.rmtree(stale, ignore_errors=True)


def current(root) -> tuple[Path, dict] | None:
    """The directory and metadata of the snapshot ``CURRENT`` names; None when there is none.

    Raises ValueError for a snapshot in a format this code cannot read."""
    root = Path(root)
    cur = root / CURRENT
    if not cur.is_file():
        return None
    snap = root / cur.read_text().strip()
    meta = json.loads((snap / META).read_text())
    if meta.get("format") not in READABLE:
        raise ValueError(f"snapshot {snap} has format {meta.get('format')!r}; readable: {READABLE}")
    return snap, meta
