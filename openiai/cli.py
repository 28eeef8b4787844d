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
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .core.settings import Settings, SettingsError

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


def _services(args):
    return open_services(_settings(args), with_index=False)  # key management never searches


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


def open_services(settings: Settings, **kwargs):
    """:class:`Services` over ``settings``, with start-up failures turned into StartupError."""
    from .services import Services

    _check_data_dir(settings.data_dir)
    with database_errors(settings):
        try:
            return Services(settings, **kwargs)
        except OSError as exc:  # master.key and friends, after the checks above passed
            raise StartupError(f"data directory {settings.data_dir.resolve()}: "
                               f"{exc.strerror or exc} ({exc.filename or ''})", EXIT_DATA_DIR) from None


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything says "listening"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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
    import uvicorn

    from .api.app import create_app
    from .api.http import MAX_HEAD_BYTES, protocol_class

    settings = _settings(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SettingsError("--tls-cert and --tls-key go together: give both or neither")
    services = open_services(settings)
    try:
        sock = bind_socket(settings.host, settings.port)
        with database_errors(settings):
            _first_key_banner(services, settings, "https" if args.tls_cert else "http")
        # h11 closes the connection on a request head over 16 KB that arrives in pieces; GET
        # queries may be 32 KB, and anything up to 1 MB should get a JSON error, not a reset.
        # Read deadlines and a connection cap (api/http.py): slow clients cannot hold the
        # server.
        http = protocol_class(header_timeout=settings.header_timeout,
                              body_timeout=settings.body_timeout,
                              max_connections=settings.max_connections)
        config = uvicorn.Config(create_app(services=services), log_level="warning",
                                log_config=None, timeout_graceful_shutdown=30,
                                h11_max_incomplete_event_size=MAX_HEAD_BYTES, http=http,
                                ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
        try:
            config.load()  # the TLS context now: a bad file is a start-up error, not a crash
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot load the TLS certificate {args.tls_cert} / key "
                               f"{args.tls_key}: {exc}; give PEM files (--tls-cert, --tls-key)",
                               EXIT_TLS) from None
    except BaseException:
        services.close()
        raise
    scheme = "https" if args.tls_cert else "http"
    bound = sock.getsockname()[1]  # --port 0 picks a free port: say which
    print(f"openiai listening on {scheme}://{settings.host}:{bound}/", flush=True)
    from .api import logs

    logs.configure(logging.INFO)
    # On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to
    # timeout_graceful_shutdown), runs the lifespan shutdown (services.close()) and then
    # re-raises the signal under the handler that was in place before it started: this one,
    # so a graceful stop exits 0 instead of dying of the signal.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.Server(config).run(sockets=[sock])
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
              "`openiai keys create --account NAME`.")


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)


def cmd_keys(args) -> int:
    services = _services(args)
    if args.keys_cmd == "create":
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
            print("no keys yet; create one with `openiai keys create --account NAME`",
                  file=sys.stderr)
    elif args.keys_cmd in ("disable", "enable"):
        if not services.keys.set_enabled(args.secret_id, args.keys_cmd == "enable"):
            print(f"no such key: {args.secret_id}", file=sys.stderr)
            return 1
        print(f"{args.secret_id} {args.keys_cmd}d")
    services.close()
    return 0


def cmd_import(args) -> int:
    from .importer import run_cli

    return run_cli(args, _settings(args))


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
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage accounts' API keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    create = ksub.add_parser("create", help="create a key (and the account if new)")
    create.add_argument("--account", required=True)
    create.add_argument("--json", action="store_true", help="print {SecretId, SecretKey} as JSON")
    lst = ksub.add_parser("list", help="list keys (never shows SecretKeys)")
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    for verb in ("disable", "enable"):
        p = ksub.add_parser(verb, help=f"{verb} a key")
        p.add_argument("secret_id")
    for p in ksub.choices.values():
        _add_common(p)
    keys.set_defaults(func=cmd_keys)

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
    }, "openiai.bench.evaluate"),  # `openiai eval --lfw DIR` stays LFW's, as before
    "bench": ("benchmarks (timings on this machine)", {
        "search": ("openiai.bench.search", "vector search latency/recall (e.g. --n 100000)"),
        "api": ("openiai.bench.api", "requests/s and latency through the SDK against a server"),
        "startup": ("openiai.bench.startup", "start-up time over a large index"),
        "attributes": ("openiai.bench.attribute_cost", "per-model cost of face attributes"),
        "engine": ("openiai.bench.engine", "ms/face of detector and recognizer, float vs int8"),
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
    except BrokenPipeError:
        # The reader stopped reading (`openiai keys list --json | head`): what it wanted it got.
        # Point stdout at /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
