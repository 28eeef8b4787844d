"""Signature computation for TC3-HMAC-SHA256 and the v1 HmacSHA1/HmacSHA256 methods.

Pure functions over strings and bytes, so the published test vectors can check them byte for
byte. Verification policy (which variants of Host to try, replay, expiry) lives in auth.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence

TC3_ALGORITHM = "TC3-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_canonical_request(
    method: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    payload_hash: str,
) -> str:
    """``headers`` are (lower-case name, value) pairs in SignedHeaders order."""
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in headers)
    signed = ";".join(name for name, _ in headers)
    return f"{method}\n/\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}"


def tc3_string_to_sign(timestamp: int | str, scope: str, canonical_request: str) -> str:
    return f"{TC3_ALGORITHM}\n{timestamp}\n{scope}\n{sha256_hex(canonical_request.encode('utf-8'))}"


def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(k_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def v1_string_to_sign(method: str, host: str, params: Mapping[str, str]) -> str:
    """``METHOD + Host + "/?" + k=v&...`` sorted by key bytes, raw values, Signature left out."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{method}{host}/?{query}"


def v1_signature(secret_key: str, string_to_sign: str, method: str) -> str:
    digest = hashlib.sha256 if method == "HmacSHA256" else hashlib.sha1
    mac = hmac.new(secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), digest)
    return base64.b64encode(mac.digest()).decode("ascii")
