"""Accounts and API keys. SecretKeys must be readable to check HMACs, so they are stored
encrypted (Fernet) under a master key kept in a 0600 file outside the database.
"""

from __future__ import annotations

import os
import secrets
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import delete, func, select

from ..core.clock import now_ms
from ..core.settings import Settings
from .db import Database
from .schema import Account, ApiKey, Group, Person


class KeyRecord:
    """What auth needs to know of a key: its secret and the account that owns it."""

    def __init__(self, secret_id: str, secret_key: str, account_id: int) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.account_id = account_id


_ALNUM = string.ascii_letters + string.digits
CACHE_SECONDS = Settings.key_cache_seconds  # the one default (0 turns the cache off)


def load_master_key(path: Path) -> Fernet:
    """Read the master key, creating it (mode 0600) on first start."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


@dataclass
class AccountInfo:
    id: int
    name: str
    keys: int
    groups: int
    persons: int
    created_ms: int

    @property
    def has_data(self) -> bool:
        return bool(self.keys or self.groups or self.persons)


class AccountError(ValueError):
    """An account name that cannot be used (empty, taken, unknown); the message says which."""


def check_account_name(name: str) -> str:
    """The name, if it can name an account: 1-128 characters, visible, no surrounding spaces."""
    if not name or not name.strip():
        raise AccountError("an account name cannot be empty")
    if name != name.strip():
        raise AccountError(f"account name {name!r} has spaces around it")
    if len(name) > 128:
        raise AccountError(f"an account name has at most 128 characters ({len(name)} given)")
    if any(not ch.isprintable() for ch in name):
        raise AccountError(f"account name {name!r} has control or invisible characters")
    return name


@dataclass
class KeyInfo:
    secret_id: str
    account: str
    enabled: bool
    created_ms: int


class KeyStore:
    def __init__(self, db: Database, fernet: Fernet, cache_seconds: float | None = None) -> None:
        self.db = db
        self.fernet = fernet
        self.cache_seconds = CACHE_SECONDS if cache_seconds is None else cache_seconds
        self._cache: dict[str, tuple[KeyRecord, float]] = {}
        self._lock = threading.Lock()

    def ensure_account(self, name: str) -> int:
        with self.db.write() as s:
            acc = s.scalar(select(Account).where(Account.name == name))
            if acc is None:
                acc = Account(name=name, created_ms=now_ms())
                s.add(acc)
                s.flush()
            return acc.id

    def account_id(self, name: str) -> int | None:
        with self.db.read() as s:
            return s.scalar(select(Account.id).where(Account.name == name))

    def create_account(self, name: str) -> int:
        check_account_name(name)
        if self.account_id(name) is not None:
            raise AccountError(f"account {name!r} exists already")
        return self.ensure_account(name)

    def list_accounts(self) -> list[AccountInfo]:
        with self.db.read() as s:
            def counts(column) -> dict[int, int]:
                return dict(s.execute(select(column, func.count()).group_by(column)).all())

            keys, groups, persons = (counts(ApiKey.account_id), counts(Group.account_id),
                                     counts(Person.account_id))
            return [AccountInfo(a.id, a.name, keys.get(a.id, 0), groups.get(a.id, 0),
                                persons.get(a.id, 0), a.created_ms)
                    for a in s.scalars(select(Account).order_by(Account.created_ms, Account.id))]

    def rename_account(self, old: str, new: str) -> None:
        check_account_name(new)
        with self.db.write() as s:
            acc = s.scalar(select(Account).where(Account.name == old))
            if acc is None:
                raise AccountError(f"no account named {old!r}")
            if old != new and s.scalar(select(Account.id).where(Account.name == new)) is not None:
                raise AccountError(f"account {new!r} exists already")
            acc.name = new

    def delete_account(self, name: str) -> None:
        """Remove the account and its keys. Groups and persons must be gone already (the
        caller deletes them through the API, so the vector index hears of it)."""
        with self.db.write() as s:
            acc = s.scalar(select(Account).where(Account.name == name))
            if acc is None:
                raise AccountError(f"no account named {name!r}")
            for model in (Group, Person):
                if s.scalar(select(func.count()).select_from(model)
                            .where(model.account_id == acc.id)):
                    raise AccountError(f"account {name!r} still has {model.__tablename__}")
            secret_ids = list(s.scalars(select(ApiKey.secret_id).where(ApiKey.account_id == acc.id)))
            s.execute(delete(ApiKey).where(ApiKey.account_id == acc.id))
            s.delete(acc)
        with self._lock:
            for secret_id in secret_ids:
                self._cache.pop(secret_id, None)

    def create_key(self, account: str) -> tuple[str, str]:
        account_id = self.ensure_account(account)
        secret_id = "AKID" + "".join(secrets.choice(_ALNUM) for _ in range(32))
        secret_key = "".join(secrets.choice(_ALNUM) for _ in range(32))
        with self.db.write() as s:
            s.add(ApiKey(secret_id=secret_id, account_id=account_id,
                         secret_key_enc=self.fernet.encrypt(secret_key.encode()),
                         enabled=True, created_ms=now_ms()))
        return secret_id, secret_key

    def list_keys(self) -> list[KeyInfo]:
        with self.db.read() as s:
            rows = s.execute(select(ApiKey, Account.name).join(Account)
                             .order_by(ApiKey.created_ms)).all()
            return [KeyInfo(k.secret_id, name, k.enabled, k.created_ms) for k, name in rows]

    def set_enabled(self, secret_id: str, enabled: bool) -> bool:
        with self.db.write() as s:
            key = s.get(ApiKey, secret_id)
            if key is None:
                return False
            key.enabled = enabled
        with self._lock:
            self._cache.pop(secret_id, None)
        return True

    def has_keys(self) -> bool:
        with self.db.read() as s:
            return s.scalar(select(ApiKey.secret_id).limit(1)) is not None

    def lookup(self, secret_id: str) -> KeyRecord | None:
        """The key for a SecretId, or None if unknown or disabled. Enabled keys are cached for
        a few seconds (one decrypt per key, not per request); a key disabled by the CLI in
        another process stops working within ``cache_seconds``."""
        with self._lock:
            hit = self._cache.get(secret_id)
            if hit is not None and time.monotonic() - hit[1] < self.cache_seconds:
                return hit[0]
        with self.db.read() as s:
            key = s.get(ApiKey, secret_id)
            record = None
            if key is not None and key.enabled:
                record = KeyRecord(secret_id, self.fernet.decrypt(key.secret_key_enc).decode(),
                                   key.account_id)
        with self._lock:
            if record is not None:
                self._cache[secret_id] = (record, time.monotonic())
            else:
                self._cache.pop(secret_id, None)
        return record

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
