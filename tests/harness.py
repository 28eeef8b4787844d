"""A real `openiai serve` in a subprocess and official-SDK clients pointed at it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20180301 import iai_client as iai_client_2018
from tencentcloud.iai.v20180301 import models as models_2018
from tencentcloud.iai.v20200303 import iai_client as iai_client_2020
from tencentcloud.iai.v20200303 import models as models_2020

REPO = Path(__file__).resolve().parents[1]
OPENIAI = [sys.executable, "-m", "openiai.cli"]
SDK = {
    "2020-03-03": (iai_client_2020, models_2020),
    "2018-03-01": (iai_client_2018, models_2018),
}
SIGNINGS = [("TC3-HMAC-SHA256", "POST"), ("TC3-HMAC-SHA256", "GET"),
            ("HmacSHA256", "POST"), ("HmacSHA256", "GET"), ("HmacSHA1", "POST")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process over one data directory; can be killed and started again."""

    def __init__(self, data_dir: Path, database_url: str | None = None,
                 extra_env: dict | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, OPENIAI_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1",
                        **(extra_env or {}))
        if database_url:
            self.env["OPENIAI_DATABASE_URL"] = database_url
        self.log_path = self.data_dir / "server.log"
        self.serve_args: list[str] = []  # extra `openiai serve` flags
        self._keys = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}/"

    def cli(self, *args: str) -> str:
        out = subprocess.run([*OPENIAI, *args], env=self.env, cwd=REPO, capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"openiai {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def create_key(self, account: str) -> tuple[str, str]:
        """A key made in-process on the server's database (the CLI path has its own test)."""
        if self._keys is None:
            from openiai.core.settings import Settings
            from openiai.store.db import Database
            from openiai.store.keys import KeyStore, load_master_key

            settings = Settings(data_dir=self.data_dir, database_url=self.database_url)
            self._keys = KeyStore(Database(settings.db_url), load_master_key(settings.master_key_path))
        return self._keys.create_key(account)

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*OPENIAI, "serve", "--port", str(self.port), *self.serve_args],
                                     env=self.env,
                                     cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://{self.endpoint}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what survives is what was durable."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None


class Api:
    """Calls actions through the official Python SDK, by name, with plain dict parameters."""

    def __init__(self, server: Server, secret_id: str, secret_key: str,
                 version: str = "2020-03-03", sign: str = "TC3-HMAC-SHA256",
                 method: str = "POST") -> None:
        self.server, self.secret_id, self.secret_key = server, secret_id, secret_key
        self.version, self.sign, self.method = version, sign, method
        client_mod, self.models = SDK[version]
        profile = ClientProfile(signMethod=sign, httpProfile=HttpProfile(
            protocol="http", endpoint=server.endpoint, reqMethod=method, reqTimeout=120))
        self.client = client_mod.IaiClient(credential.Credential(secret_id, secret_key),
                                           "ap-guangzhou", profile)

    def variant(self, **kw) -> "Api":
        args = dict(version=self.version, sign=self.sign, method=self.method) | kw
        return Api(self.server, self.secret_id, self.secret_key, **args)

    def call(self, action: str, **params) -> dict:
        req = getattr(self.models, f"{action}Request")()
        req.from_json_string(json.dumps(params))
        resp = getattr(self.client, action)(req)
        return json.loads(resp.to_json_string())

    def error(self, action: str, **params) -> TencentCloudSDKException:
        """Call and expect an API error; returns the SDK exception (``.code``, ``.message``)."""
        try:
            result = self.call(action, **params)
        except TencentCloudSDKException as exc:
            assert exc.code and exc.requestId, f"error without code/RequestId: {exc}"
            return exc
        raise AssertionError(f"{action} succeeded but an error was expected: {result}")

    def code(self, action: str, **params) -> str:
        return self.error(action, **params).code
