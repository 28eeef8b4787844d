"""What a fuzz campaign broke (issue 17), one test per finding: lone surrogates (refused on
input, harmless when already stored), offsets past 2^63, deeply dotted keys, oversized
requests, unknown HTTP methods, characters the docs forbid in names, and slow clients.

Parameter cases run in-process; what only the wire shows (methods, sizes, raw bytes, dotted
keys in GET/form/multipart, read deadlines) runs against a real server through ``wire.Raw``,
whose ``check`` asserts the envelope (HTTP 200, application/json, RequestId, no traceback).
"""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from harness import Server
from wire import Raw, check, code, error, ok

from openiai.api.protocol import MAX_KEY_DEPTH, rebuild_dotted
from openiai.api.wire_schema import ACTIONS, MODELS
from openiai.core.clock import now_ms
from openiai.core.errors import ApiError
from openiai.store.schema import Group, Membership, Person


@pytest.fixture
def raw(engine_server) -> Raw:
    """Raw HTTP on the SQLite server: nothing here depends on the storage backend."""
    secret_id, secret_key = engine_server.create_key(f"hard-{uuid.uuid4().hex[:8]}")
    return Raw(engine_server, secret_id, secret_key)


def _store_person(inproc, group_id: str, person_id: str, values: list[str]) -> None:
    """A person in a group, written straight to the store (no image pipeline needed)."""
    with inproc.services.db.write() as s:
        group = s.query(Group).filter_by(account_id=inproc.account_id, group_id=group_id).one()
        person = Person(account_id=inproc.account_id, person_id=person_id, name="P", gender=0,
                        face_model_version=group.face_model_version, created_ms=now_ms())
        s.add(person)
        s.flush()
        s.add(Membership(group_pk=group.pk, person_pk=person.pk, created_ms=now_ms(),
                         ex_descriptions=values))


# ---- 1. lone UTF-16 surrogates ----------------------------------------------------------------

@pytest.mark.parametrize("action,params", [
    ("CreateGroup", {"GroupId": "g", "GroupName": "n", "GroupExDescriptions": ["f\ud800"]}),
    ("CreateGroup", {"GroupId": "g", "GroupName": "n\udfff"}),
    ("CreateGroup", {"GroupId": "g", "GroupName": "n", "Tag": "\ud800"}),
    ("GetGroupInfo", {"GroupId": "\ud800"}),
    ("GetPersonBaseInfo", {"PersonId": "p\udc00"}),
    ("ModifyPersonBaseInfo", {"PersonId": "p", "PersonName": "\ud83d"}),
    ("CopyPerson", {"PersonId": "p", "GroupIds": ["a", "\ud800"]}),
    ("SearchFaces", {"GroupIds": ["\ud800"], "Url": "http://x/\ud800"}),
])
def test_lone_surrogates_are_refused_before_any_handler(inproc, action, params):
    err = inproc.error(action, **params)
    assert err.code == "InvalidParameter" and "surrogate" in err.message, err
    assert inproc.call("GetGroupList")["GroupNum"] == 0  # nothing was stored


def test_stored_surrogates_never_break_a_read(inproc):
    """Rows written before input was checked: every listing still answers, with U+FFFD."""
    inproc.call("CreateGroup", GroupId="g", GroupName="n", GroupExDescriptions=["ok"])
    with inproc.services.db.write() as s:
        group = s.query(Group).filter_by(account_id=inproc.account_id, group_id="g").one()
        group.ex_descriptions = ["f\ud800"]
    _store_person(inproc, "g", "p", ["v\udc00"])
    assert inproc.call("GetGroupInfo", GroupId="g")["GroupExDescriptions"] == ["f\ufffd"]
    assert inproc.call("GetGroupList")["GroupInfos"][0]["GroupExDescriptions"] == ["f\ufffd"]
    person = inproc.call("GetPersonList", GroupId="g")["PersonInfos"][0]
    assert person["PersonExDescriptions"] == ["v\ufffd"]
    info = inproc.call("GetPersonGroupInfo", PersonId="p")["PersonGroupInfos"][0]
    assert info["PersonExDescriptions"] == ["v\ufffd"]


