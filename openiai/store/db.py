"""Engine, connection settings and transactions.

SQLite (the default) runs in WAL mode with foreign keys on and ``synchronous=FULL`` so an
acknowledged write survives a crash; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue up instead of failing half-way. On PostgreSQL every write transaction first
takes one transaction-scoped advisory lock: writers from any process commit one at a time, so
the vector index's change log (``index_changes.seq``) is committed in sequence order and a
reader that has seen seq N has seen everything before it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from . import changes

MIGRATIONS = Path(__file__).with_name("migrations")
WRITER_LOCK_KEY = 0x6F70656E696169  # pg_advisory_xact_lock key of the single-writer lock


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # One writer at a time in this process (SQLite allows one anyway; queueing here avoids
        # busy-loops in the driver) and the index changes are applied in commit order.
        self._write_lock = threading.Lock()
        # Called with the committed transaction's index changes, still under the write lock.
        self.on_commit: Callable[[list], None] | None = None

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def read(self):
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write(self):
        """One transaction: committed when the block ends, rolled back on any exception.

        The index changes it recorded (:mod:`openiai.store.changes`) are handed to
        :attr:`on_commit` after the commit, before the next writer may start."""
        with self._write_lock:
            conn = self.engine.connect()
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            try:
                with Session(bind=conn, expire_on_commit=False) as session:
                    with session.begin():
                        if not self.is_sqlite:
                            session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                            {"k": WRITER_LOCK_KEY})
                        yield session
                        changes.finish(session)
                    committed = changes.pending(session)
            finally:
                conn.close()
            if committed and self.on_commit is not None:
                self.on_commit(sorted(committed, key=lambda c: c.seq))

    def dispose(self) -> None:
        self.engine.dispose()


def is_lock_error(exc: Exception) -> bool:
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()
