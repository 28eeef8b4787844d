"""Server settings: flags override the environment, which overrides the defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    database_url: str | None = None
    model_dir: Path | None = None
    # Url image fetching refuses private/loopback addresses unless an operator allows them.
    allow_private_urls: bool = False
    # Threads running handlers (inference, database); the engine bounds its own concurrency.
    workers: int = 8
    testdata_dir: Path = Path("../shared/faces")
    # Vector index snapshots: after this many changes, or this many seconds with any change.
    index_snapshot_changes: int = 20_000
    index_snapshot_seconds: float = 300.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        s = cls(
            host=_env("OPENIAI_HOST", "127.0.0.1"),
            port=int(_env("OPENIAI_PORT", "8000")),
            data_dir=Path(_env("OPENIAI_DATA_DIR", "data")),
            database_url=_env("OPENIAI_DATABASE_URL"),
            model_dir=Path(p) if (p := _env("OPENIAI_MODEL_DIR")) else None,
            allow_private_urls=_env("OPENIAI_ALLOW_PRIVATE_URLS", "0") in ("1", "true", "yes"),
            testdata_dir=Path(_env("OPENIAI_TESTDATA", "../shared/faces")),
            index_snapshot_changes=int(_env("OPENIAI_INDEX_SNAPSHOT_CHANGES", "20000")),
            index_snapshot_seconds=float(_env("OPENIAI_INDEX_SNAPSHOT_SECONDS", "300")),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(s, key, value)
        s.data_dir = Path(s.data_dir)
        return s

    def index_sync_options(self) -> dict:
        return {"snapshot_changes": self.index_snapshot_changes,
                "snapshot_seconds": self.index_snapshot_seconds}

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'openiai.db').resolve()}"

    @property
    def master_key_path(self) -> Path:
        # Kept beside, not inside, the database: a leaked DB dump alone does not reveal keys.
        return self.data_dir / "master.key"
