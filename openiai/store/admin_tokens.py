"""Console admin tokens (``openiai admin-token``): bearer secrets that sign an operator into
the web console's accounts-and-keys pages.

Only a SHA-256 of each token is kept, one per line in ``<data dir>/admin-tokens`` (mode 0600,
beside ``master.key``, outside the database): the file alone does not let anyone sign in. The
file is read on every check, so a token made or revoked while the server runs counts at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..core.clock import now_ms

PREFIX = "oiat_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class AdminTokens:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "admin-tokens"

    def create(self) -> str:
        """A new token; only its digest is written."""
        token = PREFIX + secrets.token_urlsafe(32)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{digest(token)} {now_ms()}\n")
        return token

    def digests(self) -> list[str]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [line.split()[0] for line in lines if line.strip()]

    def count(self) -> int:
        return len(self.digests())

    def verify(self, token: str) -> bool:
        if not token.startswith(PREFIX) or len(token) > 200:
            return False
        want = digest(token)
        ok = False
        for d in self.digests():  # no early exit: same work whichever line matches
            ok |= hmac.compare_digest(d, want)
        return ok

    def revoke_all(self) -> int:
        n = self.count()
        if self.path.exists():
            self.path.unlink()
        return n
