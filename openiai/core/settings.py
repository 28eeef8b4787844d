"""Server settings: flags override the environment, which overrides the defaults.

This module is the only reader of the environment (a test walks the package to keep it so):
every other part of openiai gets its configuration from a :class:`Settings` object, handed
down by whoever built it (``openiai serve`` from its flags, the tools from theirs, tests
directly). :data:`ENVIRONMENT` lists every variable, its field and its meaning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Mapping


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    database_url: str | None = None
    # Folder searched for model files before the installed packages (`--model-dir`).
    model_dir: Path | None = None
    # Url image fetching refuses private/loopback addresses unless an operator allows them.
    allow_private_urls: bool = False
    # Threads running handlers (inference, database); the pipeline bounds model runs itself.
    workers: int = 8
    # Model runs at once (0: one per core) and onnxruntime threads per run: on 2 cores, 4
    # unbounded concurrent embeddings took 119 ms each against 17 ms alone.
    inference_slots: int = 0
    ort_threads: int = 1
    # Recognizer arithmetic: "float" (the calibrated SFace), "int8" (the quantised build,
    # vision/models/sface.py), or "auto" (int8 only where it is both faster and mixable with
    # stored float features; see sface.choose_recognizer).
    inference: str = "auto"
    # Beside the checkout, as the project lays it out (`OPENIAI_TESTDATA` elsewhere).
    testdata_dir: Path = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
    # Vector index snapshots: after this many changes, or this many seconds with any change.
    index_snapshot_changes: int = 20_000
    index_snapshot_seconds: float = 300.0
    # How long a decrypted key is cached; a disabled key stops working within this time.
    key_cache_seconds: float = 5.0
    # Rate limits: inline JSON, a file path, or a parsed dict; None: the data dir's
    # rate_limits.json if present.
    rate_limits: str | dict | None = None
    # Slow or silent clients (api/http.py): a connection must send a request head within
    # header_timeout and the body within body_timeout after it, or it is closed; at most
    # max_connections are open at once, so half-open sockets cannot pile up.
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1000
    # Strict replay (api/auth.py): a TC3 signature is bound to the first action it was used
    # with for its 5-minute lifetime, so a captured request cannot be replayed as another
    # action. Off by default (no official client needs it; memory per process).
    strict_replay: bool = False
    # Image actions (anything with an Image/Url) run on the `workers` threads; the others
    # (group and person management, listings) on `metadata_workers` threads of their own, so
    # they do not queue behind inference. False: one pool for all, as before (for comparison).
    separate_pools: bool = True
    metadata_workers: int = 4
    # The vector engine: None for the in-process FAISS index; milvus://host:19530 or
    # milvus-lite:FILE.db for Milvus (openiai.index.milvus_engine).
    vector_url: str | None = None
    # Background jobs (openiai.services.jobs): the runner thread is busy at most this share of
    # the time (0.5: it sleeps as long as each batch took) and takes this many faces a batch.
    jobs_share: float = 0.5
    jobs_batch: int = 16
    # Where clients reach this server, for signed download links (services/links.py); None:
    # http://host:port of these settings.
    public_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Defaults, then the environment, then non-None ``overrides`` (command-line flags)."""
        env = os.environ if environ is None else environ
        s = cls()
        for var, (name, parse, _meaning) in ENVIRONMENT.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                setattr(s, name, parse(raw.strip()))
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{var}={raw!r} is not usable: {exc}") from None
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"unknown setting {key!r}")
            if value is not None:
                setattr(s, key, value)
        s.data_dir = Path(s.data_dir)
        return s

    def index_sync_options(self) -> dict:
        return {"snapshot_changes": self.index_snapshot_changes,
                "snapshot_seconds": self.index_snapshot_seconds}

    @property
    def slots(self) -> int:
        """Model runs allowed at once (:attr:`inference_slots`, 0 = the CPU count)."""
        return self.inference_slots if self.inference_slots > 0 else max(1, os.cpu_count() or 1)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'openiai.db').resolve()}"

    @property
    def master_key_path(self) -> Path:
        # Kept beside, not inside, the database: a leaked DB dump alone does not reveal keys.
        return self.data_dir / "master.key"


