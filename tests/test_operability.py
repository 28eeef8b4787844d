"""Operability: /readyz, /metrics (Prometheus), the per-request JSON log line with stage times
and nothing secret in it, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import socket
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TESTDATA
from harness import Api, Server
from images import lfw
from wire import tc3_authorization

# ---- helpers ---------------------------------------------------------------------------------


def scrape(server) -> dict[tuple[str, frozenset], float]:
    resp = httpx.get(f"http://{server.endpoint}/metrics", timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(metrics, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def wait_ready(server, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while True:
        resp = httpx.get(f"http://{server.endpoint}/readyz", timeout=10)
        if resp.status_code == 200 or time.time() > deadline:
            return resp
        time.sleep(0.1)


def log_lines(server, *request_ids: str, timeout: float = 10) -> dict[str, dict]:
    """The JSON request lines of these RequestIds (waits until all are written)."""
    deadline = time.time() + timeout
    while True:
        text = server.log_path.read_text(errors="replace")
        lines = {}
        for raw in text.splitlines():
            if raw.startswith("{"):
                line = json.loads(raw)
                if line.get("msg") == "request" and line.get("request_id") in request_ids:
                    lines[line["request_id"]] = line
        if len(lines) == len(request_ids) or time.time() > deadline:
            return lines
        time.sleep(0.1)


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("srv-ops"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def ops_api(ops_server) -> Api:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    api = Api(ops_server, *ops_server.create_key(name))
    api.account = name
    return api


# ---- /healthz and /readyz --------------------------------------------------------------------

def _all_models_ok() -> dict:
    from openiai.vision.models.zoo import MODEL_CLASSES

    return dict.fromkeys(MODEL_CLASSES, "ok")  # /readyz lists every model of the zoo


def test_readyz_on_a_running_server(ops_server):
    resp = wait_ready(ops_server)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"status": "ready", "checks": {
        "models": _all_models_ok(), "database": "ok", "index": "ok", "warm_up": "ok"}}
    assert httpx.get(f"http://{ops_server.endpoint}/healthz").json() == {"status": "ok"}


@pytest.fixture
def inproc_app(tmp_path):
    from openiai.api.app import create_app
    from openiai.core.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(Settings(data_dir=tmp_path))
    with TestClient(app) as client:
        yield app, client


def _wait_ready_inproc(client) -> None:
    deadline = time.time() + 60
    while client.get("/readyz").status_code != 200:
        assert time.time() < deadline, client.get("/readyz").text
        time.sleep(0.05)


def test_readyz_503_names_the_failing_check(inproc_app, monkeypatch):
    from sqlalchemy import create_engine

    app, client = inproc_app
    services = app.state.services
    _wait_ready_inproc(client)

    index = services.index
    services.index = None
    try:
        resp = client.get("/readyz")
    finally:
        services.index = index
    assert resp.status_code == 503
    assert resp.json() == {"status": "not ready", "checks": {
        "models": _all_models_ok(), "database": "ok",
        "index": "no vector index", "warm_up": "ok"}}

    good = services.db.engine
    services.db.engine = create_engine(f"sqlite:///{services.settings.data_dir}/no/such/dir.db")
    try:
        resp = client.get("/readyz")
    finally:
        services.db.engine.dispose()
        services.db.engine = good
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["database"].startswith("OperationalError") and checks["index"] == "ok"

    # A model that is not loaded (here: dropped from the zoo's cache) makes the server not
    # ready, and /readyz names it.
    zoo = services.faces.zoo
    sface = zoo._models.pop("sface")
    try:
        resp = client.get("/readyz")
    finally:
        zoo._models["sface"] = sface
    assert resp.status_code == 503
    assert resp.json()["checks"]["models"] == {**_all_models_ok(), "sface": "not loaded"}
    assert client.get("/readyz").status_code == 200


def _app_with_slow_heads(tmp_path, fail: bool = False):
    """An app whose attribute-heads warm-up waits for the returned event (or fails)."""
    import threading

    from openiai.api.app import create_app
    from openiai.core.settings import Settings

    app = create_app(Settings(data_dir=tmp_path))
    services = app.state.services
    release = threading.Event()
    real = services.attributes.warmup

    def slow_warmup():
        release.wait(60)
        if fail:
            raise RuntimeError("heads file damaged")
        real()

    services.attributes.warmup = slow_warmup
    return app, release


@pytest.mark.parametrize("fail", [False, True])
def test_readyz_waits_for_the_attribute_heads(tmp_path, fail):
    """Every zoo model can be loaded while the heads are not: that is not ready yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app, release = _app_with_slow_heads(tmp_path, fail)
    zoo = app.state.services.faces.zoo
    with TestClient(app) as client:
        deadline = time.time() + 60
        while not all(v == "ok" for v in zoo.status().values()):
            assert time.time() < deadline
            time.sleep(0.05)
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["checks"]["models"] == _all_models_ok()
        assert resp.json()["checks"]["warm_up"].startswith("loading")
        release.set()
        if fail:
            deadline = time.time() + 10
            while client.get("/readyz").json()["checks"]["warm_up"].startswith("loading"):
                assert time.time() < deadline
                time.sleep(0.05)
            resp = client.get("/readyz")
            assert resp.status_code == 503
            assert resp.json()["checks"]["warm_up"] == "failed: RuntimeError: heads file damaged"
        else:
            _wait_ready_inproc(client)
            services = app.state.services
            assert services.attributes._heads and services.liveness._head is not None


