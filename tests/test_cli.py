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
    out = srv.cli("keys", "create", "--account", account, "--create", "--json")
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


# ---- the first hour of an operator: start-up errors, --help, --version, pipes, TLS ----------

def _openiai(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([*OPENIAI, *args], env=env or dict(os.environ), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _one_line_failure(out: subprocess.CompletedProcess, status: int, *words: str) -> str:
    assert out.returncode == status, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "listening" not in out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("openiai: "), out.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_start_up_errors_are_one_line_with_distinct_statuses(tmp_path):
    import socket

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    _one_line_failure(_openiai("serve", "--data-dir", str(a_file)), 3, str(a_file), "--data-dir")
    _one_line_failure(_openiai("serve", "--data-dir", str(a_file / "sub")), 3, "cannot create")
    _one_line_failure(_openiai("serve", "--port", "99999"), 2, "--port 99999")
    line = _one_line_failure(_openiai(
        "serve", "--data-dir", str(tmp_path / "pg"),
        "--database-url", "postgresql+psycopg2://u:hunter2@127.0.0.1:1/nowhere"), 4,
        "127.0.0.1:1", "running")
    assert "hunter2" not in line  # the password never reaches a log
    # A read-only database (SQLite's own read-only mode: root ignores file permissions).
    data = tmp_path / "ro"
    assert _openiai("keys", "list", "--data-dir", str(data)).returncode == 0
    _one_line_failure(_openiai("serve", "--data-dir", str(data), "--database-url",
                               f"sqlite:///file:{data}/openiai.db?mode=ro&uri=true"), 4,
                      "readonly", "writable")
    # A port already in use: refused before anything says "listening".
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_line_failure(_openiai("serve", "--data-dir", str(tmp_path / "d"),
                                   "--port", str(port)), 5, f"port {port}", "in use")
    _one_line_failure(_openiai("serve", "--data-dir", str(tmp_path / "d"), "--tls-cert",
                               str(a_file)), 2, "--tls-key")
    _one_line_failure(_openiai("serve", "--data-dir", str(tmp_path / "d"), "--port", "0",
                               "--tls-cert", str(a_file), "--tls-key", str(a_file)), 6, "TLS")


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_serve_https_with_tls_flags(tmp_path):
    import httpx

    import ssl

    cert, key = _self_signed(tmp_path)
    ssl_context = ssl.create_default_context(cafile=str(cert))
    srv = Server(tmp_path / "data")
    srv.serve_args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    srv.data_dir.mkdir(parents=True)
    log = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen([*OPENIAI, "serve", "--port", str(srv.port), *srv.serve_args],
                                env=srv.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            assert srv.proc.poll() is None, srv.log_path.read_text()
            try:
                resp = httpx.get(f"https://127.0.0.1:{srv.port}/healthz", verify=ssl_context)
                break
            except httpx.HTTPError:
                assert time.time() < deadline, srv.log_path.read_text()
                time.sleep(0.2)
        assert resp.json() == {"status": "ok"}
        text = srv.log_path.read_text()
        assert f"listening on https://127.0.0.1:{srv.port}/" in text
        assert 'protocol="https"' in text  # the printed SDK example works as it is
        # The API itself answers over TLS (an unsigned call: its JSON error envelope).
        resp = httpx.post(f"https://127.0.0.1:{srv.port}/", verify=ssl_context,
                          headers={"X-TC-Action": "GetGroupList", "X-TC-Version": "2020-03-03",
                                   "Content-Type": "application/json"}, content=b"{}")
        assert resp.json()["Response"]["Error"]["Code"] and resp.json()["Response"]["RequestId"]
    finally:
        srv.stop()
        log.close()


def test_version_and_every_subcommand_help_lists_its_options():
    from openiai import __version__

    out = _openiai("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"openiai {__version__}"
    expected = {
        ("serve",): ["--data-dir", "--port", "--host", "--tls-cert", "--tls-key"],
        ("keys", "create"): ["--account", "--json", "--create"],
        ("accounts", "delete"): ["--force", "--data-dir"],
        ("accounts", "list"): ["--json"],
        ("keys", "list"): ["--json"],
        ("import",): ["--group", "--copy-existing"],
        ("models",): ["--load"],
        ("eval",): ["openiai eval lfw", "--lfw", "--pairs", "openiai eval attributes", "--only",
                    "openiai eval liveness", "--testdata"],
        ("eval", "lfw"): ["--lfw", "--workers"],
        ("calibrate",): ["--out", "--replace-shipped", "--lfw", "--workers"],
        ("bench",): ["bench search", "--n", "bench api", "--clients", "bench startup",
                     "bench attributes", "--faces", "bench priority", "--idle-requests",
                     "bench engine", "--rounds", "bench upgrade", "--share"],
        ("quantize",): ["--out", "--calibration"],
    }
    for args, options in expected.items():
        out = _openiai(*args, "--help")
        assert out.returncode == 0, (args, out.stderr)
        for option in options:
            assert option in out.stdout, (args, option)
        assert "rest" not in out.stdout.split(), args


def test_bare_eval_prints_the_plan_and_calibrate_never_overwrites_silently(tmp_path):
    import hashlib

    started = time.time()
    out = _openiai("eval")
    assert out.returncode == 0, out.stderr
    for name in ("openiai eval lfw", "openiai eval attributes", "openiai eval liveness"):
        assert name in out.stdout
    assert time.time() - started < 30  # printed, not evaluated

    shipped = REPO / "openiai" / "vision" / "calibration.json"
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    out = _openiai("calibrate")
    assert out.returncode == 2 and "--out" in out.stderr and "--replace-shipped" in out.stderr
    # Named file or nothing: an impossible LFW folder stops it before any writing.
    out = _openiai("calibrate", "--out", str(tmp_path / "t.json"), "--lfw", str(tmp_path / "no"))
    assert out.returncode != 0 and not (tmp_path / "t.json").exists()
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before


def test_keys_list_into_a_closed_pipe_ends_quietly(srv):
    for i in range(3):
        srv.cli("keys", "create", "--account", f"acct{i}", "--create")
    proc = subprocess.Popen([*OPENIAI, "keys", "list", "--json", "--data-dir", str(srv.data_dir)],
                            env=srv.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head` that has already gone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_accepted_connections_get_tcp_nodelay():
    """The listening socket names IPPROTO_TCP, so asyncio turns Nagle off on each accepted
    connection; without it a keep-alive response stalled ~40 ms on the client's delayed ACK."""
    import asyncio
    import socket

    from openiai.cli import bind_socket

    listener = bind_socket("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    seen = {}

    async def main():
        async def handle(reader, writer):
            sock = writer.get_extra_info("socket")
            seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        server = await asyncio.start_server(handle, sock=listener)
        _reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()

    asyncio.run(main())
    assert seen["nodelay"] != 0
