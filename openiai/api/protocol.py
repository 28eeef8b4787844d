"""Reading an IAI request off the wire: which signature style, common parameters, business
parameters from JSON, form, multipart or query, and dotted keys rebuilt into arrays/objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from ..core.errors import ApiError, invalid, too_large

# Body limits from the seed's Request Structure: GET 32 KB, v1 POST 1 MB, TC3 POST 10 MB.
MAX_GET_BYTES = 32 * 1024
MAX_V1_BYTES = 1024 * 1024
MAX_TC3_BYTES = 10 * 1024 * 1024
# Dotted form/query keys are rebuilt recursively; the deepest request field of the wire schema
# is `List.N.Field` (3 parts), so 8 leaves room while keeping a 3,000-part key from exhausting
# the recursion limit (tests/test_hardening.py checks the schema still fits).
MAX_KEY_DEPTH = 8

V1_COMMON = (
    "Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "SignatureMethod",
    "Signature", "Token", "Language", "RequestClient",
)


@dataclass
class Tc3Credentials:
    secret_id: str
    date: str
    service: str
    signed_headers: list[str]
    signature: str
    timestamp: str | None
    token: str | None


@dataclass
class V1Credentials:
    secret_id: str | None
    signature: str | None
    method: str  # "HmacSHA1" or "HmacSHA256"
    timestamp: str | None
    nonce: str | None
    token: str | None
    signed_params: dict[str, str]  # every parameter as sent (business and common), flat


@dataclass
class ApiRequest:
    http_method: str
    action: str | None
    version: str | None
    region: str | None
    credentials: Tc3Credentials | V1Credentials
    raw_query: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    flat_params: list[tuple[str, str]] | None = None  # form/query input, before rebuilding
    json_params: object = None  # JSON input

    def params(self) -> dict:
        """Business parameters: nested objects and arrays rebuilt, common ones stripped."""
        if self.flat_params is not None:
            common = V1_COMMON if isinstance(self.credentials, V1Credentials) else ()
            return rebuild_dotted([(k, v) for k, v in self.flat_params if k not in common])
        data = self.json_params.load() if isinstance(self.json_params, _LazyJson) else {}
        if not isinstance(data, dict):
            raise invalid("The JSON request body must be an object.")
        return data


_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<sh>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-fA-F]{64})\s*$"
)


def parse_tc3_authorization(value: str) -> tuple[str, str, str, list[str], str]:
    """(secret_id, date, service, signed_headers, signature) or AuthFailure.InvalidAuthorization."""
    m = _AUTH_RE.match(value.strip())
    parts = m.group("cred").split("/") if m else []
    if not m or len(parts) != 4 or parts[3] != "tc3_request" or not all(parts):
        raise ApiError(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is malformed; expected 'TC3-HMAC-SHA256 "
            "Credential=<SecretId>/<YYYY-MM-DD>/<service>/tc3_request, "
            "SignedHeaders=<h1;h2>, Signature=<64 hex digits>'.",
        )
    signed = m.group("sh").lower().split(";")
    if "host" not in signed or "content-type" not in signed:
        raise ApiError(
            "AuthFailure.InvalidAuthorization",
            "SignedHeaders must include content-type and host.",
        )
    return parts[0], parts[1], parts[2], signed, m.group("sig").lower()


def rebuild_dotted(pairs: list[tuple[str, str]]) -> dict:
    """``GroupIds.0=a``, ``X.0.Field=b`` -> ``{"GroupIds": ["a"], "X": [{"Field": "b"}]}``."""
    root: dict = {}
    for key, value in pairs:
        parts = key.split(".", MAX_KEY_DEPTH)
        if len(parts) > MAX_KEY_DEPTH:
            raise invalid(f"Parameter name `{key[:100]}...` is nested more than {MAX_KEY_DEPTH} "
                          "levels deep.")
        if any(p == "" for p in parts):
            raise invalid(f"Malformed parameter name `{key}`.")
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            existing = node.get(part)
            if last:
                if existing is not None:
                    raise invalid(f"Parameter `{key}` is given more than once.")
                node[part] = value
            else:
                if existing is None:
                    existing = node[part] = {}
                elif not isinstance(existing, dict):
                    raise invalid(f"Parameter `{key}` conflicts with `{'.'.join(parts[:i + 1])}`.")
                node = existing
    return _listify(root)


_INDEX = re.compile(r"[0-9]{1,6}")


def _listify(node):
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(_INDEX.fullmatch(k) for k in items):
        indexes = sorted(int(k) for k in items)
        if indexes != list(range(len(indexes))):
            raise invalid(f"Array indexes must run 0..N-1 without gaps, got {indexes}.")
        return [items[str(i)] for i in indexes]
    return items


def header(headers: dict[str, str], name: str) -> str | None:
    return headers.get(name.lower())


async def read_request(method: str, headers: dict[str, str], raw_query: str, body: bytes,
                       form_parser) -> ApiRequest:
    """Build an :class:`ApiRequest`; ``form_parser`` parses a multipart body (async callable)."""
    authorization = header(headers, "authorization")
    content_type = (header(headers, "content-type") or "").strip()
    media_type = content_type.split(";", 1)[0].strip().lower()

    if method == "GET" and len(raw_query.encode()) > MAX_GET_BYTES:
        raise too_large(f"A GET request may carry at most {MAX_GET_BYTES // 1024} KB of "
                        "parameters.")

    if authorization:
        return await _read_tc3(method, headers, raw_query, body, authorization, media_type,
                               form_parser)
    return _read_v1(method, headers, raw_query, body, media_type)


async def _read_tc3(method, headers, raw_query, body, authorization, media_type, form_parser):
    if method == "POST" and len(body) > MAX_TC3_BYTES:
        raise too_large(f"The request body exceeds {MAX_TC3_BYTES // (1024 * 1024)} MB, the "
                        "limit for TC3-HMAC-SHA256 requests.")
    secret_id, date, service, signed, sig = parse_tc3_authorization(authorization)
    creds = Tc3Credentials(
        secret_id=secret_id, date=date, service=service, signed_headers=signed, signature=sig,
        timestamp=header(headers, "x-tc-timestamp"), token=header(headers, "x-tc-token"),
    )
    req = ApiRequest(
        http_method=method,
        action=header(headers, "x-tc-action"),
        version=header(headers, "x-tc-version"),
        region=header(headers, "x-tc-region"),
        credentials=creds, raw_query=raw_query, body=body, headers=headers,
    )
    if method == "GET":
        req.flat_params = parse_qsl(raw_query, keep_blank_values=True)
    elif media_type == "application/json":
        req.json_params = _LazyJson(body)
    elif media_type == "multipart/form-data":
        req.flat_params = await form_parser()
    elif media_type == "application/x-www-form-urlencoded":
        req.flat_params = _parse_form(body)
    else:
        raise invalid(
            f"Content-Type `{media_type or '(none)'}` is not supported for TC3-HMAC-SHA256 POST "
            "requests; use application/json or multipart/form-data."
        )
    return req


def _read_v1(method, headers, raw_query, body, media_type):
    if method == "POST":
        if len(body) > MAX_V1_BYTES:
            raise too_large("The request body exceeds 1 MB, the limit for HmacSHA1/HmacSHA256 "
                            "requests; use TC3-HMAC-SHA256 for larger requests.")
        if media_type != "application/x-www-form-urlencoded":
            raise invalid(
                f"Content-Type `{media_type or '(none)'}` needs a TC3-HMAC-SHA256 Authorization "
                "header; HmacSHA1/HmacSHA256 requests are sent as "
                "application/x-www-form-urlencoded."
            )
        pairs = _parse_form(body)
    else:
        pairs = parse_qsl(raw_query, keep_blank_values=True)
    flat: dict[str, str] = {}
    for k, v in pairs:
        if k in flat:
            raise invalid(f"Parameter `{k}` is given more than once.")
        flat[k] = v
    creds = V1Credentials(
        secret_id=flat.get("SecretId"), signature=flat.get("Signature"),
        method="HmacSHA256" if flat.get("SignatureMethod") == "HmacSHA256" else "HmacSHA1",
        timestamp=flat.get("Timestamp"), nonce=flat.get("Nonce"), token=flat.get("Token"),
        signed_params=flat,
    )
    return ApiRequest(
        http_method=method, action=flat.get("Action"), version=flat.get("Version"),
        region=flat.get("Region"), credentials=creds, raw_query=raw_query, body=body,
        headers=headers, flat_params=pairs,
    )


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("The form body is not valid UTF-8.") from None
    return parse_qsl(text, keep_blank_values=True)


class _LazyJson:
    """JSON parsed after the signature check, so a bad signature is reported first."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def load(self):
        if not self.body.strip():
            raise invalid("The request body is empty; send a JSON object (`{}` when the action "
                          "takes no parameters).")
        try:
            return json.loads(self.body, parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise invalid(f"The request body is not valid JSON: {exc}.") from None
        except RecursionError:
            raise invalid("The request body is not valid JSON: it is nested too deeply.") from None


def _no_constant(name: str):
    raise ValueError(f"`{name}` is not a JSON number")
