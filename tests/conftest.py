"""Shared fixtures: test data location, the two tiers of clients, and their backends.

* In-process tier (``inproc``, ``engine_inproc``): actions through the API's dispatch on
  Services in this process (tests/inproc.py) - for what an action answers to its parameters:
  validation, error codes, limits, handler behaviour.
* SDK-over-HTTP tier (``api``, ``engine_api``, ``server``): a real ``openiai serve`` and the
  official SDK - for what only the wire shows: protocol, signing, both API versions through
  the SDK, server lifecycle, conformance, isolation between keys, crashes.

Both run on SQLite and PostgreSQL where storage can change the answer. ``-m inproc`` selects
the in-process tier, ``-m "not inproc"`` the rest; ``make test`` runs everything.

Storage combinations (issue 14): ``sqlite`` and ``postgres`` (each with the in-process FAISS
index) everywhere, and ``postgres+milvus`` (PostgreSQL with Milvus Lite as the vector engine,
``OPENIAI_VECTOR_URL=milvus-lite:...``) on the tests marked :func:`backends`: those whose
answer the index and the database decide (search, isolation, SIGKILL). ``-m backends`` selects
them, ``-m milvus`` their Milvus runs, ``-m "not milvus"`` leaves those out.
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path
from typing import NamedTuple

from typing import TYPE_CHECKING

import pytest

from harness import REPO, Api, Server

if TYPE_CHECKING:  # imported by the fixtures: the actions and models load only if a test asks
    from inproc import InProcessApi

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


def _postgres_or_skip():
    """(url, drop) of a throw-away PostgreSQL database, or a skip with the reason printed."""
    created, reason = _postgres_database()
    if created is None:
        print(f"\nSKIP PostgreSQL: {reason}")
        pytest.skip(reason)
    return created


# Every storage combination; the fixtures below take any of them as their (indirect) param.
STORAGES = ("sqlite", "postgres", "postgres+milvus")
MILVUS = "postgres+milvus"


def backends(fixture: str):
    """Decorator: the test runs on every storage combination (:data:`STORAGES`) through
    ``fixture`` (``inproc``, ``server`` - also behind ``api`` - or ``storage``), where the
    fixture's own params are SQLite and PostgreSQL with FAISS only. Marked ``backends``."""
    def wrap(test):
        return pytest.mark.backends(pytest.mark.parametrize(fixture, STORAGES, indirect=True)(test))
    return wrap


class Storage(NamedTuple):
    """One storage combination for a test's own server: the database URL (None: SQLite in the
    data dir) and the vector engine URL (None: in-process FAISS)."""
    name: str
    database_url: str | None
    vector_url: str | None

    def env(self) -> dict:
        """The server's extra environment: its vector engine, FAISS unless named."""
        return {"OPENIAI_VECTOR_URL": self.vector_url or ""}


def _milvus_file(directory: Path) -> str:
    """A Milvus Lite file of a server's own (one Milvus Lite process per file; the test
    process holds the session's): the URL, or a skip with the reason printed."""
    from milvus_lite_support import lite_url

    lite_url()  # skips, with the reason printed, where Milvus Lite cannot start
    directory.mkdir(parents=True, exist_ok=True)
    return f"milvus-lite:{directory / 'milvus.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request, tmp_path):
    """A :class:`Storage` for a test that runs its own server: SQLite or a throw-away
    PostgreSQL database, and with ``postgres+milvus`` (see :func:`backends`) a Milvus Lite file."""
    name = request.param
    if name == "sqlite":
        yield Storage(name, None, None)
        return
    url, drop = _postgres_or_skip()
    try:
        vector = _milvus_file(tmp_path / "milvus") if name == MILVUS else None
        yield Storage(name, url, vector)
    finally:
        drop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    """None (SQLite in the test's data dir) or the URL of a throw-away PostgreSQL database,
    for tests that run their own server or services."""
    if request.param == "sqlite":
        yield None
        return
    url, drop = _postgres_or_skip()
    yield url
    drop()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """A running server per storage backend, shared by the session's tests."""
    drop = None
    url = None
    env = {"OPENIAI_VECTOR_URL": ""}
    if request.param != "sqlite":
        url, drop = _postgres_or_skip()
    data_dir = tmp_path_factory.mktemp(f"srv-{request.param.replace('+', '-')}")
    if request.param == MILVUS:
        try:
            env["OPENIAI_VECTOR_URL"] = _milvus_file(data_dir / "milvus")
        except BaseException:
            drop()
            raise
    srv = Server(data_dir, database_url=url, extra_env=env)
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