def test_browser_get_answers_html_and_clients_still_get_json(tmp_path):
    from openiai.api.app import create_app
    from openiai.core.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(Settings(data_dir=tmp_path))
    client = TestClient(app)  # no lifespan: no model loading for this
    try:
        browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        resp = client.get("/", headers=browser)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/html; charset=utf-8"
        assert "<html" in resp.text and "/readyz" in resp.text and "openiai keys" in resp.text
        # An API client (no HTML in Accept, or a query, or a signature) gets the protocol.
        for kwargs in ({}, {"headers": {"Accept": "application/json"}},
                       {"headers": browser, "params": {"Action": "DescribeGroups"}},
                       {"headers": {**browser, "Authorization": "TC3-HMAC-SHA256 x"}}):
            resp = client.get("/", **kwargs)
            assert resp.headers["content-type"] == "application/json", kwargs
            assert "Error" in resp.json()["Response"], kwargs
    finally:
        app.state.services.close()


# ---- /metrics --------------------------------------------------------------------------------

def test_metrics_move_with_sdk_requests(ops_server, ops_api):
    wait_ready(ops_server)
    before = scrape(ops_server)
    group = f"g{uuid.uuid4().hex[:6]}"
    ops_api.call("CreateGroup", GroupId=group, GroupName=group)
    ops_api.call("CreatePerson", GroupId=group, PersonId="p1", PersonName="Aaron",
                 Image=lfw("Aaron_Peirsol"))
    ops_api.call("DetectFace", Image=lfw("Aaron_Peirsol", 2))
    ops_api.call("DetectFace", Image=lfw("Aaron_Peirsol", 3))
    assert ops_api.code("GetGroupInfo", GroupId="missing") == \
        "InvalidParameterValue.GroupIdNotExist"
    # A made-up action never becomes a label (series stay bounded): it is counted as "-".
    httpx.post(ops_server.url, headers={"X-TC-Action": "Bogus<x>", "X-TC-Version": "2020-03-03",
                                        "Content-Type": "application/json"}, content=b"{}")
    after = scrape(ops_server)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("openiai_requests_total", action="DetectFace", code="OK") == 2
    assert delta("openiai_requests_total", action="CreatePerson", code="OK") == 1
    assert delta("openiai_requests_total", action="GetGroupInfo",
                 code="InvalidParameterValue.GroupIdNotExist") == 1
    assert sum(v for (name, labels), v in after.items() if name == "openiai_requests_total"
               and dict(labels)["action"] == "-") >= 1
    assert not any("Bogus" in str(labels) for _, labels in after)
    assert delta("openiai_request_duration_seconds_count", action="DetectFace") == 2
    assert delta("openiai_request_duration_seconds_sum", action="DetectFace") > 0
    for stage in ("decode", "detect", "serialise"):
        assert delta("openiai_stage_seconds_count", action="DetectFace", stage=stage) == 2, stage
        assert delta("openiai_stage_seconds_sum", action="DetectFace", stage=stage) > 0, stage
    assert delta("openiai_stage_seconds_count", action="DetectFace", stage="embed") == 0
    assert delta("openiai_stage_seconds_count", action="CreatePerson", stage="embed") == 1
    assert delta("openiai_stage_seconds_count", action="GetGroupInfo", stage="serialise") == 1
    # The +Inf bucket of a histogram equals its count.
    assert sample(after, "openiai_stage_seconds_bucket", action="DetectFace", stage="detect",
                  le="+Inf") == sample(after, "openiai_stage_seconds_count", action="DetectFace",
                                       stage="detect")
    assert sample(after, "openiai_persons", account=ops_api.account) == 1
    assert sample(after, "openiai_faces", account=ops_api.account) == 1
    assert delta("openiai_index_vectors", space="faces") == 1
    assert delta("openiai_index_vectors", space="persons") == 1
    assert sample(after, "openiai_requests_in_progress") == 0

    ops_api.call("CreateFace", PersonId="p1", Images=[lfw("Aaron_Peirsol", 4)])
    now = scrape(ops_server)
    assert sample(now, "openiai_faces", account=ops_api.account) == 2
    assert sample(now, "openiai_persons", account=ops_api.account) == 1


