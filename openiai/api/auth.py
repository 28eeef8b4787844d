"""Checking a request's signature against the account's key: expiry, replay and the quirks
of the official clients (see ../shared/spec/CLIENTS.md).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from . import signing
from ..core.errors import ApiError
from ..store.keys import KeyRecord
from .protocol import ApiRequest, Tc3Credentials, V1Credentials

MAX_SKEW_SECONDS = 300


KeyLookup = Callable[[str], KeyRecord | None]


class _Recent:
    """What was first stored under a key within the last ``window`` seconds: the memory behind
    v1 replay protection and strict replay. Expired entries are dropped once it holds more
    than ``prune_above``."""

    def __init__(self, window: float, prune_above: int) -> None:
        self._entries: dict = {}  # key -> (value, monotonic time stored)
        self._lock = threading.Lock()
        self._window = window
        self._prune_above = prune_above

    def first(self, key, value):
        """The value stored under ``key`` within the window, or None after storing ``value``."""
        now = time.monotonic()
        with self._lock:
            if len(self._entries) > self._prune_above:
                self._entries = {k: v for k, v in self._entries.items()
                                 if now - v[1] < self._window}
            seen = self._entries.get(key)
            if seen is not None and now - seen[1] < self._window:
                return seen[0]
            self._entries[key] = (value, now)
            return None


class NonceCache:
    """v1 replay protection: a signed (SecretId, Timestamp, Nonce) is accepted once.

    The key includes the signature too: the Node SDK draws nonces from only 0..65535, so two
    honest, different requests can share a Timestamp and Nonce; a replay shares all of them
    (any change to the request changes the signature).
    """

    def __init__(self, window: int = 2 * MAX_SKEW_SECONDS) -> None:
        self._seen = _Recent(window, prune_above=10_000)

    def add(self, key: tuple[str, ...]) -> bool:
        return self._seen.first(key, True) is None


class SignatureActions:
    """Strict replay (opt-in, ``OPENIAI_STRICT_REPLAY``): a TC3 signature serves the action it
    was first used with, and no other, for as long as it is valid.

    The official clients sign only ``content-type`` and ``host``, so a captured request can be
    sent again within the 5-minute window with another ``X-TC-Action`` (a GetGroupInfo replayed
    as DeleteGroup). Remembering the first action per signature closes that. Replays of the
    same action stay accepted: the SDKs retry a request with the same signature. The memory is
    per process: several servers behind one balancer each keep their own (README).
    """

    def __init__(self, window: int = 2 * MAX_SKEW_SECONDS) -> None:
        self._first = _Recent(window, prune_above=100_000)

    def bind(self, signature: str, action: str) -> bool:
        """True if ``action`` is the one ``signature`` was first used with (remembering it)."""
        first = self._first.first(signature, action)
        return first is None or first == action


def _host_variants(host: str) -> list[str]:
    """The Host as sent, then without its port (the Node SDK signs the bare hostname)."""
    variants = [host]
    head, sep, port = host.rpartition(":")
    if sep and port.isdigit() and head:
        variants.append(head)
    return variants


def _check_timestamp(raw: str | None, now: float) -> int:
    if raw is None or raw == "":
        raise ApiError("MissingParameter", "The request is missing the Timestamp "
                       "(X-TC-Timestamp header or Timestamp parameter).")
    try:
        ts = int(raw)
    except ValueError:
        raise ApiError("InvalidParameter", f"Timestamp `{raw}` is not an integer.") from None
    if abs(now - ts) > MAX_SKEW_SECONDS:
        raise ApiError(
            "AuthFailure.SignatureExpire",
            f"The request timestamp {ts} differs from server time {int(now)} by more than "
            f"{MAX_SKEW_SECONDS // 60} minutes; check the client's clock.",
        )
    return ts


def _signature_failure() -> ApiError:
    return ApiError(
        "AuthFailure.SignatureFailure",
        "The provided credentials could not be validated. Please check your signature is correct.",
    )


def _lookup(lookup: KeyLookup, secret_id: str | None) -> KeyRecord:
    if not secret_id:
        raise ApiError("MissingParameter", "The request is missing the SecretId.")
    record = lookup(secret_id)
    if record is None:
        raise ApiError("AuthFailure.SecretIdNotFound",
                       "The SecretId does not exist or has been disabled.")
    return record


def _reject_token(token: str | None) -> None:
    if token:
        raise ApiError("AuthFailure.TokenFailure",
                       "Temporary credentials (Token) are not supported by this server yet; "
                       "use a permanent SecretId/SecretKey.")


def authenticate(req: ApiRequest, lookup: KeyLookup, nonces: NonceCache,
                 now: float | None = None, actions: SignatureActions | None = None) -> KeyRecord:
    """The key that signed ``req``; ``actions`` (strict replay) binds each TC3 signature to its
    first action."""
    now = time.time() if now is None else now
    if isinstance(req.credentials, Tc3Credentials):
        record = _verify_tc3(req, req.credentials, lookup, now)
        # A signature that covers X-TC-Action cannot be swapped; bind the others.
        if (actions is not None and "x-tc-action" not in req.credentials.signed_headers
                and not actions.bind(req.credentials.signature, req.action or "")):
            raise ApiError("AuthFailure.SignatureFailure",
                           "This signature was already used with another action: the request "
                           "was replayed with a different X-TC-Action (strict replay mode). "
                           "Sign every request afresh.")
        return record
    return _verify_v1(req, req.credentials, lookup, nonces, now)


def _verify_tc3(req: ApiRequest, c: Tc3Credentials, lookup: KeyLookup, now: float) -> KeyRecord:
    record = _lookup(lookup, c.secret_id)
    ts = _check_timestamp(c.timestamp, now)
    _reject_token(c.token)
    day = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")
    if c.date != day:
        raise ApiError("AuthFailure.SignatureFailure",
                       f"The credential date {c.date} does not match X-TC-Timestamp ({day} UTC).")
    content_sha = req.headers.get("x-tc-content-sha256")
    payload_hash = (signing.UNSIGNED_PAYLOAD if content_sha == signing.UNSIGNED_PAYLOAD
                    else signing.sha256_hex(req.body))
    query = req.raw_query if req.http_method == "GET" else ""
    scope = f"{c.date}/{c.service}/tc3_request"
    host = req.headers.get("host", "")
    for host_value in _host_variants(host):
        values = []
        for name in c.signed_headers:
            raw = host_value if name == "host" else req.headers.get(name)
            if raw is None:
                raise ApiError("AuthFailure.InvalidAuthorization",
                               f"Signed header `{name}` is not present in the request.")
            values.append((name, raw.strip()))
        # The doc says values are lower-cased; the SDKs sign them as sent. Accept either.
        for hv in {tuple(values), tuple((n, v.lower()) for n, v in values)}:
            canonical = signing.tc3_canonical_request(req.http_method, query, hv, payload_hash)
            sts = signing.tc3_string_to_sign(c.timestamp, scope, canonical)
            expected = signing.tc3_signature(record.secret_key, c.date, c.service, sts)
            if hmac.compare_digest(expected, c.signature):
                return record
    raise _signature_failure()


def _verify_v1(req: ApiRequest, c: V1Credentials, lookup: KeyLookup, nonces: NonceCache,
               now: float) -> KeyRecord:
    if not c.signature and not c.secret_id:
        raise ApiError(
            "AuthFailure.InvalidAuthorization",
            "The request is not signed: send an Authorization header (TC3-HMAC-SHA256) or the "
            "SecretId, Timestamp, Nonce and Signature parameters (HmacSHA1/HmacSHA256).",
        )
    record = _lookup(lookup, c.secret_id)
    _check_timestamp(c.timestamp, now)
    if not c.nonce:
        raise ApiError("MissingParameter", "The request is missing the Nonce parameter.")
    if not c.signature:
        raise ApiError("MissingParameter", "The request is missing the Signature parameter.")
    _reject_token(c.token)
    host = req.headers.get("host", "")
    for host_value in _host_variants(host):
        sts = signing.v1_string_to_sign(req.http_method, host_value, c.signed_params)
        expected = signing.v1_signature(record.secret_key, sts, c.method)
        if hmac.compare_digest(expected, c.signature):
            break
    else:
        raise _signature_failure()
    if not nonces.add((record.secret_id, c.timestamp or "", c.nonce, c.signature)):
        raise ApiError("AuthFailure.SignatureFailure",
                       f"Nonce {c.nonce} was already used with this timestamp: the request was "
                       "replayed. Send a fresh Nonce with every request.")
    return record
