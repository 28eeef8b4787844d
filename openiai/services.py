"""The long-lived parts of a running server, built once from Settings."""

from __future__ import annotations

from .api.auth import NonceCache
from .settings import Settings
from .store.db import Database
from .store.keys import KeyStore, load_master_key


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.db_url)
        self.db.migrate()
        self.keys = KeyStore(self.db, load_master_key(settings.master_key_path))
        self.nonces = NonceCache()

    def close(self) -> None:
        self.db.dispose()