# ---- the in-process tier ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def inproc_services(tmp_path_factory):
    """Services per storage backend, built on first use and shared by the session's tests
    (like the servers: every test gets its own account, so they never see each other)."""
    from openiai.core.settings import Settings
    from openiai.services import Services

    built, drops, unavailable = {}, [], {}

    def get(backend: str):
        if backend in unavailable:
            pytest.skip(unavailable[backend])
        if backend not in built:
            url = vector = None
            if backend == MILVUS:
                from milvus_lite_support import fresh_prefix, lite_url

                try:  # the session's Milvus Lite (in this process), under a prefix of its own
                    vector = f"{lite_url()}?prefix={fresh_prefix()}"
                except pytest.skip.Exception as exc:
                    unavailable[backend] = str(exc)
                    raise
            if backend != "sqlite":
                created, reason = _postgres_database()
                if created is None:
                    print(f"\nSKIP PostgreSQL: {reason}")
                    unavailable[backend] = reason
                    pytest.skip(reason)
                url, drop = created
                drops.append(drop)
            # The server's settings: from the environment, with its own data dir and database.
            settings = Settings.from_env(
                data_dir=tmp_path_factory.mktemp(f"inproc-{backend.replace('+', '-')}"))
            settings.database_url = url
            settings.vector_url = vector
            built[backend] = Services(settings)
        return built[backend]

    yield get
    for services in built.values():
        services.close()
    for drop in drops:
        drop()


@pytest.fixture(params=["sqlite", "postgres"])
def inproc(request, inproc_services) -> InProcessApi:
    """A fresh account on in-process Services, per storage backend (like ``api``)."""
    from inproc import InProcessApi

    services = inproc_services(request.param)
    account = f"acct{next(_accounts)}-{uuid.uuid4().hex[:6]}"
    return InProcessApi(services, services.keys.ensure_account(account))


@pytest.fixture(scope="session")
def engine_inproc(inproc_services) -> InProcessApi:
    """For the image actions that keep no state (like ``engine_api``): SQLite only."""
    from inproc import InProcessApi

    services = inproc_services("sqlite")
    return InProcessApi(services, services.keys.ensure_account("engine"))


INPROC_FIXTURES = {"inproc", "engine_inproc"}


def pytest_configure(config):
    config.addinivalue_line("markers", "inproc: calls actions in-process (tests/inproc.py); "
                                       "set from the fixtures a test uses")
    config.addinivalue_line("markers", "backends: runs on every storage combination, "
                                       "PostgreSQL + Milvus Lite included (conftest.backends)")
    config.addinivalue_line("markers", "milvus: the PostgreSQL + Milvus Lite run of a "
                                       "``backends`` test; set from its params")


def pytest_collection_modifyitems(config, items):
    """The ``inproc`` marker on tests of the in-process tier. tccli's conformance runs go
    against the SQLite server only (see test_conformance.runs_for): the PostgreSQL
    combinations are not collected, not skipped."""
    keep, drop = [], []
    for item in items:
        if INPROC_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker("inproc")
        params = getattr(getattr(item, "callspec", None), "params", {})
        if MILVUS in params.values():
            item.add_marker("milvus")
        if params.get("server") == "postgres" and str(params.get("run_id", "")).startswith("tccli"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def needs_dir(path: Path, what: str = "test images"):
    """Decorator: the test fails, saying where it looked, when ``path`` is missing. The shared
    data is part of the suite's set-up (README); a skip there could never fail (issue 17)."""
    import functools

    def wrap(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            assert path.exists(), f"{what} not found at {path}; set OPENIAI_TESTDATA or put " \
                "the shared data beside the checkout"
            return test(*args, **kwargs)
        return run
    return wrap
