"""Authentication with hand-made requests: expiry, unknown/disabled keys, bad signatures,
malformed Authorization headers, replay, temporary tokens and the official clients' quirks."""

from __future__ import annotations

import time
import uuid

import pytest

from wire import Raw, code, error, ok, tc3_authorization


@pytest.fixture
def raw(server) -> Raw:
    secret_id, secret_key = server.create_key(f"auth-{uuid.uuid4().hex[:8]}")
    return Raw(server, secret_id, secret_key)


def test_tc3_and_v1_baseline(raw):
    assert ok(raw.tc3("GetGroupList", {}))["GroupNum"] == 0
    for method in ("POST", "GET"):
        for sign in ("HmacSHA1", "HmacSHA256"):
            assert ok(raw.v1("GetGroupList", {}, method=method, sign_method=sign))["GroupNum"] == 0
    assert ok(raw.tc3("GetGroupList", {}, method="GET",
                      content_type="application/x-www-form-urlencoded"))["GroupNum"] == 0


# ---- expiry ---------------------------------------------------------------------------------

# Just outside the 300 s window, with a few seconds to spare: the client floors its clock to
# whole seconds and the server reads its own clock a moment later, so at +301 a request that
# crossed a second boundary on a busy machine landed at 300 s, inside the window (a red CI run).
@pytest.mark.parametrize("offset", [-305, 305, -86400 * 3])
def test_expired_timestamp_tc3(raw, offset):
    c, msg = error(raw.tc3("GetGroupList", {}, timestamp=int(time.time()) + offset))
    assert c == "AuthFailure.SignatureExpire" and "clock" in msg


@pytest.mark.parametrize("offset", [-305, 305])
def test_expired_timestamp_v1(raw, offset):
    assert code(raw.v1("GetGroupList", {}, timestamp=int(time.time()) + offset)) == \
        "AuthFailure.SignatureExpire"
    assert code(raw.v1("GetGroupList", {}, method="GET", sign_method="HmacSHA1",
                       timestamp=int(time.time()) + offset)) == "AuthFailure.SignatureExpire"


def test_timestamp_within_the_window(raw):
    ok(raw.tc3("GetGroupList", {}, timestamp=int(time.time()) - 240))
    ok(raw.v1("GetGroupList", {}, timestamp=int(time.time()) + 240))


def test_timestamp_that_is_not_a_number(raw):
    assert code(raw.tc3("GetGroupList", {}, timestamp=int(time.time()),
                        headers={"X-TC-Timestamp": "soon"})) == "InvalidParameter"
    flat = raw.v1_params("GetGroupList", extra={"Timestamp": "soon"})
    assert code(raw.v1_send(flat)) == "InvalidParameter"


def test_missing_timestamp(raw):
    resp = raw.tc3("GetGroupList", {}, headers={"X-TC-Timestamp": ""})
    assert code(resp) == "MissingParameter"


def test_credential_date_must_match_the_timestamp(raw):
    ts = int(time.time())
    auth = tc3_authorization(raw.secret_id, raw.secret_key, method="POST", query="",
                             content_type="application/json", host=raw.host, body=b"{}",
                             timestamp=ts - 86400 * 2)
    c, _ = error(raw.tc3("GetGroupList", body=b"{}", timestamp=ts, authorization=auth))
    assert c == "AuthFailure.SignatureFailure"


# ---- keys -----------------------------------------------------------------------------------

def test_unknown_secret_id(raw):
    c, _ = error(raw.tc3("GetGroupList", {}, secret_id="AKIDnosuchkeynosuchkeynosuchkey00"))
    assert c == "AuthFailure.SecretIdNotFound"
    raw2 = Raw(raw.server, "AKIDnosuchkey", raw.secret_key)
    assert code(raw2.v1("GetGroupList", {})) == "AuthFailure.SecretIdNotFound"


def test_disabled_key(server):
    secret_id, secret_key = server.create_key(f"auth-{uuid.uuid4().hex[:8]}")
    server._keys.set_enabled(secret_id, False)  # before its first use: nothing cached
    raw = Raw(server, secret_id, secret_key)
    assert code(raw.tc3("GetGroupList", {})) == "AuthFailure.SecretIdNotFound"
    assert code(raw.v1("GetGroupList", {})) == "AuthFailure.SecretIdNotFound"
    server._keys.set_enabled(secret_id, True)
    ok(raw.tc3("GetGroupList", {}))


def test_missing_secret_id_v1(raw):
    flat = raw.v1_params("GetGroupList")
    del flat["SecretId"]
    assert code(raw.v1_send(flat)) in ("MissingParameter", "AuthFailure.InvalidAuthorization")


