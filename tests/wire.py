"""Raw HTTP against a running server with a signer written here, independent of openiai's own
signing code (so a bug shared by the server's signer and verifier cannot hide), plus the
checks every IAI response must pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import httpx

VERSION = "2020-03-03"


def _h(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_authorization(secret_id: str, secret_key: str, *, method: str, query: str,
                      content_type: str, host: str, body: bytes, timestamp: int,
                      service: str = "iai") -> str:
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    canonical = "\n".join([
        method, "/", query if method == "GET" else "",
        f"content-type:{content_type}", f"host:{host}", "",
        "content-type;host", hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{date}/{service}/tc3_request"
    sts = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
    key = _h(_h(_h(("TC3" + secret_key).encode(), date), service), "tc3_request")
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    return (f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
            f"SignedHeaders=content-type;host, Signature={sig}")


def encode_query(params: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in params.items())


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested arrays/objects as the SDKs flatten them: ``A.0``, ``A.0.Field``."""
    out: dict[str, str] = {}
    for k, v in params.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    out.update(flatten(item, f"{name}.{i}."))
                else:
                    out[f"{name}.{i}"] = str(item)
        else:
            out[name] = str(v)
    return out


class Raw:
    """One account's key and a server address; builds and sends hand-made requests."""

    def __init__(self, server, secret_id: str, secret_key: str) -> None:
        self.server, self.secret_id, self.secret_key = server, secret_id, secret_key
        self.host = server.endpoint
        self.http = httpx.Client(timeout=60)

    # ---- TC3 ---------------------------------------------------------------------------
    def tc3(self, action: str | None, params=None, *, body: bytes | None = None,
            method: str = "POST", content_type: str = "application/json",
            version: str | None = VERSION, timestamp: int | None = None,
            host_header: str | None = None, signed_host: str | None = None,
            service: str = "iai", secret_id: str | None = None, secret_key: str | None = None,
            query: str | None = None, headers: dict | None = None,
            authorization: str | None = None) -> httpx.Response:
        timestamp = int(time.time()) if timestamp is None else timestamp
        if method == "GET":
            query = encode_query(flatten(params or {})) if query is None else query
            body = b""
        elif body is None:
            body = json.dumps(params or {}).encode()
        query = query or ""
        host_header = host_header or self.host
        auth = authorization or tc3_authorization(
            secret_id or self.secret_id, secret_key or self.secret_key, method=method,
            query=query, content_type=content_type, host=signed_host or host_header, body=body,
            timestamp=timestamp, service=service)
        h = {"Authorization": auth, "Content-Type": content_type, "Host": host_header,
             "X-TC-Timestamp": str(timestamp), "X-TC-Region": "ap-guangzhou"}
        if action is not None:
            h["X-TC-Action"] = action
        if version is not None:
            h["X-TC-Version"] = version
        h.update(headers or {})
        url = f"http://{self.host}/" + (f"?{query}" if query else "")
        return self.http.request(method, url, content=body, headers=h)

    # ---- v1 (HmacSHA1 / HmacSHA256) ----------------------------------------------------
    def v1_params(self, action: str | None, params=None, *, method: str = "POST",
                  sign_method: str = "HmacSHA256", version: str | None = VERSION,
                  timestamp: int | None = None, nonce: int | None = None,
                  secret_key: str | None = None, extra: dict | None = None,
                  host: str | None = None) -> dict[str, str]:
        flat = flatten(params or {})
        common = {"Action": action, "Version": version, "Region": "ap-guangzhou",
                  "Timestamp": str(int(time.time()) if timestamp is None else timestamp),
                  "Nonce": str(random.randint(1, 2**62) if nonce is None else nonce),
                  "SecretId": self.secret_id, "SignatureMethod": sign_method}
        flat.update({k: v for k, v in common.items() if v is not None})
        flat.update(extra or {})
        sts = f"{method}{host or self.host}/?" + "&".join(
            f"{k}={flat[k]}" for k in sorted(flat) if k != "Signature")
        digest = hashlib.sha256 if sign_method == "HmacSHA256" else hashlib.sha1
        mac = hmac.new((secret_key or self.secret_key).encode(), sts.encode(), digest)
        flat["Signature"] = base64.b64encode(mac.digest()).decode()
        return flat

    def v1_send(self, flat: dict[str, str], *, method: str = "POST",
                content_type: str = "application/x-www-form-urlencoded",
                body: bytes | None = None) -> httpx.Response:
        encoded = encode_query(flat)
        if method == "GET":
            return self.http.get(f"http://{self.host}/?{encoded}")
        return self.http.post(f"http://{self.host}/", content=body if body is not None
                              else encoded.encode(), headers={"Content-Type": content_type})

    def v1(self, action: str | None, params=None, *, method: str = "POST", **kw) -> httpx.Response:
        return self.v1_send(self.v1_params(action, params, method=method, **kw), method=method)


def check(resp: httpx.Response) -> dict:
    """The envelope every IAI response must have; returns the ``Response`` object."""
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"] == "application/json", resp.headers["content-type"]
    assert "Traceback" not in resp.text
    body = resp.json()
    assert set(body) == {"Response"}, body
    out = body["Response"]
    rid = uuid.UUID(out["RequestId"])
    assert rid.version == 4 and str(rid) == out["RequestId"], out["RequestId"]
    if "Error" in out:
        assert set(out["Error"]) == {"Code", "Message"}, out
        assert out["Error"]["Code"] and out["Error"]["Message"], out
    return out


def ok(resp: httpx.Response) -> dict:
    out = check(resp)
    assert "Error" not in out, out["Error"]
    return out


def error(resp: httpx.Response) -> tuple[str, str]:
    out = check(resp)
    assert "Error" in out, f"expected an error, got {out}"
    return out["Error"]["Code"], out["Error"]["Message"]


def code(resp: httpx.Response) -> str:
    return error(resp)[0]