def test_metrics_registries_are_per_app(tmp_path):
    """Two apps in one process (as the tests run them) keep separate counters."""
    from openiai.api.app import create_app
    from openiai.core.settings import Settings

    a = create_app(Settings(data_dir=tmp_path / "a"))
    b = create_app(Settings(data_dir=tmp_path / "b"))
    a.state.metrics.observe("DetectFace", None, 0.1, {"detect": 0.05})
    text_a = a.state.metrics.render().decode()
    text_b = b.state.metrics.render().decode()
    assert 'openiai_requests_total{action="DetectFace",code="OK"} 1.0' in text_a
    assert 'action="DetectFace"' not in text_b
    a.state.services.close()
    b.state.services.close()


# ---- the request log line ----------------------------------------------------------------------

FLOAT_RUN = re.compile(r"(-?\d+\.\d+(e-?\d+)?\s*,\s*){7,}-?\d+\.\d+")
LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{120,}")


def test_log_lines_have_the_fields_and_no_images_vectors_or_secrets(ops_server, ops_api):
    img_a, img_b = lfw("Abdullah_Gul", 1), lfw("Abdullah_Gul", 6)
    group = f"g{uuid.uuid4().hex[:6]}"
    rids = {}
    rids["group"] = ops_api.call("CreateGroup", GroupId=group, GroupName=group)["RequestId"]
    rids["person"] = ops_api.variant(sign="HmacSHA256").call(
        "CreatePerson", GroupId=group, PersonId="p", PersonName="P", Image=img_a)["RequestId"]
    rids["detect"] = ops_api.call("DetectFace", Image=img_b, NeedFaceAttributes=1)["RequestId"]
    rids["compare"] = ops_api.variant(sign="HmacSHA1").call(
        "CompareFace", ImageA=img_a, ImageB=img_b)["RequestId"]
    rids["verify"] = ops_api.variant(version="2018-03-01").call(
        "VerifyFace", PersonId="p", Image=img_b)["RequestId"]
    junk = base64.b64encode(b"not an image but secret-looking bytes " * 40).decode()
    rids["decode_failed"] = ops_api.error("DetectFace", Image=junk).requestId
    wrong = "w" * len(ops_api.secret_key)
    bad = Api(ops_server, ops_api.secret_id, wrong)
    rids["auth_failed"] = bad.error("DetectFace", Image=img_a).requestId

    lines = log_lines(ops_server, *rids.values())
    assert set(lines) == set(rids.values())
    for what, rid in rids.items():
        line = lines[rid]
        assert {"request_id", "action", "account_id", "latency_ms", "code", "stages_ms",
                "ts", "level"} <= set(line), what
        assert isinstance(line["latency_ms"], float)
        assert isinstance(line["account_id"], int) or what == "auth_failed"
        assert all(isinstance(v, float) for v in line["stages_ms"].values())
    assert lines[rids["detect"]]["code"] is None
    assert lines[rids["detect"]]["action"] == "DetectFace"
    assert {"decode", "detect", "serialise"} <= set(lines[rids["detect"]]["stages_ms"])
    assert {"decode", "detect", "embed", "serialise"} <= set(lines[rids["compare"]]["stages_ms"])
    assert "embed" in lines[rids["person"]]["stages_ms"]
    assert lines[rids["decode_failed"]]["code"] == "FailedOperation.ImageDecodeFailed"
    assert "decode" in lines[rids["decode_failed"]]["stages_ms"]
    assert lines[rids["auth_failed"]]["code"] == "AuthFailure.SignatureFailure"
    assert lines[rids["auth_failed"]]["account_id"] is None

    text = ops_server.log_path.read_text(errors="replace")
    # The startup banner prints the *default* account's key (shown once, by design); this
    # test's keys must appear nowhere.
    assert ops_api.secret_key not in text and wrong not in text
    for image in (img_a, img_b, junk):
        for start in range(0, len(image) - 40, max(1, len(image) // 7)):
            assert image[start:start + 40] not in text
    for raw in text.splitlines():
        if not raw.startswith("{"):
            continue
        assert not FLOAT_RUN.search(raw), raw[:300]  # no vector as a list of numbers
        assert not LONG_TOKEN.search(raw), raw[:300]  # nor base64/hex of one (or of an image)


# ---- graceful shutdown -------------------------------------------------------------------------

def _big_jpeg_b64() -> str:
    """A 3999x2666 JPEG (under the 4000 px limit): slow to decode and turn four times."""
    from PIL import Image

    with Image.open(TESTDATA / "compreface/sample_images/015_6.jpg") as im:
        big = im.convert("RGB").resize((3999, 2666))
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode()


def _read_http_response(sock: socket.socket) -> tuple[str, dict]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), json.loads(body)


HEAVY = 2  # concurrent heavy requests besides the half-sent one


def test_sigterm_lets_in_flight_requests_finish(tmp_path):
    srv = Server(tmp_path / "srv")
    srv.start()
    try:
        secret_id, secret_key = srv.create_key("shutdown")
        api = Api(srv, secret_id, secret_key)
        assert wait_ready(srv).status_code == 200
        image = _big_jpeg_b64()
        params = {"Image": image, "MaxFaceNum": 120, "NeedRotateDetection": 1}

        # 1. A request whose body is still arriving when the signal comes (deterministically
        #    in flight): headers and half the body now, the rest after SIGTERM.
        body = json.dumps(params).encode()
        ts = int(time.time())
        auth = tc3_authorization(secret_id, secret_key, method="POST", query="",
                                 content_type="application/json", host=srv.endpoint,
                                 body=body, timestamp=ts)
        head = (f"POST / HTTP/1.1\r\nHost: {srv.endpoint}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-TC-Action: DetectFace\r\n"
                f"X-TC-Version: 2020-03-03\r\nX-TC-Timestamp: {ts}\r\n"
                f"Authorization: {auth}\r\n\r\n").encode()
        slow = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        slow.sendall(head + body[: len(body) // 2])

        # 2. Heavy requests in handler threads (decode 10 MP, detect at four turns).
        pool = ThreadPoolExecutor(HEAVY)
        futures = [pool.submit(api.call, "DetectFace", **params) for _ in range(HEAVY)]
        # Every heavy request must have reached the app (or finished) before the signal:
        # a connection attempted after it is refused, by design.
        deadline = time.time() + 60
        while True:
            done = sum(f.done() for f in futures)  # read before the gauge: never over-counts
            in_progress = sample(scrape(srv), "openiai_requests_in_progress")
            if (in_progress - 1) + done >= HEAVY and in_progress >= 2:
                break
            assert time.time() < deadline, "requests never got in flight"
            time.sleep(0.01)

        srv.proc.send_signal(signal.SIGTERM)
        # The server stops accepting new connections...
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
            except OSError:
                break
            assert time.time() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        assert srv.proc.poll() is None, "exited with a request half-received"
        # ...but finishes what it had: the half-sent request completes normally.
        slow.sendall(body[len(body) // 2:])
        status, payload = _read_http_response(slow)
        slow.close()
        assert status == "HTTP/1.1 200 OK", status
        assert "Error" not in payload["Response"], payload
        assert payload["Response"]["FaceInfos"] and payload["Response"]["ImageWidth"] == 3999

        results = [f.result(timeout=120) for f in futures]
        pool.shutdown()
        assert all(r["FaceInfos"] for r in results)
        rc = srv.proc.wait(60)
        assert rc == 0, srv.log_path.read_text()[-3000:]
        log = srv.log_path.read_text()
        # The lifespan shutdown (services.close()) ran, after the last request was answered.
        request_ids = [payload["Response"]["RequestId"]] + [r["RequestId"] for r in results]
        assert "shutdown complete" in log
        last_request = max(log.index(rid) for rid in request_ids)
        assert log.index("shutdown complete") > last_request
        assert "Traceback" not in log
    finally:
        srv.kill()
