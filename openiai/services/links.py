"""Short-lived signed download links to files the server wrote (job results).

A file lives under ``<data dir>/files/<relative path>``; a link to it is
``<public url>/files/<token>``, where the token carries the relative path and an expiry time
and is signed with HMAC-SHA256 under a key derived from the server's ``master.key`` (so every
worker of one data directory signs and checks alike, and nobody without the key can make or
stretch a link). ``GET /files/<token>`` (:mod:`openiai.api.app`) answers the file, 403 for a
bad signature or an expired link, 404 when the file is gone.

Use::

    links = services.links
    links.write("upgrade/<JobId>/failed_faces.json", data)   # bytes, written atomically
    url = links.url("upgrade/<JobId>/failed_faces.json", ttl_s=1800)

The base of the URL is ``Settings.public_url`` (``OPENIAI_PUBLIC_URL``), else
``http://<host>:<port>`` of the settings: set it when clients reach the server under another
name (a proxy, TLS, 0.0.0.0).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path, PurePosixPath

from ..core.files import write_atomic

DEFAULT_TTL_S = 1800  # the docs: FailedFacesUrl "url有效期为半小时"


class LinkError(Exception):
    """A token that does not open a file: ``status`` 403 (forged, damaged, expired) or 404."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def safe_relpath(path: str) -> str:
    """A relative path inside the files folder (no .., no absolute path), or ValueError."""
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts):
        raise ValueError(f"not a relative file path: {path!r}")
    return str(p)


class Links:
    def __init__(self, secret: bytes, files_dir: Path, base_url: str) -> None:
        # A key of its own, derived from the master key: a link never reveals anything usable
        # against the API keys it encrypts.
        self._key = hmac.new(secret, b"openiai signed download links v1", hashlib.sha256).digest()
        self.files_dir = Path(files_dir)
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings) -> "Links":
        base = settings.public_url or f"http://{settings.host}:{settings.port}"
        return cls(Path(settings.master_key_path).read_bytes().strip(),
                   settings.data_dir / "files", base)

    # ---- files
    def path(self, relpath: str) -> Path:
        return self.files_dir / safe_relpath(relpath)

    def write(self, relpath: str, data: bytes) -> Path:
        """Write a file atomically (a reader never sees half of it)."""
        return write_atomic(self.path(relpath), data)

    # ---- links
    def token(self, relpath: str, ttl_s: float = DEFAULT_TTL_S, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + ttl_s)
        body = _b64(json.dumps({"p": safe_relpath(relpath), "e": expires},
                               separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def url(self, relpath: str, ttl_s: float = DEFAULT_TTL_S) -> str:
        return f"{self.base_url}/files/{self.token(relpath, ttl_s)}"

    def open(self, token: str, now: float | None = None) -> Path:
        """The file a token names; :class:`LinkError` when it does not open one."""
        body, _, sig = token.partition(".")
        if not body or not sig or not hmac.compare_digest(sig, self._sign(body)):
            raise LinkError(403, "invalid link")
        try:
            claims = json.loads(_unb64(body))
            relpath, expires = safe_relpath(claims["p"]), int(claims["e"])
        except (ValueError, KeyError, TypeError):
            raise LinkError(403, "invalid link") from None
        if (time.time() if now is None else now) > expires:
            raise LinkError(403, "link expired")
        path = self.files_dir / relpath
        if not path.is_file():
            raise LinkError(404, "file not found")
        return path

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
