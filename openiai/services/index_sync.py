"""Keeps a vector index (:class:`openiai.index.engine.VectorIndex`) equal to the database.

The database is the source of truth; the index is derived from it in one of two ways:

* start-up: load the newest snapshot from ``data/index`` and replay the change log
  (``index_changes``) after the snapshot's seq; with no usable snapshot (none yet, another
  database, a pruned log, a damaged file) rebuild everything from the tables. An engine that
  persists by itself (``index.persistent``) has no local snapshots: the log is replayed after
  the seq it reports, and it is rebuilt when that seq does not fit the log;
* running: each committed write hands its changes over (``Database.on_commit``, still under
  the writer lock, so they arrive in seq order); a gap in the sequence (a write by another
  process, such as ``openiai import``) is filled by reading the log. A background thread also
  polls the log once a second, writes a snapshot when enough has changed, and prunes the log
  behind the snapshot (behind the engine's own seq for a persistent engine).

After a SIGKILL at any moment a restart therefore sees every committed change (they are in the
log or in the tables) and nothing that was rolled back.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select

from ..core import versions
from ..core.changes import Change
from ..core.clock import now_ms
from ..core.features import from_bytes, fuse_runs
from ..index.engine import VectorIndex
from ..store.changes import as_change
from ..store.db import Database
from ..store.face_features import face_vectors
from ..store.schema import IndexChange, IndexState, Membership, Person

log = logging.getLogger("openiai.index")

CATCH_UP_BATCH = 5000
DATABASE_ID_FILE = "DATABASE_ID"


class IndexSync:
    """Feeds `index` from `db`. `snapshot_dir` is given to the one process that owns the index
    state (the server): it writes the snapshots there (none for a persistent engine) and prunes
    the log; None for other processes on the same database, which only read the log."""

    def __init__(self, db: Database, index: VectorIndex, snapshot_dir: Path | None, *,
                 snapshot_changes: int = 20_000, snapshot_seconds: float = 300.0,
                 prune_after_seconds: float = 600.0, poll_seconds: float = 0.5,
                 writer: bool = True) -> None:
        self.db = db
        self.index = index
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else None
        self.snapshot_changes = snapshot_changes
        self.snapshot_seconds = snapshot_seconds
        self.prune_after_ms = int(prune_after_seconds * 1000)
        self.poll_seconds = poll_seconds
        # False for the second and later worker of `openiai serve --workers N`: they load the
        # snapshots under snapshot_dir but leave writing them and pruning the log to worker 0.
        self.writer = writer
        self._lock = threading.RLock()  # apply / catch-up / rebuild, one at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._snap_seq = 0
        self._snap_time = time.monotonic()
        self.database_id = ""
        self.ready = False

    # ---------------------------------------------------------------- start / stop
    def start(self, background: bool = True) -> dict:
        """Bring the index up to date with the database; returns how (for the log)."""
        started = time.perf_counter()
        self.database_id = self._database_id()
        how = "resume" if self.index.persistent else "snapshot"
        if self.index.persistent and not self.writer:
            how, replayed = "follow", 0  # the writer worker resumes or rebuilds the shared engine
        else:
            seq = self._resume()
            if seq is None:
                how = "rebuild"
                self.rebuild()
            replayed = self.catch_up()
        self._snap_seq, self._snap_time = self.index.last_seq, time.monotonic()
        faces = self._face_count()
        if how == "rebuild" and self.snapshot_dir is not None and self.writer and faces:
            self.snapshot()  # the next start loads instead of rebuilding
        self.ready = True
        report = {"how": how, "seq": self.index.last_seq, "replayed": replayed,
                  "seconds": round(time.perf_counter() - started, 3), "faces": faces}
        log.info("index ready", extra=report)
        if background:
            self._thread = threading.Thread(target=self._run, name="index-sync", daemon=True)
            self._thread.start()
        return report

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.ready and self.snapshot_dir is not None and self.writer and self.index.last_seq > self._snap_seq:
            try:
                self.snapshot()
            except Exception:  # the log still holds everything; the next start replays it
                log.exception("final index snapshot failed")

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.catch_up()
                if self._snapshot_due():
                    self.snapshot()
            except Exception:  # keep polling; the next round retries
                log.exception("index sync round failed")

    # ---------------------------------------------------------------- changes
    def on_commit(self, changes: list[Change]) -> None:
        """A write committed these changes (in seq order); called under the writer lock."""
        if self._follower():
            return  # worker 0 applies them to the shared engine
        try:
            with self._lock:
                if changes[0].seq == self.index.last_seq + 1:
                    self.index.apply(changes)
                else:  # someone else wrote in between (or a rolled-back seq): read the log
                    self.catch_up()
        except Exception:  # committed already: the poller retries from the log
            log.exception("applying committed changes to the index failed")

    def catch_up(self) -> int:
        """Apply every logged change after the index's seq; returns how many."""
        applied = 0
        with self._lock:
            refresh = getattr(self.index, "refresh", None)
            if refresh is not None:  # an engine shared with other processes: start where it is
                refresh()
                if self._follower():
                    return 0
            while True:
                with self.db.read() as s:
                    if _pruned_through(s) > self.index.last_seq:
                        log.warning("change log pruned past the index (seq %d): rebuilding",
                                    self.index.last_seq)
                        self.rebuild()
                        continue
                    rows = s.scalars(select(IndexChange).where(IndexChange.seq > self.index.last_seq)
                                     .order_by(IndexChange.seq).limit(CATCH_UP_BATCH)).all()
                    batch = [as_change(r) for r in rows]
                if not batch:
                    return applied
                self.index.apply(batch)
                applied += len(batch)

    def _follower(self) -> bool:
        """A non-writer worker on an engine that persists by itself (Milvus, shared by every
        worker): the writer worker feeds it, this one only follows its seq."""
        return self.index.persistent and not self.writer and self.ready

    # ---------------------------------------------------------------- rebuild
    def rebuild(self) -> None:
        """Replace the whole index with what the tables hold now."""
        with self._lock, self.db.read() as s:
            if not self.db.is_sqlite:  # one consistent view of all three tables and the log
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            seq = max(s.scalar(select(func.max(IndexChange.seq))) or 0, _pruned_through(s))
            faces = face_vectors(s).all()  # each face's vector under its own version
            persons = s.execute(select(Person.account_id, Person.face_model_version, Person.pk)).all()
            members = s.execute(select(Person.account_id, Person.face_model_version,
                                       Membership.person_pk, Membership.group_pk)
                                .join(Person, Person.pk == Membership.person_pk)).all()
        by_key: dict[tuple[int, str], tuple[list, list]] = {
            (int(a), v): ([], []) for a, v, _ in persons}
        for r in faces:
            by_key.setdefault((int(r[0]), r[1]), ([], []))[0].append(r)
        for r in members:
            by_key.setdefault((int(r[0]), r[1]), ([], []))[1].append(r)
        self.index.clear()
        for key, (f, m) in sorted(by_key.items()):
            self._load_collection(key, f, m)
        self.index.finish_rebuild(seq)

    def _load_collection(self, key, faces, members) -> None:
        dim = versions.get(key[1]).dim
        face_pks = np.array([r[2] for r in faces], np.int64)
        face_person = np.array([r[3] for r in faces], np.int64)
        vectors = (from_bytes(b"".join(r[4] for r in faces)).reshape(-1, dim)
                   if faces else np.zeros((0, dim), np.float32))
        # Fused person vectors: faces are sorted by person, so each person is one run.
        if len(face_person):
            person_pks, fused = fuse_runs(face_person, vectors)
        else:
            person_pks, fused = np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        self.index.bulk_load(
            key[0], key[1], face_pks=face_pks, face_person_pks=face_person, face_vectors=vectors,
            person_pks=person_pks, person_vectors=fused,
            member_person_pks=np.array([r[2] for r in members], np.int64),
            member_group_pks=np.array([r[3] for r in members], np.int64))

    # ---------------------------------------------------------------- snapshots
    def _snapshot_due(self) -> bool:
        if self.snapshot_dir is None or not self.writer:
            return False
        behind = self.index.last_seq - self._snap_seq
        return behind >= self.snapshot_changes or (
            behind > 0 and time.monotonic() - self._snap_time >= self.snapshot_seconds)

    def snapshot(self) -> int:
        """Write a snapshot, then prune the log behind it (old entries only); returns its seq.

        A persistent engine has made its seq durable already: only the log is pruned."""
        assert self.snapshot_dir is not None
        if self.index.persistent:
            with self._lock:
                seq = self.index.last_seq
        else:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            (self.snapshot_dir / DATABASE_ID_FILE).write_text(self.database_id)
            with self._lock:
                seq = self.index.last_seq
                self.index.snapshot(self.snapshot_dir, seq)
        self._snap_seq, self._snap_time = seq, time.monotonic()
        self._prune(seq)
        return seq

    def _prune(self, seq: int) -> None:
        # Only entries older than a while: another process reading the log (openiai import)
        # rarely has to rebuild. Not under self._lock: a write would wait for on_commit.
        cutoff = now_ms() - self.prune_after_ms
        with self.db.write() as s:
            top = s.scalar(select(func.max(IndexChange.seq))
                           .where(IndexChange.seq <= seq, IndexChange.created_ms < cutoff))
            if top and top > _pruned_through(s):
                s.execute(delete(IndexChange).where(IndexChange.seq <= top))
                s.merge(IndexState(name="pruned_through", value=str(top)))

    def _resume(self) -> int | None:
        """The seq the index holds at start, or None when it has to be rebuilt."""
        if self.index.persistent:
            seq = self.index.last_seq
            if seq == 0:  # nothing there: reading the tables beats replaying the whole log
                return None
        else:
            seq = self._load_snapshot()
            if seq is None:
                return None
        with self.db.read() as s:
            pruned = _pruned_through(s)
            newest = max(s.scalar(select(func.max(IndexChange.seq))) or 0, pruned)
        if seq > newest or pruned > seq:
            log.warning("index seq %d does not fit the change log (%d..%d): rebuilding",
                        seq, pruned, newest)
            return None
        return seq

    def _load_snapshot(self) -> int | None:
        """The loaded snapshot's seq, or None when there is none to trust."""
        root = self.snapshot_dir
        if root is None or not (root / "CURRENT").is_file():
            return None
        id_file = root / DATABASE_ID_FILE
        if not id_file.is_file() or id_file.read_text().strip() != self.database_id:
            log.warning("index snapshot in %s belongs to another database: rebuilding", root)
            return None
        try:
            return self.index.load(root)
        except Exception:
            log.exception("index snapshot in %s could not be loaded: rebuilding", root)
            return None

    def _database_id(self) -> str:
        with self.db.write() as s:
            row = s.get(IndexState, "database_id")
            if row is None:
                row = IndexState(name="database_id", value=uuid.uuid4().hex)
                s.add(row)
            return row.value

    def _face_count(self) -> int:
        return sum(self.index.counts(a, v)["faces"] for a, v in self.index.collections())


def _pruned_through(s) -> int:
    row = s.get(IndexState, "pruned_through")
    return int(row.value) if row is not None else 0
