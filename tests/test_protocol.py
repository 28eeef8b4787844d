"""The wire protocol with hand-made HTTP requests: body formats, limits, parameter parsing and
the error envelope. Every response goes through ``wire.check`` (HTTP 200, Content-Type exactly
application/json, uuid4 RequestId, Error.Code/Message, no traceback)."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from wire import Raw, check, code, error, ok


@pytest.fixture
def raw(server) -> Raw:
    secret_id, secret_key = server.create_key(f"proto-{uuid.uuid4().hex[:8]}")
    return Raw(server, secret_id, secret_key)


# ---- bodies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body,needle", [
    (b'{"GroupId": "g", ', "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"[1, 2]", "must be an object"),
    (b'"GroupId"', "must be an object"),
    (b"null", "must be an object"),
    (b"", "empty"),
    (b"   \n", "empty"),
    (b'{"Limit": NaN}', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
])
def test_bad_json_bodies(raw, body, needle):
    c, msg = error(raw.tc3("GetGroupList", body=body))
    assert c == "InvalidParameter"
    assert needle.lower() in msg.lower(), msg


def test_bad_json_is_reported_after_the_signature(raw):
    # A bad signature on a broken body is an auth failure, not a parameter one.
    assert code(raw.tc3("GetGroupList", body=b"{oops", secret_key="x" * 32)) == \
        "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_tc3_post_with_unsupported_content_type(raw, content_type):
    c, msg = error(raw.tc3("GetGroupList", body=b"{}", content_type=content_type))
    assert c == "InvalidParameter" and "Content-Type" in msg


def test_v1_post_with_json_content_type(raw):
    flat = raw.v1_params("GetGroupList")
    c, msg = error(raw.v1_send(flat, content_type="application/json",
                               body=json.dumps(flat).encode()))
    assert c == "InvalidParameter" and "TC3-HMAC-SHA256" in msg


def test_tc3_body_over_10_mb(raw):
    body = json.dumps({"GroupId": "g", "GroupName": "x" * (10 * 1024 * 1024)}).encode()
    c, msg = error(raw.tc3("CreateGroup", body=body))
    assert c == "RequestSizeLimitExceeded" and "10 MB" in msg


def test_tc3_body_just_under_10_mb_is_read(raw):
    body = json.dumps({"GroupId": "g", "GroupName": "x" * (10 * 1024 * 1024 - 100)}).encode()
    assert len(body) < 10 * 1024 * 1024
    assert code(raw.tc3("CreateGroup", body=body)) == "InvalidParameterValue.GroupNameTooLong"


def test_v1_form_over_1_mb(raw):
    flat = raw.v1_params("CreateGroup", {"GroupId": "g", "GroupName": "x" * (1024 * 1024)})
    c, msg = error(raw.v1_send(flat))
    assert c == "RequestSizeLimitExceeded" and "1 MB" in msg


def test_get_query_over_32_kb(raw):
    c, msg = error(raw.tc3("CreateGroup", {"GroupId": "g", "GroupName": "x" * (33 * 1024)},
                           method="GET", content_type="application/x-www-form-urlencoded"))
    assert c == "RequestSizeLimitExceeded" and "32 KB" in msg
    c, msg = error(raw.v1("CreateGroup", {"GroupId": "g", "GroupName": "x" * (33 * 1024)},
                          method="GET"))
    assert c == "RequestSizeLimitExceeded" and "32 KB" in msg


def test_get_query_between_16_and_32_kb_is_read(raw):
    """Longer than the HTTP parser's default line limit (16 KB), within the API's 32 KB."""
    resp = raw.tc3("CreateGroup", {"GroupId": "g", "GroupName": "x" * (24 * 1024)},
                   method="GET", content_type="application/x-www-form-urlencoded")
    assert code(resp) == "InvalidParameterValue.GroupNameTooLong"


# ---- action / version -----------------------------------------------------------------------

def test_unknown_action(raw):
    c, msg = error(raw.tc3("CreateBanana", {}))
    assert c == "InvalidAction" and "CreateBanana" in msg
    assert code(raw.v1("CreateBanana", {})) == "InvalidAction"


def test_unknown_version(raw):
    c, msg = error(raw.tc3("GetGroupList", {}, version="2099-01-01"))
    assert c == "NoSuchVersion" and "2099-01-01" in msg
    assert code(raw.v1("GetGroupList", {}, version="2017-03-12")) == "NoSuchVersion"


def test_missing_action_or_version(raw):
    c, msg = error(raw.tc3(None, {}))
    assert c == "MissingParameter" and "Action" in msg
    c, msg = error(raw.tc3("GetGroupList", {}, version=None))
    assert c == "MissingParameter" and "Version" in msg
    assert code(raw.v1(None, {})) == "MissingParameter"
    assert code(raw.v1("GetGroupList", {}, version=None)) == "MissingParameter"


def test_unsupported_operation(raw):
    from openiai.actions.registry import HANDLERS
    from openiai.api.wire_schema import ACTIONS

    # The server process registers the same handlers as this one imports.
    missing = sorted(set(ACTIONS["2020-03-03"]) - set(HANDLERS))
    if not missing:
        pytest.skip("every action of the API is implemented")
    action = "GetUpgradeGroupFaceModelVersionResult" if \
        "GetUpgradeGroupFaceModelVersionResult" in missing else missing[-1]
    c, msg = error(raw.tc3(action, {}))
    assert c == "UnsupportedOperation" and action in msg


def test_other_http_methods(raw):
    for method in ("PUT", "DELETE", "PATCH"):
        resp = raw.http.request(method, f"http://{raw.host}/", content=b"{}",
                                headers={"Content-Type": "application/json"})
        assert code(resp) == "UnsupportedProtocol"


# ---- parameter formats ----------------------------------------------------------------------

def test_multipart_form_data_with_dotted_arrays(raw):
    import httpx

    fields = {"GroupId": "mp", "GroupName": "Multipart", "GroupExDescriptions.0": "Dept",
              "GroupExDescriptions.1": "工号"}
    req = httpx.Request("POST", "http://x/", files={k: (None, v) for k, v in fields.items()})
    body = req.read()
    content_type = req.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    ok(raw.tc3("CreateGroup", body=body, content_type=content_type))
    info = ok(raw.tc3("GetGroupInfo", {"GroupId": "mp"}))
    assert info["GroupName"] == "Multipart" and info["GroupExDescriptions"] == ["Dept", "工号"]


def test_multipart_with_a_file_part_is_refused(raw):
    import httpx

    req = httpx.Request("POST", "http://x/", files={"GroupId": ("a.txt", b"g", "text/plain")},
                        data={"GroupName": "n"})
    body = req.read()
    c, msg = error(raw.tc3("CreateGroup", body=body, content_type=req.headers["content-type"]))
    assert c == "InvalidParameter"


def test_broken_multipart(raw):
    c, _ = error(raw.tc3("CreateGroup", body=b"--nope\r\nnot multipart",
                         content_type="multipart/form-data; boundary=xyz"))
    assert c == "InvalidParameter"


def test_get_with_dotted_arrays_objects_and_int_coercion(raw):
    get = dict(method="GET", content_type="application/x-www-form-urlencoded")
    ok(raw.tc3("CreateGroup", {"GroupId": "q", "GroupName": "Query",
                               "GroupExDescriptions": ["A", "B"]}, **get))
    ok(raw.tc3("ModifyGroup", {"GroupId": "q", "GroupExDescriptionInfos": [
        {"GroupExDescriptionIndex": 1, "GroupExDescription": "Bee"}]}, **get))
    info = ok(raw.tc3("GetGroupInfo", {"GroupId": "q"}, **get))
    assert info["GroupExDescriptions"] == ["A", "Bee"]
    assert isinstance(info["CreationTimestamp"], int)
    for i in range(3):
        ok(raw.tc3("CreateGroup", {"GroupId": f"q{i}", "GroupName": f"Q{i}"}, **get))
    page = ok(raw.tc3("GetGroupList", {"Offset": "1", "Limit": "2"}, **get))
    assert page["GroupNum"] == 4 and len(page["GroupInfos"]) == 2


def test_v1_form_with_dotted_arrays_and_coercion(raw):
    ok(raw.v1("CreateGroup", {"GroupId": "f", "GroupName": "Form",
                              "GroupExDescriptions": ["A", "B"]}))
    ok(raw.v1("ModifyGroup", {"GroupId": "f", "GroupExDescriptionInfos": [
        {"GroupExDescriptionIndex": "0", "GroupExDescription": "Aye"}]}, sign_method="HmacSHA1"))
    info = ok(raw.v1("GetGroupInfo", {"GroupId": "f"}, method="GET"))
    assert info["GroupExDescriptions"] == ["Aye", "B"]
    assert ok(raw.v1("GetGroupList", {"Limit": "1"}))["GroupNum"] == 1


@pytest.mark.parametrize("query,needle", [
    ("GroupExDescriptions.1=a&GroupId=g&GroupName=n", "indexes"),
    ("GroupExDescriptions.%C2%B2=a&GroupId=g&GroupName=n", ""),
    ("GroupExDescriptions..0=a&GroupId=g&GroupName=n", "Malformed"),
    ("GroupId=g&GroupId=h&GroupName=n", "more than once"),
    ("GroupExDescriptions=a&GroupExDescriptions.0=b&GroupId=g&GroupName=n", ""),
])
def test_malformed_dotted_names(raw, query, needle):
    c, msg = error(raw.tc3("CreateGroup", method="GET", query=query,
                           content_type="application/x-www-form-urlencoded"))
    assert c in ("InvalidParameter", "UnknownParameter"), (c, msg)
    assert needle in msg


@pytest.mark.parametrize("params,expected,needle", [
    ({"Limit": "abc"}, "InvalidParameter", "Limit"),
    ({"Limit": 1.5}, "InvalidParameter", "Limit"),
    ({"Limit": -1}, "InvalidParameter", "Limit"),
    ({"Offset": -5}, "InvalidParameter", "Offset"),
    ({"Limit": [1]}, "InvalidParameter", "Limit"),
    ({"Limit": 2**64}, "InvalidParameter", "Limit"),
    ({"Banana": 1}, "UnknownParameter", "Banana"),
])
def test_wrong_types_in_json(raw, params, expected, needle):
    c, msg = error(raw.tc3("GetGroupList", params))
    assert c == expected and needle in msg, (c, msg)


@pytest.mark.parametrize("params,expected,needle", [
    ({"GroupId": 5, "GroupName": "n"}, "InvalidParameter", "GroupId"),
    ({"GroupId": "g", "GroupName": ["n"]}, "InvalidParameter", "GroupName"),
    ({"GroupId": "g", "GroupName": "n", "GroupExDescriptions": "A"}, "InvalidParameter",
     "GroupExDescriptions"),
    ({"GroupId": "g", "GroupName": "n", "GroupExDescriptions": [1]}, "InvalidParameter",
     "GroupExDescriptions"),
    ({"GroupName": "n"}, "MissingParameter", "GroupId"),
    ({"GroupId": "g"}, "MissingParameter", "GroupName"),
    ({"GroupId": "g", "GroupName": "n", "Extra": 1}, "UnknownParameter", "Extra"),
])
def test_create_group_types(raw, params, expected, needle):
    c, msg = error(raw.tc3("CreateGroup", params))
    assert c == expected and needle in msg, (c, msg)


def test_nested_object_field_types(raw):
    ok(raw.tc3("CreateGroup", {"GroupId": "n", "GroupName": "N", "GroupExDescriptions": ["A"]}))
    c, msg = error(raw.tc3("ModifyGroup", {"GroupId": "n", "GroupExDescriptionInfos": [
        {"GroupExDescriptionIndex": "zero", "GroupExDescription": "x"}]}))
    assert c == "InvalidParameter" and "GroupExDescriptionInfos.0.GroupExDescriptionIndex" in msg
    c, msg = error(raw.tc3("ModifyGroup", {"GroupId": "n", "GroupExDescriptionInfos": [
        {"GroupExDescriptionIndex": 0, "Bogus": "x"}]}))
    assert c == "UnknownParameter" and "Bogus" in msg


def test_json_null_is_an_absent_field(raw):
    assert ok(raw.tc3("GetGroupList", {"Limit": None}))["GroupNum"] == 0


def test_unicode_round_trip(raw):
    ok(raw.tc3("CreateGroup", {"GroupId": "u", "GroupName": "员工 😀"}))
    assert ok(raw.tc3("GetGroupInfo", {"GroupId": "u"}))["GroupName"] == "员工 😀"


def test_healthz(server):
    import httpx

    resp = httpx.get(f"http://{server.endpoint}/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


# ---- in-process app: forced failures ---------------------------------------------------------

@pytest.fixture
def asgi_post(tmp_path):
    """Signed POSTs to an app built in this process, through Starlette's TestClient."""
    import time as _time
    import warnings

    from openiai.api.app import create_app
    from openiai.core.settings import Settings
    from wire import tc3_authorization

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
        from starlette.testclient import TestClient

    app = create_app(Settings(data_dir=tmp_path))
    secret_id, secret_key = app.state.services.keys.create_key("inproc")

    def post(action: str, body: bytes = b"{}"):
        ts = int(_time.time())
        headers = {
            "Content-Type": "application/json", "Host": "testserver", "X-TC-Action": action,
            "X-TC-Version": "2020-03-03", "X-TC-Timestamp": str(ts),
            "Authorization": tc3_authorization(
                secret_id, secret_key, method="POST", query="", content_type="application/json",
                host="testserver", body=body, timestamp=ts),
        }
        return client.post("/", content=body, headers=headers)

    with TestClient(app) as client:
        yield post


