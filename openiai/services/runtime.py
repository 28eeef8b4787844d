"""The long-lived parts of a running server, built once from Settings."""

from __future__ import annotations

from ..core.settings import Settings
from ..index import VectorIndex, open_engine
from ..store.db import Database
from ..store.keys import KeyStore, load_master_key
from .attributes import AttributeEstimator
from .faces import FacePipeline
from .index_sync import IndexSync
from .jobs import JobRunner
from .links import Links
from .liveness import LivenessEstimator
from . import upgrade  # noqa: F401  (registers its job kind with the runner)
from .reextract import queue_if_needed


class Services:
    """Database, keys, the face pipeline (models load lazily) and the vector index.

    ``owner`` marks the process that keeps index snapshots and prunes the change log (the
    server); other processes on the same database (``openiai import``) only read the log.
    ``with_index=False`` (``openiai keys``) skips loading the index altogether.
    ``index_writer=False`` (workers after the first of ``openiai serve --workers N``) loads the
    owner's index snapshots but never writes them nor prunes the log.
    """

    def __init__(self, settings: Settings, *, owner: bool = True, background: bool = True,
                 with_index: bool = True, index_writer: bool = True) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.db_url)
        self.db.migrate()
        self.keys = KeyStore(self.db, load_master_key(settings.master_key_path),
                            cache_seconds=settings.key_cache_seconds)
        self.faces = FacePipeline.from_settings(settings)
        self.attributes = AttributeEstimator(self.faces)
        self.liveness = LivenessEstimator(self.faces)
        self.links = Links.from_settings(settings)
        # Background jobs: the runner exists everywhere (tests drive it with run_until_idle),
        # but only the index-writing server process starts its thread (start_jobs).
        self.jobs = JobRunner(self, share=settings.jobs_share, batch=settings.jobs_batch)
        self.runs_jobs = owner and index_writer and with_index
        self.index: VectorIndex | None = None
        self.index_sync: IndexSync | None = None
        if with_index:
            # Faces lacking their own version's vector: re-extracted by a background job
            # (services/reextract.py) of the index writer; other workers follow its writes
            # through the log. Start-up does not wait for it.
            if owner and index_writer:
                queue_if_needed(self.db)
            self._start_index(settings, owner, background, index_writer)

    def _start_index(self, settings: Settings, owner: bool, background: bool, writer: bool) -> None:
        self.index = open_engine(settings.vector_url)  # FAISS in-process, or Milvus
        self.index_sync = IndexSync(self.db, self.index,
                                    settings.data_dir / "index" if owner else None,
                                    writer=writer, **settings.index_sync_options())
        self.index_report = self.index_sync.start(background=background)
        self.db.on_commit = self.index_sync.on_commit

    def start_jobs(self) -> None:
        """Start the background job thread (the server's index-writing process only)."""
        if self.runs_jobs:
            self.jobs.start()

    def close(self) -> None:
        self.jobs.stop()
        self.db.on_commit = None
        if self.index_sync is not None:
            self.index_sync.close()
        self.db.dispose()
