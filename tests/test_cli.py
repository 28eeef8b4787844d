"""The `openiai keys` commands against a real server, and how secrets are kept on disk."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import time

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from conftest import _postgres_database
from harness import OPENIAI, REPO, Api, Server

TTL = 0.5  # OPENIAI_KEY_CACHE_SECONDS for these servers


@pytest.fixture
def srv(tmp_path):
    s = Server(tmp_path / "data", extra_env={"OPENIAI_KEY_CACHE_SECONDS": str(TTL)})
    yield s
    s.stop()


def _json_key(srv: Server, account: str) -> dict:
    out = srv.cli("keys", "create", "--account", account, "--json")
    key = json.loads(out)
    assert set(key) == {"SecretId", "SecretKey"}
    assert re.fullmatch(r"AKID[A-Za-z0-9]{32}", key["SecretId"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", key["SecretKey"])
    return key


def _refused(api: Api) -> str:
    try:
        api.call("GetGroupList")
    except TencentCloudSDKException as exc:
        return exc.code
    return "accepted"


def test_keys_create_list_disable_enable(srv):
    key = _json_key(srv, "A")  # before the server exists: the CLI makes the data dir itself
    other = _json_key(srv, "B")
    srv.start()
    api = Api(srv, key["SecretId"], key["SecretKey"])
    assert api.call("GetGroupList")["GroupNum"] == 0
    api.call("CreateGroup", GroupId="g", GroupName="G")
    # a second key of the same account sees the same data; another account's does not
    same = _json_key(srv, "A")
    assert Api(srv, same["SecretId"], same["SecretKey"]).call("GetGroupList")["GroupNum"] == 1
    assert Api(srv, other["SecretId"], other["SecretKey"]).call("GetGroupList")["GroupNum"] == 0

    listed = json.loads(srv.cli("keys", "list", "--json"))
    rows = {r["SecretId"]: r for r in listed}
    assert rows[key["SecretId"]]["Account"] == "A" and rows[key["SecretId"]]["Status"] == "enabled"
    assert rows[other["SecretId"]]["Account"] == "B"
    text = srv.cli("keys", "list")
    assert key["SecretId"] in text and "enabled" in text
    assert key["SecretKey"] not in text and key["SecretKey"] not in json.dumps(listed)

    assert key["SecretId"] in srv.cli("keys", "disable", key["SecretId"])
    time.sleep(TTL + 0.3)
    assert _refused(api) == "AuthFailure.SecretIdNotFound"
    assert _refused(api.variant(sign="HmacSHA256")) == "AuthFailure.SecretIdNotFound"
    assert "disabled" in srv.cli("keys", "list")
    assert json.loads(srv.cli("keys", "list", "--json"))[0]["Status"] == "disabled"
    # the other keys are untouched
    assert Api(srv, same["SecretId"], same["SecretKey"]).call("GetGroupList")["GroupNum"] == 1

    srv.cli("keys", "enable", key["SecretId"])
    time.sleep(TTL + 0.3)
    assert api.call("GetGroupList")["GroupNum"] == 1


def test_disable_unknown_key_fails(srv):
    out = subprocess.run([*OPENIAI, "keys", "disable", "AKIDnope"], env=srv.env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "no such key" in out.stderr


def test_secrets_at_rest(srv):
    key = _json_key(srv, "A")
    srv.start()
    Api(srv, key["SecretId"], key["SecretKey"]).call("GetGroupList")
    master = srv.data_dir / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    srv.stop()  # checkpoint the WAL so both the main file and any leftovers are looked at
    db_files = [p for p in srv.data_dir.iterdir() if p.name.startswith("openiai.db")]
    assert db_files
    secret = key["SecretKey"].encode()
    for p in db_files:
        data = p.read_bytes()
        assert secret not in data, f"SecretKey in clear in {p.name}"
        assert secret.hex().encode() not in data
    assert key["SecretId"].encode() in (srv.data_dir / "openiai.db").read_bytes()
    # the master key is not in the database either
    assert master.read_bytes().strip() not in (srv.data_dir / "openiai.db").read_bytes()


def test_master_key_is_not_recreated(srv):
    key = _json_key(srv, "A")
    master = (srv.data_dir / "master.key").read_bytes()
    _json_key(srv, "B")
    assert (srv.data_dir / "master.key").read_bytes() == master
    srv.start()
    assert Api(srv, key["SecretId"], key["SecretKey"]).call("GetGroupList")["GroupNum"] == 0


def test_first_start_prints_a_working_key(srv):
    srv.start()
    log = srv.log_path.read_text()
    secret_id = re.search(r"SecretId:\s+(AKID\w+)", log).group(1)
    secret_key = re.search(r"SecretKey:\s+(\w+)", log).group(1)
    assert "iai_client.IaiClient" in log and f'"{secret_id}"' in log
    assert Api(srv, secret_id, secret_key).call("GetGroupList")["GroupNum"] == 0
    # request log lines are JSON and never carry the secret
    lines = [json.loads(line) for line in srv.log_path.read_text().splitlines()
             if line.startswith("{")]
    summary = [r for r in lines if r.get("msg") == "request"]
    assert summary and summary[-1]["action"] == "GetGroupList" and summary[-1]["code"] is None
    assert {"request_id", "account_id", "latency_ms"} <= set(summary[-1])
    assert secret_key not in srv.log_path.read_text().split("Python SDK example", 1)[1] \
        .split("openiai listening", 1)[1]
    srv.stop()
    srv.start()
    assert "Keys exist already" in srv.log_path.read_text()


def test_keys_on_postgres(tmp_path):
    created, reason = _postgres_database()
    if created is None:
        pytest.skip(reason)
    url, drop = created
    srv = Server(tmp_path / "pg", database_url=url,
                 extra_env={"OPENIAI_KEY_CACHE_SECONDS": str(TTL)})
    try:
        key = _json_key(srv, "A")
        srv.start()
        api = Api(srv, key["SecretId"], key["SecretKey"])
        assert api.call("GetGroupList")["GroupNum"] == 0
        srv.cli("keys", "disable", key["SecretId"])
        time.sleep(TTL + 0.3)
        assert _refused(api) == "AuthFailure.SecretIdNotFound"
    finally:
        srv.stop()
        drop()


def test_key_cache_ttl_in_process(tmp_path, monkeypatch):
    from openiai.core.settings import Settings
    from openiai.store.db import Database
    from openiai.store.keys import KeyStore, load_master_key

    settings = Settings(data_dir=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    db = Database(settings.db_url)
    db.migrate()
    fernet = load_master_key(settings.master_key_path)
    monkeypatch.setenv("OPENIAI_KEY_CACHE_SECONDS", "0.2")
    ttl = Settings.from_env().key_cache_seconds
    assert ttl == 0.2
    server_side, cli_side = KeyStore(db, fernet, ttl), KeyStore(db, fernet, ttl)
    sid, skey = cli_side.create_key("x")
    assert server_side.lookup(sid).secret_key == skey
    cli_side.set_enabled(sid, False)  # another process: server_side's cache still has it
    assert server_side.lookup(sid) is not None
    time.sleep(0.25)
    assert server_side.lookup(sid) is None
    monkeypatch.setenv("OPENIAI_KEY_CACHE_SECONDS", "")
    assert Settings.from_env().key_cache_seconds == KeyStore(db, fernet).cache_seconds == 5.0
    db.dispose()