def test_envelope_encodes_whatever_it_is_given():
    from openiai.api.app import envelope

    resp = envelope("rid", {"GroupName": "a\ud800b"})
    assert json.loads(resp.body)["Response"]["GroupName"] == "a\ufffdb"
    resp = envelope("rid", error=ApiError("InvalidParameter", "bad `\udfff`"))
    assert json.loads(resp.body)["Response"]["Error"]["Message"] == "bad `\ufffd`"


def test_surrogate_bytes_in_a_json_body(raw):
    """The CESU-8 bytes ED A0 80 decode to a lone surrogate in Python's JSON reader."""
    body = b'{"GroupId": "g", "GroupName": "n", "GroupExDescriptions": ["f\xed\xa0\x80"]}'
    c, msg = error(raw.tc3("CreateGroup", body=body))
    assert c == "InvalidParameter" and "surrogate" in msg
    body = b'{"GroupId": "g", "GroupName": "n", "GroupExDescriptions": ["f\\ud800"]}'
    assert code(raw.tc3("CreateGroup", body=body)) == "InvalidParameter"
    assert ok(raw.tc3("GetGroupList", {}))["GroupNum"] == 0


# ---- 2. offsets past 2^63 ---------------------------------------------------------------------

@pytest.mark.parametrize("offset", [2**63 - 1, 2**63, 2**64 - 1])
def test_huge_offsets_read_an_empty_page(inproc, offset):
    inproc.call("CreateGroup", GroupId="g", GroupName="n")
    _store_person(inproc, "g", "p", [])
    out = inproc.call("GetGroupList", Offset=offset)
    assert out["GroupInfos"] == [] and out["GroupNum"] == 1
    out = inproc.call("GetPersonList", GroupId="g", Offset=offset)
    assert out["PersonInfos"] == [] and out["PersonNum"] == 1
    out = inproc.call("GetPersonGroupInfo", PersonId="p", Offset=offset)
    assert out["PersonGroupInfos"] == [] and out["GroupNum"] == 1


def test_offset_past_uint64_is_a_parameter_error(inproc):
    assert inproc.code("GetGroupList", Offset=2**64) == "InvalidParameter"


# ---- 3. deeply dotted keys --------------------------------------------------------------------

def _depth(version: str, wire: str) -> int:
    """Dotted parts a field of this wire type needs at most (`A.0.B` is 3)."""
    if wire.startswith("list:"):
        return 1 + _depth(version, wire[5:])
    if wire in MODELS[version]:
        return 1 + max((_depth(version, t) for t in MODELS[version][wire].values()), default=0)
    return 0


def test_every_request_field_fits_the_key_depth_limit():
    deepest = max(1 + _depth(v, wire) for v in ACTIONS for a in ACTIONS[v]
                  for wire, _ in ACTIONS[v][a]["in"].values())
    assert deepest <= MAX_KEY_DEPTH


def test_rebuild_dotted_bounds_the_depth():
    assert rebuild_dotted([("A." + ".".join(["0"] * (MAX_KEY_DEPTH - 1)), "v")])
    with pytest.raises(ApiError) as exc:
        rebuild_dotted([("x" + ".0" * 3000, "v")])
    assert exc.value.code == "InvalidParameter" and "nested" in exc.value.message


@pytest.mark.parametrize("style", ["tc3-get", "v1-get", "v1-form", "multipart"])
def test_deeply_dotted_keys_on_the_wire(raw, style):
    key = "x" + ".0" * 3000
    if style == "tc3-get":
        resp = raw.tc3("GetGroupList", {key: "v"}, method="GET",
                       content_type="application/x-www-form-urlencoded")
    elif style == "v1-get":
        resp = raw.v1("GetGroupList", {key: "v"}, method="GET")
    elif style == "v1-form":
        resp = raw.v1("GetGroupList", {key: "v"})
    else:  # the multipart parser refuses part headers over ~8 KB itself; 1,000 levels fit
        import httpx

        req = httpx.Request("POST", "http://x/", files={"x" + ".0" * 1000: (None, "v")})
        resp = raw.tc3("GetGroupList", body=req.read(),
                       content_type=req.headers["content-type"])
    c, msg = error(resp)
    assert c == "InvalidParameter" and "nested" in msg, msg