def usual_data_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where data directories usually are: the one ``OPENIAI_DATA_DIR`` names, ``./data`` of
    the checkout and of the home folder. A command about to create a new, empty data directory
    looks for data in these first (``openiai`` says so instead of silently starting over)."""
    env = os.environ if environ is None else environ
    named = (env.get("OPENIAI_DATA_DIR") or "").strip()
    dirs = [Path(named)] if named else []
    return dirs + [Path(__file__).resolve().parents[2] / "data", Path.home() / "data"]


def holds_data(data_dir: Path) -> bool:
    """Whether an openiai data directory is there (its database or its master key)."""
    return any((Path(data_dir) / name).is_file() for name in ("openiai.db", "master.key"))


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected a whole number of at least 0")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("expected a number of seconds, at least 0")
    return value


def _share(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError("expected a share above 0 and at most 1")
    return value


def _inference(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("auto", "float", "int8"):
        raise ValueError("expected auto, float or int8")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("expected a TCP port, 0-65535")
    return value


# Variable -> (Settings field, parser, meaning). The README's configuration table lists the same.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], object], str]] = {
    "OPENIAI_HOST": ("host", str, "bind address (--host)"),
    "OPENIAI_PORT": ("port", _port, "port (--port)"),
    "OPENIAI_DATA_DIR": ("data_dir", Path, "data directory (--data-dir)"),
    "OPENIAI_DATABASE_URL": ("database_url", str, "SQLAlchemy URL (--database-url)"),
    "OPENIAI_MODEL_DIR": ("model_dir", Path, "model files searched first (--model-dir)"),
    "OPENIAI_ALLOW_PRIVATE_URLS": ("allow_private_urls", _flag, "Url may name private hosts"),
    "OPENIAI_INFERENCE_SLOTS": ("inference_slots", _count, "model runs at once (0: CPUs)"),
    "OPENIAI_ORT_THREADS": ("ort_threads", _positive_int, "onnxruntime threads per run"),
    "OPENIAI_TESTDATA": ("testdata_dir", Path, "test and evaluation images"),
    "OPENIAI_INFERENCE": ("inference", _inference, "recognizer arithmetic: auto, float, int8"),
    "OPENIAI_INDEX_SNAPSHOT_CHANGES": ("index_snapshot_changes", _positive_int,
                                       "index snapshot after this many changes"),
    "OPENIAI_INDEX_SNAPSHOT_SECONDS": ("index_snapshot_seconds", _seconds,
                                       "index snapshot after this long with changes"),
    "OPENIAI_KEY_CACHE_SECONDS": ("key_cache_seconds", _seconds, "decrypted key cache time"),
    "OPENIAI_RATE_LIMITS": ("rate_limits", str, "rate limit JSON or file"),
    "OPENIAI_HEADER_TIMEOUT": ("header_timeout", _seconds, "seconds to send a request head"),
    "OPENIAI_BODY_TIMEOUT": ("body_timeout", _seconds, "seconds to send a request body"),
    "OPENIAI_MAX_CONNECTIONS": ("max_connections", _positive_int, "open connections at most"),
    "OPENIAI_STRICT_REPLAY": ("strict_replay", _flag,
                              "bind a TC3 signature to the first action it was used with"),
    "OPENIAI_SEPARATE_POOLS": ("separate_pools", _flag,
                               "metadata actions on threads of their own, not behind images"),
    "OPENIAI_METADATA_WORKERS": ("metadata_workers", _positive_int,
                                 "threads for metadata (non-image) actions"),
    "OPENIAI_VECTOR_URL": ("vector_url", str, "vector engine: milvus://host:19530, milvus-lite:F.db"),
    "OPENIAI_JOBS_SHARE": ("jobs_share", _share, "share of a core background jobs may use"),
    "OPENIAI_JOBS_BATCH": ("jobs_batch", _positive_int, "faces per background job batch"),
    "OPENIAI_PUBLIC_URL": ("public_url", str, "base URL of signed download links"),
}