def test_unexpected_exception_is_an_internal_error(asgi_post, monkeypatch, caplog):
    from openiai.actions import registry

    def explode(ctx, model):
        raise RuntimeError("kaboom secret-detail")

    monkeypatch.setitem(registry.HANDLERS, "GetGroupList", explode)
    caplog.set_level(logging.INFO, logger="openiai")
    resp = asgi_post("GetGroupList")
    out = check(resp)
    assert out["Error"]["Code"] == "InternalError"
    rid = out["RequestId"]
    assert rid in out["Error"]["Message"] and "kaboom" not in resp.text
    logged = [r for r in caplog.records if r.exc_info and rid in r.getMessage()]
    assert logged and logged[0].request_id == rid
    assert "kaboom" in logging.Formatter().formatException(logged[0].exc_info)
    summary = [r for r in caplog.records if getattr(r, "request_id", None) == rid
               and r.getMessage() == "request"]
    assert summary and summary[0].code == "InternalError" and summary[0].action == "GetGroupList"


def test_internal_error_log_line_is_json(asgi_post, monkeypatch, caplog):
    from openiai.actions import registry
    from openiai.api.logs import JsonFormatter

    monkeypatch.setitem(registry.HANDLERS, "GetGroupList",
                        lambda ctx, model: 1 / 0)
    caplog.set_level(logging.INFO, logger="openiai")
    rid = check(asgi_post("GetGroupList"))["RequestId"]
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records
             if getattr(r, "request_id", None) == rid]
    assert {line["msg"] for line in lines} >= {"request"}
    exc = [line for line in lines if "exc" in line]
    assert exc and "ZeroDivisionError" in exc[0]["exc"] and exc[0]["request_id"] == rid