# ---- 4. request sizes -------------------------------------------------------------------------

def test_oversized_body_is_request_size_limit_exceeded(raw):
    body = json.dumps({"GroupId": "g", "GroupName": "x" * (10 * 1024 * 1024)}).encode()
    c, msg = error(raw.tc3("CreateGroup", body=body))
    assert c == "RequestSizeLimitExceeded" and "10 MB" in msg


def _send_raw(port: int, data: bytes) -> tuple[bytes, dict]:
    """Send ``data`` on a fresh socket and read until the server closes it (the request says
    ``Connection: close``, or the server closes after refusing it); (status line, Response)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower(), head
    out = json.loads(body)["Response"]
    uuid.UUID(out["RequestId"])
    return head.split(b"\r\n")[0], out


def test_get_head_over_the_parser_limit_gets_the_envelope(engine_server):
    """Past what the HTTP parser buffers (1 MB; httpx cannot even send it): still the JSON
    envelope, not the HTTP server's own 400 text/plain."""
    request = (b"GET /?Action=CreateGroup&GroupName=" + b"x" * (1100 * 1024) +
               b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, out = _send_raw(engine_server.port, request)
    assert status == b"HTTP/1.1 200 OK"
    assert out["Error"]["Code"] == "RequestSizeLimitExceeded", out


def test_malformed_http_still_gets_a_400(engine_server):
    """Not an API request at all: the HTTP server's own answer is right."""
    with socket.create_connection(("127.0.0.1", engine_server.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")


# ---- 5. HTTP methods --------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "OPTIONS", "PUT"])
def test_unknown_methods_get_unsupported_protocol(raw, method):
    resp = raw.http.request(method, f"http://{raw.host}/", content=b"{}",
                            headers={"Content-Type": "application/json"})
    c, msg = error(resp)
    assert c == "UnsupportedProtocol" and method in msg


@pytest.mark.parametrize("method", [b"get", b"post", b"Get"])
def test_lowercase_methods_get_unsupported_protocol(engine_server, method):
    """HTTP methods are case-sensitive: `get` is not GET (httpx uppercases, so a socket)."""
    status, out = _send_raw(engine_server.port, method + b" / HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert status == b"HTTP/1.1 200 OK" and out["Error"]["Code"] == "UnsupportedProtocol", out


# ---- 6. characters the docs forbid ------------------------------------------------------------

BAD_CHARS = ["\x07", "\n", "\x7f", "\u202e", "\u200b", "\u200d", "\ufeff", "\u2028"]


@pytest.mark.parametrize("bad", BAD_CHARS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARS])
def test_forbidden_characters_in_names(inproc, bad):
    inproc.call("CreateGroup", GroupId="g", GroupName="n", GroupExDescriptions=["f"])
    _store_person(inproc, "g", "p", [""])
    iv = "InvalidParameterValue."
    assert inproc.code("CreateGroup", GroupId="h", GroupName=f"a{bad}b") == \
        iv + "GroupNameIllegal"
    assert inproc.code("ModifyGroup", GroupId="g", GroupName=f"a{bad}") == iv + "GroupNameIllegal"
    assert inproc.code("CreateGroup", GroupId="h", GroupName="m", Tag=bad) == \
        iv + "GroupTagIllegal"
    assert inproc.code("ModifyGroup", GroupId="g", Tag=f"t{bad}") == iv + "GroupTagIllegal"
    assert inproc.code("CreateGroup", GroupId="h", GroupName="m",
                       GroupExDescriptions=[f"{bad}x"]) == iv + "GroupExDescriptionsNameIllegal"
    assert inproc.code("ModifyGroup", GroupId="g", GroupExDescriptionInfos=[
        {"GroupExDescriptionIndex": 0, "GroupExDescription": f"x{bad}"}]) == \
        iv + "GroupExDescriptionsNameIllegal"
    assert inproc.code("ModifyPersonBaseInfo", PersonId="p", PersonName=f"P{bad}") == \
        iv + "PersonNameIllegal"
    assert inproc.code("ModifyPersonGroupInfo", GroupId="g", PersonId="p",
                       PersonExDescriptionInfos=[{"PersonExDescriptionIndex": 0,
                                                  "PersonExDescription": f"v{bad}"}]) == \
        iv + "PersonExDescriptionsNameIllegal"
    info = inproc.call("GetGroupInfo", GroupId="g")
    assert (info["GroupName"], info["Tag"], info["GroupExDescriptions"]) == ("n", "", ["f"])


def test_visible_text_is_still_accepted(inproc):
    """Spaces, punctuation, CJK and emoji: what real deployments put in names."""
    inproc.call("CreateGroup", GroupId="g", GroupName="Staff 1 (José)", Tag="楼 3, 东-区",
                GroupExDescriptions=["工号", "e-mail"])
    _store_person(inproc, "g", "p", ["", ""])
    inproc.call("ModifyPersonBaseInfo", PersonId="p", PersonName="Zoë 😀 O'Neil")
    inproc.call("ModifyPersonGroupInfo", GroupId="g", PersonId="p", PersonExDescriptionInfos=[
        {"PersonExDescriptionIndex": 1, "PersonExDescription": "a.b@example.com"}])
    assert inproc.call("GetPersonBaseInfo", PersonId="p")["PersonName"] == "Zoë 😀 O'Neil"


@pytest.mark.parametrize("action,params", [
    ("CreateGroup", {"GroupId": "g", "GroupName": "a\x00b"}),
    ("GetGroupInfo", {"GroupId": "g\x00"}),  # PostgreSQL cannot even compare such a string
    ("ModifyPersonBaseInfo", {"PersonId": "p", "PersonName": "\x00"}),
])
def test_nul_is_refused_at_parse_time(inproc, action, params):
    err = inproc.error(action, **params)
    assert err.code == "InvalidParameter" and "NUL" in err.message, err


@pytest.mark.parametrize("gid", ["g\n", "g\r\n", "\ng"])
def test_ids_with_a_newline_are_illegal(inproc, gid):
    assert inproc.code("CreateGroup", GroupId=gid, GroupName="n") == \
        "InvalidParameterValue.GroupIdIllegal"


# ---- slow clients: read deadlines and the connection cap --------------------------------------

@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("srv-deadlines"), extra_env={
        "OPENIAI_HEADER_TIMEOUT": "1", "OPENIAI_BODY_TIMEOUT": "1",
        "OPENIAI_MAX_CONNECTIONS": "8"})
    srv.start()
    yield srv
    srv.stop()


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading EOF); fails after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        pytest.fail(f"connection still open after {seconds} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("sent", [
    b"",  # connects and says nothing
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Ty",  # a head that never ends
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":",  # a body that stops
])
def test_slow_clients_are_cut_off(strict_server, sent):
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=10) as sock:
        sock.sendall(sent)
        assert _closed_within(sock, 6) < 4


