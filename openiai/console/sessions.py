"""Console sessions: kept in this server's memory, named by a signed cookie.

* The cookie holds a random session id and an HMAC of it under a key drawn at start-up; it is
  ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it),
  ``Path=/console/`` and ``Secure`` when the console is reached over HTTPS.
* Each session has its own CSRF token; every form carries it and every POST must send it back.
* A session ends after ``IDLE_SECONDS`` without a request, ``ABSOLUTE_SECONDS`` after sign-in,
  at sign-out, and when the server restarts (nothing is written to disk).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "openiai_console"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000  # the oldest goes first past this (a flood of sign-ins cannot grow memory)


@dataclass
class Session:
    sid: str
    kind: str  # "account" or "admin"
    label: str  # account name, or "admin"
    account_id: int | None = None
    secret_id: str | None = None  # the key it signed in with (re-checked on every request)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    flash: list = field(default_factory=list)  # (kind, text) shown on the next page

    @property
    def admin(self) -> bool:
        return self.kind == "admin"


class SessionStore:
    def __init__(self, idle: float = IDLE_SECONDS, absolute: float = ABSOLUTE_SECONDS,
                 clock=time.monotonic) -> None:
        self.idle, self.absolute, self.clock = idle, absolute, clock
        self._key = secrets.token_bytes(32)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _sign(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()

    def create(self, kind: str, label: str, account_id: int | None = None,
               secret_id: str | None = None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), kind, label, account_id, secret_id,
                          created=now, seen=now)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._expire(now)
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].seen)]
            self._sessions[session.sid] = session
        return session, f"{session.sid}.{self._sign(session.sid)}"

    def get(self, cookie: str | None) -> Session | None:
        """The live session the cookie names (its idle clock restarted), or None."""
        if not cookie or cookie.count(".") != 1:
            return None
        sid, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._sign(sid)):
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if now - session.seen > self.idle or now - session.created > self.absolute:
                del self._sessions[sid]
                return None
            session.seen = now
            return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.sid, None)

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items()
                    if now - s.seen > self.idle or now - s.created > self.absolute]:
            del self._sessions[sid]


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    return bool(session and sent) and hmac.compare_digest(session.csrf, sent)
