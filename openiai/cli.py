"""The ``openiai`` command: serve, keys, and the engine tools (eval, calibrate)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .core.settings import Settings, SettingsError, holds_data, usual_data_dirs

# Exit statuses of a command that cannot start (README "Operations"); each comes with one line
# on stderr saying what failed, where, and what to do.
EXIT_SETTINGS = 2  # a flag or environment variable has an unusable value
EXIT_DATA_DIR = 3  # the data directory cannot be created or written
EXIT_DATABASE = 4  # the database cannot be opened, migrated or written
EXIT_ADDRESS = 5  # the address/port cannot be bound
EXIT_TLS = 6  # the TLS certificate or key cannot be loaded


class StartupError(Exception):
    """A reason to stop that the operator can fix: printed as one line, exits ``status``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

SDK_SNIPPET = """\
# pip install tencentcloud-sdk-python-iai
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20200303 import iai_client, models

cred = credential.Credential("{secret_id}", "{secret_key}")
client = iai_client.IaiClient(
    cred, "ap-guangzhou",
    ClientProfile(httpProfile=HttpProfile(protocol="{scheme}", endpoint="{host}:{port}")))
req = models.CreateGroupRequest()
req.GroupId, req.GroupName = "staff", "Staff"
print(client.CreateGroup(req).to_json_string())
"""