def test_a_slow_but_steady_request_is_not_cut_off(strict_server):
    """The head deadline is per request, not per byte: a head sent in pieces inside it works."""
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=10) as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.2)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_connection_cap(strict_server):
    socks = [socket.create_connection(("127.0.0.1", strict_server.port), timeout=10)
             for _ in range(8)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", strict_server.port), timeout=10) as extra:
            assert _closed_within(extra, 0.9) < 0.9  # closed at once, before any deadline
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    secret_id, secret_key = strict_server.create_key("after-cap")
    check(Raw(strict_server, secret_id, secret_key).tc3("GetGroupList", {}))


# ---- strict replay and separate pools (issue 17's "also found") ---------------------------------

def _quiet_app(tmp_path, monkeypatch, **settings):
    """The ASGI app on its own Services, without the background model warm-up (these tests
    need no model and should not compete with one loading)."""
    from openiai.api.app import create_app
    from openiai.core.settings import Settings
    from openiai.services import Services

    services = Services(Settings(data_dir=tmp_path, **settings))
    for obj, name in ((services.faces, "warmup"), (services.attributes, "warmup"),
                      (services.liveness, "head")):
        monkeypatch.setattr(obj, name, lambda *a, **k: None)
    return create_app(services=services), services.keys.create_key("t")


def _signed(client, key, action: str, params: dict, *, timestamp: int | None = None,
            authorization: str | None = None):
    """A TC3 POST signed as the official clients sign it (content-type and host only)."""
    from wire import tc3_authorization

    body = json.dumps(params).encode()
    timestamp = timestamp or int(time.time())
    auth = authorization or tc3_authorization(
        key[0], key[1], method="POST", query="", content_type="application/json",
        host="testserver", body=body, timestamp=timestamp)
    return client.post("/", content=body, headers={
        "Authorization": auth, "Content-Type": "application/json", "X-TC-Action": action,
        "X-TC-Version": "2020-03-03", "X-TC-Timestamp": str(timestamp)}), auth, timestamp


def _test_client(app):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(app)


@pytest.mark.parametrize("strict", [False, True])
def test_strict_replay_binds_a_signature_to_its_first_action(tmp_path, monkeypatch, strict):
    app, key = _quiet_app(tmp_path, monkeypatch, strict_replay=strict)
    with _test_client(app) as client:
        resp, auth, ts = _signed(client, key, "CreateGroup", {"GroupId": "g", "GroupName": "G"})
        assert "Error" not in resp.json()["Response"]
        # GetGroupInfo captured and replayed as DeleteGroup: same body, same signature.
        resp, auth, ts = _signed(client, key, "GetGroupInfo", {"GroupId": "g"})
        assert resp.json()["Response"]["GroupId"] == "g"
        swapped, _, _ = _signed(client, key, "DeleteGroup", {"GroupId": "g"}, timestamp=ts,
                                authorization=auth)
        again, _, _ = _signed(client, key, "GetGroupInfo", {"GroupId": "g"}, timestamp=ts,
                              authorization=auth)
    if strict:
        err = swapped.json()["Response"]["Error"]
        assert err["Code"] == "AuthFailure.SignatureFailure" and "action" in err["Message"]
        # The same action again (an SDK retry) still works, and the group is still there.
        assert again.json()["Response"]["GroupId"] == "g"
    else:  # the documented risk of the default mode: the swap goes through
        assert "Error" not in swapped.json()["Response"]
        assert again.json()["Response"]["Error"]["Code"] == "InvalidParameterValue.GroupIdNotExist"


@pytest.mark.parametrize("separate", [True, False])
def test_metadata_actions_do_not_queue_behind_image_handlers(tmp_path, monkeypatch, separate):
    """Every image handler thread busy (held on an event): GetGroupList answers at once with
    separate pools; with one pool (OPENIAI_SEPARATE_POOLS=0) it waits for a free thread."""
    import threading

    from openiai.actions.registry import HANDLERS

    app, key = _quiet_app(tmp_path, monkeypatch, workers=4, separate_pools=separate)
    entered, release = threading.Semaphore(0), threading.Event()

    def held(ctx, req):
        entered.release()
        release.wait(30)
        return {"FaceInfos": [], "ImageWidth": 1, "ImageHeight": 1}

    monkeypatch.setitem(HANDLERS, "DetectFace", held)
    with _test_client(app) as client:
        image = [threading.Thread(target=_signed, args=(client, key, "DetectFace",
                                                        {"Image": "aGVsbG8="}))
                 for _ in range(4)]
        for t in image:
            t.start()
        try:
            for _ in image:
                assert entered.acquire(timeout=30), "an image request never reached its handler"
            answered = []
            probe = threading.Thread(target=lambda: answered.append(
                _signed(client, key, "GetGroupList", {})[0].json()["Response"]))
            probe.start()
            probe.join(timeout=5 if separate else 1.5)
            if separate:
                assert answered and answered[0]["GroupNum"] == 0, "GetGroupList waited"
            else:
                assert not answered, "one pool: GetGroupList should wait for a handler thread"
        finally:
            release.set()
            for t in image:
                t.join(30)
        probe.join(30)
        assert answered and answered[0]["GroupNum"] == 0
