"""Request validation and response shaping driven by the SDK's field table (wire_schema).

Requests are validated by pydantic models built once per (version, action): lax mode turns
form/query strings into the declared integers and floats, while a number sent for a string
field, or a word for an integer, is a type error (``InvalidParameter``). Responses are cast
field by field to the declared wire types, so an integer is never sent as ``1.0``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..core.errors import ApiError
from .wire_schema import ACTIONS, MODELS

UINT64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_SCALARS: dict[str, Any] = {
    "string": str,
    "uint64": Annotated[int, Field(ge=0, le=UINT64_MAX)],
    "int64": Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)],
    "float": float,
    "bool": bool,
}

_TYPE_NAMES = {"string": "a string", "uint64": "a non-negative integer", "int64": "an integer",
               "float": "a number", "bool": "a boolean"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=False)


def _python_type(version: str, wire: str):
    if wire.startswith("list:"):
        return list[_python_type(version, wire[5:])]
    if wire in _SCALARS:
        return _SCALARS[wire]
    return _model(version, wire)


@lru_cache(maxsize=None)
def _model(version: str, name: str) -> type[BaseModel]:
    fields = {f: (Optional[_python_type(version, t)], None) for f, t in MODELS[version][name].items()}
    return create_model(f"{name}_{version.replace('-', '')}", __base__=_Strict, **fields)


@lru_cache(maxsize=None)
def request_model(version: str, action: str) -> type[BaseModel]:
    fields = {}
    for name, (wire, required) in ACTIONS[version][action]["in"].items():
        py = _python_type(version, wire)
        fields[name] = (py, ...) if required else (Optional[py], None)
    return create_model(f"{action}_{version.replace('-', '')}", __base__=_Strict, **fields)


def _describe(version: str, action: str, loc: tuple) -> tuple[str, str | None]:
    path = ".".join(str(p) for p in loc)
    top = ACTIONS[version][action]["in"].get(str(loc[0])) if loc else None
    wire = top[0] if top and len(loc) == 1 else None
    return path, wire


# A lone UTF-16 surrogate is what JSON's "\ud800" (or the CESU bytes ED A0 80, which Python's
# JSON decoder lets through) decodes to. It is not text: it cannot be encoded as UTF-8 for the
# database, a log line or the response, so it is refused before any handler sees it. NUL is
# refused with it: PostgreSQL cannot hold it in text, so even a lookup by such an id would fail
# there, and no IAI parameter (ids, names, base64, URLs) can mean it.
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def _why(text: str) -> str:
    return ("a NUL character" if "\x00" in text
            else "a lone UTF-16 surrogate, which is not valid Unicode text")


def _refuse_surrogates(params) -> None:
    """InvalidParameter for a lone surrogate or NUL in any key or string value, at any depth.

    Iterative, so a deeply nested JSON body cannot exhaust the recursion limit here."""
    stack = [("", params)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                key = str(key)
                if _NOT_TEXT.search(key):
                    raise ApiError("InvalidParameter", f"A parameter name contains {_why(key)}.")
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}", item) for i, item in enumerate(node))
        elif isinstance(node, str) and _NOT_TEXT.search(node):
            raise ApiError("InvalidParameter",
                           f"Invalid value for parameter `{path}`: it contains {_why(node)}.")


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so that it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def validate_request(version: str, action: str, params: dict) -> BaseModel:
    _refuse_surrogates(params)
    # A null is treated as an absent field: the SDKs never send one, and JSON callers mean it so.
    cleaned = {k: v for k, v in params.items() if v is not None}
    try:
        return request_model(version, action).model_validate(cleaned)
    except ValidationError as exc:
        err = exc.errors()[0]
        path, wire = _describe(version, action, err["loc"])
        kind = err["type"]
        if kind == "missing":
            raise ApiError("MissingParameter",
                           f"The request is missing a required parameter `{path}`.") from None
        if kind == "extra_forbidden":
            raise ApiError("UnknownParameter",
                           f"The parameter `{path}` is not recognized by {action} "
                           f"(API version {version}).") from None
        expected = f" It must be {_TYPE_NAMES[wire]}." if wire in _TYPE_NAMES else ""
        raise ApiError("InvalidParameter",
                       f"Invalid value for parameter `{path}`: {err['msg']}.{expected}") from None


def _cast(version: str, wire: str, value: Any) -> Any:
    if value is None:
        return None
    if wire.startswith("list:"):
        return [_cast(version, wire[5:], v) for v in value]
    if wire in ("uint64", "int64"):
        return int(value)
    if wire == "float":
        return float(value)
    if wire == "string":
        # Whatever was stored before input was checked (a lone surrogate) must not make the
        # answer unencodable: every later read of that row would fail.
        return without_surrogates(str(value))
    if wire == "bool":
        return bool(value)
    return _shape_fields(version, MODELS[version][wire], value)


def _shape_fields(version: str, declared: dict[str, str], payload: dict) -> dict:
    return {name: _cast(version, wire, payload.get(name)) for name, wire in declared.items()}


def shape_response(version: str, action: str, payload: dict) -> dict:
    """Every declared output field, cast to its wire type; undeclared keys are dropped."""
    return _shape_fields(version, ACTIONS[version][action]["out"], payload)
