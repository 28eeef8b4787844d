"""The published signature vectors (../shared/spec/signing_vectors_*.txt), checked byte for byte
against openiai.api.signing and end to end through openiai.api.auth.authenticate.

The files are parsed at test time, never copied. They do not state the SecretKey; the one that
reproduces every signature in them is ``SECRETKEYEXAMPLE`` (found by trying the usual example
keys: the seed docs' masked ``Gu5t9x...*****`` does not match). A test below proves that the
key reproduces the signatures the SDKs sent, so the derivation is checked, not assumed.
"""

from __future__ import annotations

import ast
import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from harness import REPO
from openiai.api import signing
from openiai.api.auth import KeyRecord, NonceCache, authenticate
from openiai.api.protocol import V1Credentials, read_request

SPEC = (REPO / ".." / "shared" / "spec").resolve()
FILES = ["signing_vectors_python_sdk.txt", "signing_vectors_node_sdk.txt"]
SECRET_ID = "AKIDEXAMPLE"
SECRET_KEY = "SECRETKEYEXAMPLE"
NOW = 1700000000


@dataclass
class Vector:
    name: str
    method: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    canonical_request: str | None = None
    string_to_sign: str | None = None
    signatures: list[str] = field(default_factory=list)  # as sent and as recomputed by the tool

    @property
    def header_map(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers}

    @property
    def is_tc3(self) -> bool:
        return "authorization" in self.header_map

    @property
    def sent_signature(self) -> str:
        if self.is_tc3:
            return re.search(r"Signature=([0-9a-f]{64})", self.header_map["authorization"]).group(1)
        return dict(parse_qsl(self.query or self.body.decode(), keep_blank_values=True))["Signature"]


def _join_escaped(lines: list[str]) -> str:
    """Lines written as ``text\\n`` (a literal backslash-n) joined back into one string."""
    return "".join(line[:-2] + "\n" if line.endswith("\\n") else line for line in lines)


def parse_vectors(path: Path) -> list[Vector]:
    blocks = re.split(r"^#{20,}\s*$", path.read_text(encoding="utf-8"), flags=re.M)
    vectors = []
    for n, block in enumerate(b for b in blocks if b.strip()):
        lines = block.strip("\n").split("\n")
        name = f"{path.stem}#{n}"
        if lines[0].startswith("# "):
            name = f"{path.stem}: {lines.pop(0)[2:].strip()}"
        method, target = lines.pop(0).split(" ", 1)
        _, _, query = target.partition("?")
        vec = Vector(name=name, method=method, query=query, headers=[], body=b"")
        section, buf = "headers", []

        def close():
            if section == "canonical":
                vec.canonical_request = _join_escaped(buf)
            elif section == "sts":
                vec.string_to_sign = _join_escaped(buf)

        for line in lines:
            if line.startswith("BODY: "):
                vec.body = ast.literal_eval(line[6:]).encode("utf-8")
                section = "after-body"
            elif line.strip() in ("CanonicalRequest:", "StringToSign:"):
                close()
                section, buf = ("canonical" if line.startswith("Canonical") else "sts"), []
            elif line.startswith("Signature sent by SDK") or line.startswith("Signature recomputed"):
                close()
                section = "done"
                vec.signatures.append(line.split(":", 1)[1].split()[0])
            elif line.startswith("sent="):
                close()
                section = "done"
                vec.signatures += re.findall(r"(?:sent|recomputed)=(\S+)", line)
            elif section == "headers":
                if line.strip():
                    k, v = line.split(":", 1)
                    vec.headers.append((k.strip(), v.strip()))
            elif section in ("canonical", "sts"):
                if line.strip() or buf:
                    buf.append(line)
        if section in ("canonical", "sts"):
            close()
        # trailing blank lines inside a section are separators, not content
        if vec.string_to_sign is not None:
            vec.string_to_sign = vec.string_to_sign.rstrip("\n")
        vectors.append(vec)
    return vectors


VECTORS = [v for f in FILES for v in parse_vectors(SPEC / f)]


def test_the_vector_files_were_parsed_completely():
    assert len(VECTORS) == 6, [v.name for v in VECTORS]
    assert sum(v.is_tc3 for v in VECTORS) == 3
    node = [v for v in VECTORS if "node" in v.name]
    assert len(node) == 2
    for v in VECTORS:
        assert v.string_to_sign, v.name
        assert len(v.signatures) == 2 and len(set(v.signatures)) == 1, v.name
        assert v.sent_signature == v.signatures[0], v.name
        if v.is_tc3:
            assert v.canonical_request and v.canonical_request.count("\n") == 7, v.name


@pytest.fixture(params=VECTORS, ids=lambda v: v.name)
def vector(request) -> Vector:
    return request.param


def _tc3_parts(v: Vector):
    auth = v.header_map["authorization"]
    cred = re.search(r"Credential=([^,\s]+)", auth).group(1)
    secret_id, date, service, _ = cred.split("/")
    signed = re.search(r"SignedHeaders=([^,\s]+)", auth).group(1).split(";")
    return secret_id, date, service, signed


