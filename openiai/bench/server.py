"""A real ``openiai serve`` in a subprocess: the one harness the tests and ``openiai bench``
start servers with.

A :class:`Server` owns a data directory and a port; it can be started, stopped gracefully
(SIGTERM), killed (SIGKILL: only what was durable survives) and started again on the same
data. Its environment is the caller's plus ``OPENIAI_DATA_DIR`` and, when given, the database
URL; without one the server uses SQLite in the data directory, whatever the caller's
environment says, so that keys made with :meth:`Server.create_key` land where it looks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPENIAI = [sys.executable, "-m", "openiai.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process over one data directory; can be killed and started again."""

    def __init__(self, data_dir: Path, database_url: str | None = None,
                 extra_env: dict | None = None, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, OPENIAI_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1",
                        **(extra_env or {}))
        if database_url:
            self.env["OPENIAI_DATABASE_URL"] = database_url
        else:
            self.env.pop("OPENIAI_DATABASE_URL", None)
        self.log_path = self.data_dir / "server.log"
        self.serve_args: list[str] = []  # extra `openiai serve` flags (e.g. --model-dir)
        self._log = None
        self._keys = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}/"

    def cli(self, *args: str) -> str:
        """stdout of ``openiai ARGS`` run with the server's environment; raises on failure."""
        out = subprocess.run([*OPENIAI, *args], env=self.env, cwd=REPO, capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"openiai {' '.join(args)} failed: {out.stderr[-3000:]}")
        return out.stdout

    def create_key(self, account: str) -> tuple[str, str]:
        """(SecretId, SecretKey) made in this process on the server's database; faster than
        ``openiai keys create`` (which has its own tests) when a test suite needs hundreds."""
        if self._keys is None:
            from ..core.settings import Settings
            from ..store.db import Database
            from ..store.keys import KeyStore, load_master_key

            settings = Settings(data_dir=self.data_dir, database_url=self.database_url)
            self._keys = KeyStore(Database(settings.db_url),
                                  load_master_key(settings.master_key_path))
        return self._keys.create_key(account)

    def start(self, timeout: float = 60, wait_ready: bool = False) -> None:
        """Start and wait until ``/healthz`` answers; with ``wait_ready`` also until
        ``/readyz`` does (models loaded, index up), for callers that time requests."""
        import httpx

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*OPENIAI, "serve", "--port", str(self.port), *self.serve_args],
                                     env=self.env, cwd=REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        self._wait_for("/healthz", lambda status: status == 200, deadline, httpx)
        if wait_ready:
            # 404/405: a build without /readyz; nothing more to wait for.
            self._wait_for("/readyz", lambda status: status in (200, 404, 405), deadline, httpx)

    def _wait_for(self, path: str, good, deadline: float, httpx) -> None:
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if good(httpx.get(f"http://{self.endpoint}{path}", timeout=2).status_code):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer {path} in time: "
                           f"{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what survives is what was durable."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._forget()

    def _forget(self) -> None:
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
