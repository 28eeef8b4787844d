"""Milvus Lite for the tests: one embedded Milvus per test session (a file in a temporary
directory), each engine under its own name prefix. Where Milvus Lite cannot start (pymilvus or
milvus-lite not installed, an unsupported platform) the test is skipped with the reason printed,
never silently."""

from __future__ import annotations

import itertools
import os
import tempfile

import pytest

_prefixes = itertools.count()
_state: dict = {}


def lite_url() -> str:
    """The session's ``milvus-lite:`` URL (without a prefix), or a skip."""
    if "skip" in _state:
        print(f"\nSKIP Milvus Lite: {_state['skip']}")
        pytest.skip(_state["skip"])
    if "url" not in _state:
        try:
            from openiai.index.milvus_engine import client_for

            path = os.path.join(tempfile.mkdtemp(prefix="openiai-milvus-"), "milvus.db")
            client_for(path)
        except Exception as exc:  # not installed, or cannot run here
            _state["skip"] = f"Milvus Lite cannot start here: {exc}"
            print(f"\nSKIP Milvus Lite: {_state['skip']}")
            pytest.skip(_state["skip"])
        _state["url"] = f"milvus-lite:{path}"
    return _state["url"]


def fresh_prefix() -> str:
    return f"t{os.getpid()}n{next(_prefixes)}"


def lite_engine(options: str = ""):
    """A Milvus engine on the session's Milvus Lite under a fresh prefix; `options` are more
    URL parameters (``filter=milvus``)."""
    from openiai.index.milvus_engine import MilvusIndex

    return MilvusIndex.from_url(f"{lite_url()}?prefix={fresh_prefix()}" + (f"&{options}" if options else ""))