def test_signature_byte_for_byte(vector):
    v = vector
    if v.is_tc3:
        secret_id, date, service, signed = _tc3_parts(v)
        assert secret_id == SECRET_ID
        # Which Host the client signed is in the vector's canonical request (Node: no port).
        signed_host = re.search(r"^host:(.*)$", v.canonical_request, flags=re.M).group(1)
        values = [(h, signed_host if h == "host" else v.header_map[h]) for h in signed]
        canonical = signing.tc3_canonical_request(
            v.method, v.query if v.method == "GET" else "", values, signing.sha256_hex(v.body))
        assert canonical == v.canonical_request
        sts = signing.tc3_string_to_sign(v.header_map["x-tc-timestamp"],
                                         f"{date}/{service}/tc3_request", canonical)
        assert sts == v.string_to_sign
        assert signing.tc3_signature(SECRET_KEY, date, service, sts) == v.sent_signature
    else:
        params = dict(parse_qsl(v.query if v.method == "GET" else v.body.decode(),
                                keep_blank_values=True))
        sts = signing.v1_string_to_sign(v.method, v.header_map["host"], params)
        assert sts == v.string_to_sign
        assert signing.v1_signature(SECRET_KEY, sts, params["SignatureMethod"]) == v.sent_signature


def test_the_sdk_signer_agrees(vector):
    """Cross-check with the Python SDK's own signing code (independent of openiai)."""
    from tencentcloud.common.sign import Sign

    v = vector
    if v.is_tc3:
        _, date, service, _ = _tc3_parts(v)
        assert Sign.sign_tc3(SECRET_KEY, date, service, v.string_to_sign) == v.sent_signature
    else:
        method = dict(parse_qsl(v.query or v.body.decode()))["SignatureMethod"]
        assert Sign.sign(SECRET_KEY, v.string_to_sign, method) == v.sent_signature


def _authenticate(v: Vector, lookup, nonces=None, now=NOW):
    async def no_multipart():
        raise AssertionError("no vector is multipart")

    req = asyncio.run(read_request(v.method, v.header_map, v.query, v.body, no_multipart))
    return req, authenticate(req, lookup, nonces or NonceCache(), now=now)


def _lookup(secret_key=SECRET_KEY):
    record = KeyRecord(SECRET_ID, secret_key, account_id=42)
    return lambda sid: record if sid == SECRET_ID else None


def test_authenticate_accepts_every_vector(vector):
    req, record = _authenticate(vector, _lookup())
    assert record.account_id == 42 and record.secret_id == SECRET_ID
    action = vector.header_map.get("x-tc-action") or dict(
        parse_qsl(vector.query or vector.body.decode()))["Action"]
    assert req.action == action and req.version == "2020-03-03"
    params = req.params()
    assert "Signature" not in params and "Nonce" not in params and "SecretId" not in params
    if action == "SearchFaces":
        assert params["GroupIds"] == ["g1", "g2"] and params["Image"] == "aGVsbG8="


@pytest.mark.parametrize("change,code", [
    ("wrong-key", "AuthFailure.SignatureFailure"),
    ("later", "AuthFailure.SignatureExpire"),
    ("earlier", "AuthFailure.SignatureExpire"),
    ("unknown-id", "AuthFailure.SecretIdNotFound"),
])
def test_authenticate_refuses_altered_context(vector, change, code):
    from openiai.core.errors import ApiError

    lookup, now = _lookup(), NOW
    if change == "wrong-key":
        lookup = _lookup("SECRETKEYEXAMPLF")
    elif change == "later":
        now = NOW + 301
    elif change == "earlier":
        now = NOW - 301
    elif change == "unknown-id":
        lookup = lambda sid: None  # noqa: E731
    with pytest.raises(ApiError) as err:
        _authenticate(vector, lookup, now=now)
    assert err.value.code == code


def test_authenticate_refuses_a_tampered_body(vector):
    from openiai.core.errors import ApiError

    v = vector
    if v.method == "GET":
        tampered = Vector(v.name, v.method, v.query.replace("g2", "g3").replace("MaxFaceNum=1",
                          "MaxFaceNum=2"), v.headers, v.body)
    else:
        tampered = Vector(v.name, v.method, v.query, v.headers,
                          v.body.replace(b"g2", b"g3").replace(b"1", b"2", 1))
    assert tampered.query != v.query or tampered.body != v.body
    with pytest.raises(ApiError) as err:
        _authenticate(tampered, _lookup())
    assert err.value.code == "AuthFailure.SignatureFailure"


def test_v1_vector_replayed_is_refused():
    from openiai.core.errors import ApiError

    v1 = [v for v in VECTORS if not v.is_tc3]
    nonces = NonceCache()
    _authenticate(v1[0], _lookup(), nonces)
    with pytest.raises(ApiError) as err:
        _authenticate(v1[0], _lookup(), nonces)
    assert err.value.code == "AuthFailure.SignatureFailure" and "replay" in err.value.message
    assert isinstance(_authenticate(v1[1], _lookup(), nonces)[0].credentials, V1Credentials)