def test_unsupported_operation_in_process(asgi_post, monkeypatch):
    from openiai.actions import registry

    monkeypatch.delitem(registry.HANDLERS, "GetGroupList")
    c, msg = error(asgi_post("GetGroupList"))
    assert c == "UnsupportedOperation" and "GetGroupList" in msg


def test_request_log_lines_carry_no_images_or_secrets(raw):
    """The live server's log: one JSON line per request with the documented fields, and
    nothing of the request body."""
    import base64
    import time as _time

    sentinel = base64.b64encode(b"SENTINEL-IMAGE-BYTES" * 50).decode()
    rid = check(raw.tc3("DetectFace", {"Image": sentinel}))["RequestId"]
    rid2 = check(raw.tc3("CreateGroup", {"GroupId": "log", "GroupName": "n" * 100}))["RequestId"]
    deadline = _time.time() + 5
    while _time.time() < deadline:
        text = raw.server.log_path.read_text(errors="replace")
        if rid2 in text:
            break
        _time.sleep(0.1)
    assert sentinel[:40] not in text and raw.secret_key not in text and "n" * 100 not in text
    lines = [json.loads(line) for line in text.splitlines()
             if line.startswith("{") and (rid in line or rid2 in line)]
    summary = {line["request_id"]: line for line in lines if line["msg"] == "request"}
    assert set(summary) == {rid, rid2}
    for line in summary.values():
        assert {"request_id", "action", "account_id", "latency_ms", "code", "ts",
                "level"} <= set(line)
        assert isinstance(line["latency_ms"], float) and isinstance(line["account_id"], int)
    assert summary[rid]["action"] == "DetectFace"
    assert summary[rid2]["code"] == "InvalidParameterValue.GroupNameTooLong"


def test_log_line_has_the_account_when_validation_fails(asgi_post, caplog):
    caplog.set_level(logging.INFO, logger="openiai")
    rid = check(asgi_post("GetGroupList", b'{"Limit": "abc"}'))["RequestId"]
    line = [r for r in caplog.records if getattr(r, "request_id", None) == rid][0]
    assert line.code == "InvalidParameter" and isinstance(line.account_id, int)