def test_unsigned_request(raw):
    resp = raw.http.post(f"http://{raw.host}/", content=b"Action=GetGroupList&Version=2020-03-03",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    c, msg = error(resp)
    assert c == "AuthFailure.InvalidAuthorization" and "Authorization" in msg
    assert code(raw.http.get(f"http://{raw.host}/")) == "AuthFailure.InvalidAuthorization"


# ---- signatures -----------------------------------------------------------------------------

def test_bad_signature_tc3(raw):
    c, msg = error(raw.tc3("GetGroupList", {}, secret_key="wrong" + raw.secret_key[5:]))
    assert c == "AuthFailure.SignatureFailure" and "signature" in msg.lower()


def test_body_changed_after_signing(raw):
    ts = int(time.time())
    auth = tc3_authorization(raw.secret_id, raw.secret_key, method="POST", query="",
                             content_type="application/json", host=raw.host,
                             body=b'{"Limit": 1}', timestamp=ts)
    assert code(raw.tc3("GetGroupList", body=b'{"Limit": 2}', timestamp=ts,
                        authorization=auth)) == "AuthFailure.SignatureFailure"


def test_query_changed_after_signing(raw):
    ts = int(time.time())
    auth = tc3_authorization(raw.secret_id, raw.secret_key, method="GET", query="Limit=1",
                             content_type="application/x-www-form-urlencoded", host=raw.host,
                             body=b"", timestamp=ts)
    assert code(raw.tc3("GetGroupList", method="GET", query="Limit=2", timestamp=ts,
                        content_type="application/x-www-form-urlencoded",
                        authorization=auth)) == "AuthFailure.SignatureFailure"


def test_bad_signature_v1(raw):
    assert code(raw.v1("GetGroupList", {}, secret_key="nope")) == "AuthFailure.SignatureFailure"
    flat = raw.v1_params("GetGroupList", {"Limit": 1})
    flat["Limit"] = "2"
    assert code(raw.v1_send(flat)) == "AuthFailure.SignatureFailure"


def test_v1_signature_method_mismatch(raw):
    flat = raw.v1_params("GetGroupList", sign_method="HmacSHA1")
    flat["SignatureMethod"] = "HmacSHA256"
    assert code(raw.v1_send(flat)) == "AuthFailure.SignatureFailure"


def _malformed(raw: Raw) -> list[str]:
    ts = int(time.time())
    good = tc3_authorization(raw.secret_id, raw.secret_key, method="POST", query="",
                             content_type="application/json", host=raw.host, body=b"{}",
                             timestamp=ts)
    date = time.strftime("%Y-%m-%d", time.gmtime(ts))
    sig = good.rsplit("=", 1)[1]
    return [
        "Bearer abc",
        "TC3-HMAC-SHA256",
        "TC3-HMAC-SHA256 Credential=, SignedHeaders=content-type;host, Signature=" + sig,
        f"TC3-HMAC-SHA256 Credential={raw.secret_id}/{date}/iai, "
        f"SignedHeaders=content-type;host, Signature={sig}",
        f"TC3-HMAC-SHA256 Credential={raw.secret_id}/{date}/iai/tc4_request, "
        f"SignedHeaders=content-type;host, Signature={sig}",
        f"TC3-HMAC-SHA256 Credential={raw.secret_id}/{date}/iai/tc3_request, "
        f"SignedHeaders=content-type;host, Signature=xyz",
        f"TC3-HMAC-SHA256 Credential={raw.secret_id}/{date}/iai/tc3_request, "
        f"SignedHeaders=content-type;host",
        f"TC3-HMAC-SHA256 Credential={raw.secret_id}/{date}/iai/tc3_request, "
        f"SignedHeaders=content-type, Signature={sig}",
        f"TC3-HMAC-SHA256 Credential={raw.secret_id}/{date}/iai/tc3_request, "
        f"SignedHeaders=content-type;host;x-tc-missing, Signature={sig}",
        good.replace("TC3-HMAC-SHA256", "TC3-HMAC-SHA1"),
        "TC3-HMAC-SHA256 Credential=" + "A" * 5000,
    ]


def test_malformed_authorization(raw):
    for auth in _malformed(raw):
        c, msg = error(raw.tc3("GetGroupList", body=b"{}", authorization=auth))
        assert c == "AuthFailure.InvalidAuthorization", (auth, c, msg)
        assert "Authorization" in msg or "SignedHeaders" in msg or "header" in msg, msg


def test_signed_headers_may_include_more_headers(raw):
    """SignedHeaders is read from the Authorization header, not assumed."""
    import hashlib
    import hmac as _hmac

    ts = int(time.time())
    date = time.strftime("%Y-%m-%d", time.gmtime(ts))
    body = b"{}"
    canonical = "\n".join(["POST", "/", "", "content-type:application/json", f"host:{raw.host}",
                           "x-tc-action:getgrouplist", "", "content-type;host;x-tc-action",
                           hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["TC3-HMAC-SHA256", str(ts), f"{date}/iai/tc3_request",
                     hashlib.sha256(canonical.encode()).hexdigest()])

    def h(k, m):
        return _hmac.new(k, m.encode(), hashlib.sha256).digest()

    key = h(h(h(("TC3" + raw.secret_key).encode(), date), "iai"), "tc3_request")
    sig = _hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    auth = (f"TC3-HMAC-SHA256 Credential={raw.secret_id}/{date}/iai/tc3_request, "
            f"SignedHeaders=content-type;host;x-tc-action, Signature={sig}")
    ok(raw.tc3("GetGroupList", body=body, timestamp=ts, authorization=auth))


def test_unsigned_payload(raw):
    import hashlib

    ts = int(time.time())
    body = b'{"Limit": 3}'
    auth = tc3_authorization(raw.secret_id, raw.secret_key, method="POST", query="",
                             content_type="application/json", host=raw.host, body=b"", timestamp=ts)
    # Re-sign with UNSIGNED-PAYLOAD as the payload hash.
    import hmac as _hmac

    date = time.strftime("%Y-%m-%d", time.gmtime(ts))
    canonical = "\n".join(["POST", "/", "", "content-type:application/json", f"host:{raw.host}",
                           "", "content-type;host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["TC3-HMAC-SHA256", str(ts), f"{date}/iai/tc3_request",
                     hashlib.sha256(canonical.encode()).hexdigest()])

    def h(k, m):
        return _hmac.new(k, m.encode(), hashlib.sha256).digest()

    key = h(h(h(("TC3" + raw.secret_key).encode(), date), "iai"), "tc3_request")
    auth = auth.rsplit("=", 1)[0] + "=" + _hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    ok(raw.tc3("GetGroupList", body=body, timestamp=ts, authorization=auth,
               headers={"X-TC-Content-SHA256": "UNSIGNED-PAYLOAD"}))


# ---- replay and tokens ----------------------------------------------------------------------

def test_replayed_v1_nonce_is_refused(raw):
    flat = raw.v1_params("GetGroupList", nonce=424242)
    ok(raw.v1_send(flat))
    c, msg = error(raw.v1_send(flat))
    assert c == "AuthFailure.SignatureFailure" and "replay" in msg
    # GET replay of a GET request too
    flat = raw.v1_params("GetGroupList", method="GET", nonce=99)
    ok(raw.v1_send(flat, method="GET"))
    assert code(raw.v1_send(flat, method="GET")) == "AuthFailure.SignatureFailure"


def test_same_nonce_in_a_different_request_is_accepted(raw):
    """Node's nonces are 0..65535: two different honest requests may share one."""
    ts = int(time.time())
    ok(raw.v1("GetGroupList", {"Limit": 1}, nonce=7, timestamp=ts))
    ok(raw.v1("GetGroupList", {"Limit": 2}, nonce=7, timestamp=ts))


def test_token_is_refused(raw):
    c, msg = error(raw.tc3("GetGroupList", {}, headers={"X-TC-Token": "tmp-token"}))
    assert c == "AuthFailure.TokenFailure" and "Token" in msg
    flat = raw.v1_params("GetGroupList", extra={"Token": "tmp-token"})
    assert code(raw.v1_send(flat)) == "AuthFailure.TokenFailure"


# ---- the official clients' quirks (CLIENTS.md) ----------------------------------------------

def test_host_with_a_scheme_tccli_style(raw):
    host = f"http://{raw.host}"
    ok(raw.tc3("GetGroupList", {}, host_header=host))
    ok(raw.tc3("CreateGroup", {"GroupId": "tccli", "GroupName": "T"}, host_header=host))
    assert ok(raw.tc3("GetGroupList", {}))["GroupNum"] == 1


def test_node_style_service_and_host_without_port(raw):
    hostname = raw.host.split(":")[0]
    ok(raw.tc3("GetGroupList", {}, service="127", signed_host=hostname))
    ok(raw.tc3("GetGroupList", {}, service="localhost:8000", signed_host=hostname))


def test_v1_host_without_port(raw):
    ok(raw.v1("GetGroupList", {}, host=raw.host.split(":")[0]))


def test_wrong_host_is_refused(raw):
    assert code(raw.tc3("GetGroupList", {}, signed_host="evil.example:1")) == \
        "AuthFailure.SignatureFailure"


def test_other_accounts_key_cannot_sign_for_this_id(server, raw):
    other_id, other_key = server.create_key(f"auth-{uuid.uuid4().hex[:8]}")
    assert code(raw.tc3("GetGroupList", {}, secret_key=other_key)) == \
        "AuthFailure.SignatureFailure"


def test_official_sdk_with_scheme_in_endpoint(server):
    """The Python SDK given `http://host:port` as endpoint signs that whole string as Host."""
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.iai.v20200303 import iai_client, models

    secret_id, secret_key = server.create_key(f"auth-{uuid.uuid4().hex[:8]}")
    client = iai_client.IaiClient(
        credential.Credential(secret_id, secret_key), "ap-guangzhou",
        ClientProfile(httpProfile=HttpProfile(protocol="http",
                                              endpoint=f"http://{server.endpoint}")))
    assert client.GetGroupList(models.GetGroupListRequest()).GroupNum == 0
