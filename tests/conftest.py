"""Shared fixtures: test data location, real servers on SQLite and PostgreSQL, SDK clients."""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import pytest

from harness import REPO, Api, Server

TESTDATA = Path(os.environ.get("OPENIAI_TESTDATA", REPO / ".." / "shared" / "faces")).resolve()
PG_ADMIN_URL = os.environ.get("OPENIAI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_accounts = itertools.count()


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"test images not found at {TESTDATA}; set OPENIAI_TESTDATA")
    return TESTDATA


def _postgres_database():
    """Create a throw-away PostgreSQL database; (url, drop) or a skip reason."""
    try:
        import psycopg2

        admin = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
    except Exception as exc:  # no server here: the SQLite run still covers everything
        return None, f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
    admin.autocommit = True
    name = f"openiai_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]

    def drop():
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return (f"postgresql+psycopg2://{base.split('://', 1)[1]}/{name}", drop), None


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    """None (SQLite in the test's data dir) or the URL of a throw-away PostgreSQL database,
    for tests that run their own server or services."""
    if request.param == "sqlite":
        yield None
        return
    created, reason = _postgres_database()
    if created is None:
        print(f"\nSKIP PostgreSQL: {reason}")
        pytest.skip(reason)
    url, drop = created
    yield url
    drop()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """A running server per storage backend, shared by the session's tests."""
    drop = None
    url = None
    if request.param == "postgres":
        created, reason = _postgres_database()
        if created is None:
            print(f"\nSKIP PostgreSQL: {reason}")
            pytest.skip(reason)
        url, drop = created
    srv = Server(tmp_path_factory.mktemp(f"srv-{request.param}"), database_url=url)
    srv.start()
    yield srv
    srv.stop()
    if drop:
        drop()


@pytest.fixture
def api(server) -> Api:
    """A fresh account (so tests never see each other's data) with a TC3 POST client."""
    secret_id, secret_key = server.create_key(f"acct{next(_accounts)}-{uuid.uuid4().hex[:6]}")
    return Api(server, secret_id, secret_key)


@pytest.fixture(scope="session")
def engine_server(tmp_path_factory):
    """One SQLite-backed server for the image actions that keep no state (DetectFace,
    AnalyzeFace, CompareFace): storage backends cannot change their answers."""
    srv = Server(tmp_path_factory.mktemp("srv-engine"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def engine_api(engine_server) -> Api:
    secret_id, secret_key = engine_server.create_key("engine")
    return Api(engine_server, secret_id, secret_key)


def pytest_collection_modifyitems(config, items):
    """tccli's conformance runs go against the SQLite server only (see
    test_conformance.runs_for): the PostgreSQL combinations are not collected, not skipped."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("server") == "postgres" and str(params.get("run_id", "")).startswith("tccli"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