def _settings(args) -> Settings:
    port = getattr(args, "port", None)
    if port is not None and not 0 <= port <= 65535:
        raise SettingsError(f"--port {port} is not a TCP port: expected 1-65535 (0: any free one)")
    return Settings.from_env(
        host=getattr(args, "host", None), port=getattr(args, "port", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        database_url=getattr(args, "database_url", None),
        model_dir=Path(args.model_dir) if getattr(args, "model_dir", None) else None,
    )


def _services(args, full: bool = False):
    """Keys and database (``full``: the whole Services, for commands that call actions)."""
    settings = _settings(args)
    where = whereabouts(settings)  # before opening: that creates the folder and the key file
    # Key management never searches; most of it needs no model code either.
    services = open_services(settings, with_index=False, keys_only=not full)
    tell(where)
    return services


class KeyServices:
    """The database and the key store, without the face pipeline: what `keys` and `accounts`
    need, and a second faster to start than :class:`~openiai.services.Services`."""

    def __init__(self, settings: Settings) -> None:
        from .store.db import Database
        from .store.keys import KeyStore, load_master_key

        self.settings = settings
        self.db = Database(settings.db_url)
        try:
            self.db.migrate()
            self.keys = KeyStore(self.db, load_master_key(settings.master_key_path),
                                 cache_seconds=settings.key_cache_seconds)
        except BaseException:
            self.db.dispose()
            raise

    def close(self) -> None:
        self.db.dispose()


def _database_shown(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(settings.db_url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: opening it says what is wrong
        return "(the --database-url / OPENIAI_DATABASE_URL value)"


def whereabouts(settings: Settings) -> list[str]:
    """What a command says first (on stderr, so --json stays clean): the data directory and
    database it uses, and, when it is about to start a new, empty data directory while one
    with data exists in a usual place (OPENIAI_DATA_DIR, ./data of the checkout or the home
    folder), that one. Computed before anything is created."""
    data_dir = settings.data_dir.resolve()
    lines = [f"openiai: data directory {data_dir}, database {_database_shown(settings)}"]
    if not holds_data(data_dir):
        others = []
        for d in usual_data_dirs():
            d = d.resolve()
            if d != data_dir and d not in others and holds_data(d):
                others.append(d)
        if others:
            lines.append(
                f"openiai: note: {data_dir} holds no openiai data: this starts a NEW, empty one "
                f"(new keys, no groups), but {others[0]} holds data. To use that one, pass "
                f"--data-dir {others[0]} (or set OPENIAI_DATA_DIR to it).")
    return lines


def tell(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr, flush=True)


def _check_data_dir(data_dir: Path) -> None:
    """The data directory exists (created if not) and accepts new files."""
    shown = data_dir.resolve()
    fix = "choose another with --data-dir or OPENIAI_DATA_DIR"
    if data_dir.exists() and not data_dir.is_dir():
        raise StartupError(f"data directory {shown} is a file, not a folder; {fix}", EXIT_DATA_DIR)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create data directory {shown}: {exc.strerror or exc}; {fix}",
                           EXIT_DATA_DIR) from None
    try:  # access() says yes to root on a read-only mount; only a real file tells
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise StartupError(f"data directory {shown} is not writable: {exc.strerror or exc}; fix "
                           f"its permissions or {fix}", EXIT_DATA_DIR) from None


def _database_error(settings: Settings, exc: Exception) -> StartupError:
    from sqlalchemy.engine import make_url

    try:
        where = make_url(settings.db_url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say so without echoing a password
        where = "the --database-url / OPENIAI_DATABASE_URL value"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = reason[0] if reason else type(exc).__name__
    if "readonly" in reason or "read-only" in reason:
        fix = "make the database file (and its folder) writable by this user"
    elif settings.db_url.startswith("sqlite"):
        fix = "check the file and its folder, or set --database-url / OPENIAI_DATABASE_URL"
    else:
        fix = ("check that the database server is running and reachable, and the URL "
               "(--database-url / OPENIAI_DATABASE_URL)")
    return StartupError(f"cannot use the database {where}: {reason}; {fix}", EXIT_DATABASE)


@contextlib.contextmanager
def database_errors(settings: Settings):
    """Database failures (unreachable server, read-only file) as one line, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        raise _database_error(settings, exc) from None
    except ImportError as exc:  # a URL whose driver is not installed (postgresql+psycopg)
        raise StartupError(f"no database driver for {settings.db_url.split(':', 1)[0]}: {exc}; "
                           "use postgresql+psycopg2:// (installed) or install the driver",
                           EXIT_DATABASE) from None


def open_services(settings: Settings, keys_only: bool = False, **kwargs):
    """:class:`Services` over ``settings`` (``keys_only``: :class:`KeyServices`), with
    start-up failures turned into StartupError."""
    _check_data_dir(settings.data_dir)
    with database_errors(settings):
        try:
            if keys_only:
                return KeyServices(settings)
            from .services import Services

            return Services(settings, **kwargs)
        except OSError as exc:  # master.key and friends, after the checks above passed
            raise StartupError(f"data directory {settings.data_dir.resolve()}: "
                               f"{exc.strerror or exc} ({exc.filename or ''})", EXIT_DATA_DIR) from None


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything says "listening"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (an
    # accepted socket inherits 0 otherwise), and without it a keep-alive response waits ~40 ms
    # for the client's delayed ACK between its head and body writes (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            what = (f"port {port} is already in use on {host} (another openiai or program); "
                    "stop it or choose another with --port / OPENIAI_PORT")
        elif exc.errno == errno.EACCES:
            what = (f"not allowed to listen on {where} (ports below 1024 need privileges); "
                    "choose another with --port / OPENIAI_PORT")
        elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            what = (f"{host} is not an address of this machine; set --host / OPENIAI_HOST "
                    "(127.0.0.1 for this machine only, 0.0.0.0 for every interface)")
        else:
            what = f"cannot listen on {where}: {exc.strerror or exc}"
        raise StartupError(what, EXIT_ADDRESS) from None
    sock.set_inheritable(True)
    return sock


def cmd_serve(args) -> int:
    settings = _settings(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SettingsError("--tls-cert and --tls-key go together: give both or neither")
    if args.workers < 1:
        raise SettingsError(f"--workers {args.workers}: at least 1")
    if args.workers > 1:
        return _serve_workers(args, settings)
    where = whereabouts(settings)
    services = open_services(settings)
    try:
        sock = bind_socket(settings.host, settings.port)
        config = _uvicorn_config(args, settings, services)
        tell(where)  # after every check: a failure to start stays one line
        with database_errors(settings):
            _first_key_banner(services, settings, "https" if args.tls_cert else "http")
    except BaseException:
        services.close()
        raise
    _announce(args, sock)
    _run_uvicorn(config, sock)
    return 0


def _announce(args, sock) -> None:
    scheme = "https" if args.tls_cert else "http"
    host, bound = sock.getsockname()[:2]  # --port 0 picks a free port: say which
    print(f"openiai listening on {scheme}://{host}:{bound}/", flush=True)


def _uvicorn_config(args, settings: Settings, services):
    import uvicorn

    from .api.app import create_app
    from .api.http import MAX_HEAD_BYTES, protocol_class

    # h11 closes the connection on a request head over 16 KB that arrives in pieces; GET
    # queries may be 32 KB, and anything up to 1 MB should get a JSON error, not a reset.
    # Read deadlines and a connection cap (api/http.py): slow clients cannot hold the
    # server.
    http = protocol_class(header_timeout=settings.header_timeout,
                          body_timeout=settings.body_timeout,
                          max_connections=settings.max_connections)
    from .console import mount as mount_console

    app = create_app(services=services)
    mount_console(app)  # the web console at /console/ (README "Console")
    config = uvicorn.Config(app, log_level="warning",
                            log_config=None, timeout_graceful_shutdown=30,
                            h11_max_incomplete_event_size=MAX_HEAD_BYTES, http=http,
                            ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    try:
        config.load()  # the TLS context now: a bad file is a start-up error, not a crash
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot load the TLS certificate {args.tls_cert} / key "
                           f"{args.tls_key}: {exc}; give PEM files (--tls-cert, --tls-key)",
                           EXIT_TLS) from None
    return config


def _run_uvicorn(config, sock) -> None:
    import uvicorn

    from .api import logs

    logs.configure(logging.INFO)
    # On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to
    # timeout_graceful_shutdown), runs the lifespan shutdown (services.close()) and then
    # re-raises the signal under the handler that was in place before it started: this one,
    # so a graceful stop exits 0 instead of dying of the signal.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_workers(args, settings: Settings) -> int:
    """``serve --workers N``: N forked worker processes accept on one listening socket, each
    with its own Services (database pool, models, vector index kept in step through the change
    log); worker 0 alone writes index snapshots and prunes the log. A worker that dies is
    started again; SIGTERM / SIGINT stop them all gracefully."""
    where = whereabouts(settings)
    sock = bind_socket(settings.host, settings.port)
    services = open_services(settings, with_index=False)
    try:
        tell(where)
        with database_errors(settings):
            _first_key_banner(services, settings, "https" if args.tls_cert else "http")
    finally:
        services.close()
    children: dict[int, int] = {}
    stopping = False

    def spawn(i: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 1
            try:
                worker = open_services(settings, index_writer=(i == 0))
                _run_uvicorn(_uvicorn_config(args, settings, worker), sock)
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 0
            except BaseException as exc:  # reported, then the parent starts it again
                print(f"openiai worker {i}: {exc}", file=sys.stderr, flush=True)
            finally:
                os._exit(status)
        children[pid] = i

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for i in range(args.workers):
        spawn(i)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _announce(args, sock)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        i = children.pop(pid, None)
        if i is not None and not stopping:
            print(f"openiai: worker {i} (pid {pid}) ended ({status}); starting it again",
                  file=sys.stderr, flush=True)
            time.sleep(0.5)
            spawn(i)
    return 0


def cmd_index(args) -> int:
    """``openiai index rebuild``: the vector engine (OPENIAI_VECTOR_URL) rebuilt from the
    database's tables, at the log position they were read at."""
    settings = _settings(args)
    if args.vector_url:
        settings.vector_url = args.vector_url
    started = time.perf_counter()
    services = open_services(settings, background=False)
    try:
        with database_errors(settings):
            services.index_sync.rebuild()
            services.index_sync.catch_up()
            if services.index_sync.snapshot_dir is not None:
                services.index_sync.snapshot()  # the next start loads this (FAISS) / prunes
        index = services.index
        faces = sum(index.counts(a, v)["faces"] for a, v in index.collections())
        engine = index.describe() if hasattr(index, "describe") else "faiss (in-process)"
        print(json.dumps({"engine": engine, "seq": index.last_seq, "collections": len(index.collections()),
                          "faces": faces, "seconds": round(time.perf_counter() - started, 3)}))
    finally:
        services.close()
    return 0


def _first_key_banner(services, settings: Settings, scheme: str) -> None:
    if not services.keys.has_keys():
        secret_id, secret_key = services.keys.create_key("default")
        print("Created a first account `default` with this key (shown once; keep it safe):")
        print(f"  SecretId:  {secret_id}\n  SecretKey: {secret_key}\n")
        print("Python SDK example:\n")
        client_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        print(SDK_SNIPPET.format(secret_id=secret_id, secret_key=secret_key, scheme=scheme,
                                 host=client_host, port=settings.port))
    else:
        print("Keys exist already; list them with `openiai keys list`, make one with "
              "`openiai keys create --account NAME` (add --create for a new account).")


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)


def cmd_keys(args) -> int:
    from .store.keys import check_account_name

    if args.keys_cmd == "create":
        check_account_name(args.account)
    services = _services(args)
    if args.keys_cmd == "create":
        if services.keys.account_id(args.account) is None and not args.create:
            services.close()
            print(f"openiai: there is no account named {args.account!r}; to create it with this "
                  "key, run the command again with --create (existing accounts: "
                  "`openiai accounts list`)", file=sys.stderr)
            return 1
        secret_id, secret_key = services.keys.create_key(args.account)
        if args.json:
            print(json.dumps({"SecretId": secret_id, "SecretKey": secret_key}))
        else:
            print(f"Account:   {args.account}\nSecretId:  {secret_id}\nSecretKey: {secret_key}")
    elif args.keys_cmd == "list":
        rows = []
        for k in services.keys.list_keys():
            created = datetime.fromtimestamp(k.created_ms / 1000, timezone.utc).isoformat(
                timespec="seconds")
            rows.append({"SecretId": k.secret_id, "Account": k.account,
                         "Status": "enabled" if k.enabled else "disabled", "Created": created})
        if args.json:
            print(json.dumps(rows, indent=2))
        elif rows:
            print("SecretId\tAccount\tStatus\tCreated")
            for r in rows:
                print("\t".join(r.values()))
        else:
            print("no keys yet; create one with `openiai keys create --account NAME --create`",
                  file=sys.stderr)
    elif args.keys_cmd in ("disable", "enable"):
        if not services.keys.set_enabled(args.secret_id, args.keys_cmd == "enable"):
            print(f"no such key: {args.secret_id}", file=sys.stderr)
            return 1
        print(f"{args.secret_id} {args.keys_cmd}d")
    services.close()
    return 0


def cmd_admin_token(args) -> int:
    """A console admin token (shown once; only its SHA-256 is stored in the data dir)."""
    from .store.admin_tokens import AdminTokens

    settings = _settings(args)
    tell(whereabouts(settings))
    _check_data_dir(settings.data_dir)
    tokens = AdminTokens(settings.data_dir)
    if args.revoke_all:
        print(f"revoked {tokens.revoke_all()} admin token(s)")
        return 0
    print(tokens.create())
    return 0


def cmd_accounts(args) -> int:
    # delete --force deletes groups and persons through the actions: the whole Services.
    services = _services(args, full=args.accounts_cmd == "delete" and args.force)
    try:
        return _accounts(services, args)
    finally:
        services.close()


def _accounts(services, args) -> int:
    from .store.keys import AccountError

    keys = services.keys
    if args.accounts_cmd == "list":
        rows = [{"Account": a.name, "Keys": a.keys, "Groups": a.groups, "Persons": a.persons,
                 "Created": datetime.fromtimestamp(a.created_ms / 1000, timezone.utc)
                 .isoformat(timespec="seconds")} for a in keys.list_accounts()]
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        elif rows:
            print("Account\tKeys\tGroups\tPersons\tCreated")
            for r in rows:
                print("\t".join(str(v) for v in r.values()))
        else:
            print("no accounts yet; create one with `openiai accounts create NAME`",
                  file=sys.stderr)
        return 0
    if args.accounts_cmd == "create":
        keys.create_account(args.name)
        print(f"account {args.name} created; give it a key with "
              f"`openiai keys create --account {args.name}`")
        return 0
    if args.accounts_cmd == "rename":
        keys.rename_account(args.old, args.new)
        print(f"account {args.old} renamed to {args.new} (its keys and data go with it)")
        return 0
    # delete
    info = next((a for a in keys.list_accounts() if a.name == args.name), None)
    if info is None:
        raise AccountError(f"no account named {args.name!r}")
    if info.has_data and not args.force:
        print(f"openiai: account {args.name!r} still has {info.keys} key(s), {info.groups} "
              f"group(s) and {info.persons} person(s); nothing deleted. Add --force to delete "
              "the account with all of them.", file=sys.stderr)
        return 1
    _delete_account_data(services, info.id)
    keys.delete_account(args.name)
    print(f"account {args.name} deleted ({info.keys} key(s), {info.groups} group(s), "
          f"{info.persons} person(s))")
    return 0


def _delete_account_data(services, account_id: int) -> None:
    """Every group and person of the account, through the API's own DeleteGroup and
    DeletePerson: faces leave the vector index by the change log as with any API call."""
    from .api.dispatch import dispatch

    def call(action: str, **params) -> dict:
        return dispatch(services, account_id, "2020-03-03", action, params)

    while groups := call("GetGroupList", Limit=1000).get("GroupInfos"):
        for g in groups:
            call("DeleteGroup", GroupId=g["GroupId"])
    from sqlalchemy import select

    from .store.schema import Person

    with services.db.read() as s:  # persons in no group (none through the API, but be sure)
        left = list(s.scalars(select(Person.person_id).where(Person.account_id == account_id)))
    for person_id in left:
        call("DeletePerson", PersonId=person_id)


def cmd_import(args) -> int:
    from .importer import run_cli

    settings = _settings(args)
    tell(whereabouts(settings))
    return run_cli(args, settings)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory (OPENIAI_DATA_DIR, default ./data)")
    p.add_argument("--database-url", help="SQLAlchemy URL (OPENIAI_DATABASE_URL); "
                   "default SQLite in the data directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openiai", description=__doc__)
    parser.add_argument("--version", action="version", version=f"openiai {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the API server")
    _add_common(serve)
    serve.add_argument("--host", help="bind address (OPENIAI_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (OPENIAI_PORT, default 8000)")
    serve.add_argument("--model-dir", help="directory of model files (OPENIAI_MODEL_DIR)")
    serve.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS (with --tls-key)")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes on one socket (default 1; use PostgreSQL)")
    serve.set_defaults(func=cmd_serve)

    idx = sub.add_parser("index", help="the vector index: `openiai index rebuild`")
    isub = idx.add_subparsers(dest="index_cmd", required=True)
    rebuild = isub.add_parser("rebuild", help="rebuild the vector engine from the database")
    _add_common(rebuild)
    rebuild.add_argument("--vector-url", help="engine to rebuild (OPENIAI_VECTOR_URL)")
    idx.set_defaults(func=cmd_index)

    keys = sub.add_parser("keys", help="manage accounts' API keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    create = ksub.add_parser("create", help="create a key of an account")
    create.add_argument("--account", required=True, help="the account the key belongs to")
    create.add_argument("--create", action="store_true",
                        help="create the account if it does not exist (without: refused, so "
                        "a typo does not make a new account)")
    create.add_argument("--json", action="store_true", help="print {SecretId, SecretKey} as JSON")
    lst = ksub.add_parser("list", help="list keys (never shows SecretKeys)")
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    for verb in ("disable", "enable"):
        p = ksub.add_parser(verb, help=f"{verb} a key")
        p.add_argument("secret_id")
    for p in ksub.choices.values():
        _add_common(p)
    keys.set_defaults(func=cmd_keys)

    adm = sub.add_parser("admin-token", help="make a web console admin token (shown once)")
    adm.add_argument("--revoke-all", action="store_true", help="revoke every admin token")
    _add_common(adm)
    adm.set_defaults(func=cmd_admin_token)
    accounts = sub.add_parser("accounts", help="manage accounts (tenants)")
    asub = accounts.add_subparsers(dest="accounts_cmd", required=True)
    alist = asub.add_parser("list", help="list accounts with their keys, groups and persons")
    alist.add_argument("--json", action="store_true", help="print a JSON array")
    asub.add_parser("create", help="create an account").add_argument("name")
    ren = asub.add_parser("rename", help="rename an account (keys and data stay with it)")
    ren.add_argument("old")
    ren.add_argument("new")
    dele = asub.add_parser("delete", help="delete an account (refused while it has keys or "
                           "data, unless --force)")
    dele.add_argument("name")
    dele.add_argument("--force", action="store_true",
                      help="also delete its keys, groups, persons and faces")
    for p in asub.choices.values():
        _add_common(p)
    accounts.set_defaults(func=cmd_accounts)

    imp = sub.add_parser("import", help="enrol a folder of person folders into a group "
                         "(e.g. `openiai import photos/ --group staff`)")
    from .importer import add_arguments as _import_arguments
    _import_arguments(imp)
    _add_common(imp)
    imp.add_argument("--model-dir", help="directory of model files (OPENIAI_MODEL_DIR)")
    imp.set_defaults(func=cmd_import)

    mdl = sub.add_parser("models", help="list the model files this configuration loads")
    mdl.add_argument("--model-dir", help="directory of model files (OPENIAI_MODEL_DIR)")
    mdl.add_argument("--load", action="store_true", help="load each model (checks its sha256)")
    mdl.add_argument("--json", action="store_true", help="print a JSON array")
    mdl.set_defaults(func=cmd_models)

    # The engine tools parse their own options (each module's main); `--help` and a bare
    # command are answered here so that neither starts minutes of work.
    for name, (summary, tools, default) in TOOLS.items():
        p = sub.add_parser(name, help=summary, description=summary, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=lambda a, name=name: _run_tool(name, a.rest))
    return parser


# Tool command -> (summary, {name: (module, what it does)}, module for anything else or None).
TOOLS: dict[str, tuple[str, dict[str, tuple[str, str]], str | None]] = {
    "eval": ("evaluate the engine on the shared test data (minutes each)", {
        "lfw": ("openiai.bench.evaluate",
                "recognition: LFW 6000-pair verification accuracy, FAR of the score table"),
        "attributes": ("openiai.bench.attributes", "face attributes and landmarks"),
        "liveness": ("openiai.bench.liveness",
                     "DetectLiveFace*: subject-held-out APCER/BPCER/AUC and cost"),
        "maskcompare": ("openiai.bench.maskcompare",
                        "CompareMaskFace: LFW with one face masked, real masked photos"),
        "similarity": ("openiai.bench.similarity",
                       "DetectFaceSimilarity: FAR/TAR at 70 on LFW and CelebA-HQ"),
        "calibration": ("openiai.bench.calibration",
                        "CompareFace 3.0: FAR at 40/50/60 on LFW and CelebA-HQ held-out"),
        "celeba-far": ("openiai.bench.celeba_far",
                       "score table FAR on CelebA-HQ held-out identities (--model-version)"),
        "similar-persons": ("openiai.bench.similar_persons",
                            "CheckSimilarPerson: planted duplicates in a 4,000-person LFW gallery"),
    }, "openiai.bench.evaluate"),  # `openiai eval --lfw DIR` stays LFW's, as before
    "bench": ("benchmarks (timings on this machine)", {
        "search": ("openiai.bench.search", "vector search latency/recall (e.g. --n 100000)"),
        "api": ("openiai.bench.api", "requests/s and latency through the SDK against a server"),
        "startup": ("openiai.bench.startup", "start-up time over a large index"),
        "attributes": ("openiai.bench.attribute_cost", "per-model cost of face attributes"),
        "console": ("openiai.bench.console",
                    "web console page load times over 10,000 persons (--shots DIR: screenshots)"),
        "priority": ("openiai.bench.priority",
                     "GetGroupList p50/p99 idle and under image load, one pool vs separate"),
        "engine": ("openiai.bench.engine", "ms/face of detector and recognizer, float vs int8"),
        "upgrade": ("openiai.bench.upgrade",
                    "a group's 2.0 -> 3.0 upgrade job (--faces 10000), searches beside it"),
    }, None),
    "quantize": ("build the int8 SFace recognizer (reproducible; prints its sha256)", {},
                 "openiai.bench.quantize"),
    "calibrate": ("measure LFW impostor scores and write a score table to --out FILE "
                  "(the shipped table only with --replace-shipped)", {},
                  "openiai.bench.calibrate"),
}


def _run_tool(name: str, rest: list[str]) -> int:
    summary, tools, default = TOOLS[name]
    if rest[:1] and rest[0] in tools:
        return _delegate(tools[rest[0]][0], rest[1:])
    if rest[:1] in (["-h"], ["--help"]):
        if not tools:
            return _delegate(default, ["--help"])
        print(f"usage: openiai {name} {{{','.join(tools)}}} [options]\n\n{summary}\n")
        for sub, (module, what) in tools.items():
            print(f"== openiai {name} {sub}: {what}")
            _module_help(module)
        return 0
    if not rest and tools:  # bare: say what each would run, start nothing
        print(f"openiai {name}: {summary}. Name one to run it:")
        for sub, (_module, what) in tools.items():
            print(f"  openiai {name} {sub:<12} {what}")
        print(f"Options of each: openiai {name} --help (or openiai {name} NAME --help).")
        return 0
    if default is None:
        print(f"openiai {name}: unknown {rest[0]!r}; one of: {', '.join(tools)}", file=sys.stderr)
        return EXIT_SETTINGS
    return _delegate(default, rest)


def _module_help(module: str) -> None:
    """A tool's own --help (its argparse exits after printing)."""
    try:
        _delegate(module, ["--help"])
    except SystemExit:
        pass
    print()


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    return importlib.import_module(module).main(argv) or 0


def cmd_models(args) -> int:
    """The model zoo as this configuration resolves it: name, file, source, state."""
    from .services.faces import FacePipeline

    pipeline = FacePipeline.from_settings(_settings(args))
    if args.load:
        try:
            pipeline.warmup()  # tries every model; the zoo keeps each failure for below
        except Exception:
            pass
    rows = pipeline.zoo.describe()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']}\t{r['state']}\t{r['file']}\n\t{r['source']}")
    return 0 if all(r["state"] == "ok" for r in rows) or not args.load else 1


def main(argv: list[str] | None = None) -> int:
    from .store.keys import AccountError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in TOOLS:
        # argparse would take a tool's leading --help for its own; the tool answers it instead.
        def run() -> int:
            return _run_tool(argv[0], argv[1:])
    else:
        args = build_parser().parse_args(argv)

        def run() -> int:
            return args.func(args)
    try:
        status = run()
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at exit
        return status
    except SettingsError as exc:  # one clear line, not a traceback
        print(f"openiai: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    except StartupError as exc:
        print(f"openiai: {exc}", file=sys.stderr)
        return exc.status
    except AccountError as exc:  # an empty, taken or unknown account name
        print(f"openiai: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader stopped reading (`openiai keys list --json | head`): what it wanted it got.
        # Point stdout at /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
