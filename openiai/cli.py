"""The ``openiai`` command: serve, keys, and the engine tools (eval, calibrate)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

from .core.settings import Settings, SettingsError

SDK_SNIPPET = """\
# pip install tencentcloud-sdk-python-iai
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20200303 import iai_client, models

cred = credential.Credential("{secret_id}", "{secret_key}")
client = iai_client.IaiClient(
    cred, "ap-guangzhou",
    ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint="{host}:{port}")))
req = models.CreateGroupRequest()
req.GroupId, req.GroupName = "staff", "Staff"
print(client.CreateGroup(req).to_json_string())
"""


def _settings(args) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None), port=getattr(args, "port", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        database_url=getattr(args, "database_url", None),
        model_dir=Path(args.model_dir) if getattr(args, "model_dir", None) else None,
    )


def _services(args):
    from .services import Services
    return Services(_settings(args), with_index=False)  # key management never searches


def cmd_serve(args) -> int:
    import uvicorn

    from .api.app import create_app

    settings = _settings(args)
    from .services import Services
    services = Services(settings)
    if not services.keys.has_keys():
        secret_id, secret_key = services.keys.create_key("default")
        print("Created a first account `default` with this key (shown once; keep it safe):")
        print(f"  SecretId:  {secret_id}\n  SecretKey: {secret_key}\n")
        print("Python SDK example:\n")
        client_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        print(SDK_SNIPPET.format(secret_id=secret_id, secret_key=secret_key,
                                 host=client_host, port=settings.port))
    else:
        print("Keys exist already; list them with `openiai keys list`, make one with "
              "`openiai keys create --account NAME`.")
    print(f"openiai listening on http://{settings.host}:{settings.port}/", flush=True)
    from .api import logs

    logs.configure(logging.INFO)
    # h11 closes the connection on a request head over 16 KB that arrives in pieces; GET
    # queries may be 32 KB, and anything up to 1 MB should get a JSON error, not a reset.
    # On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to
    # timeout_graceful_shutdown), runs the lifespan shutdown (services.close()) and then
    # re-raises the signal under the handler that was in place before it started: this one,
    # so a graceful stop exits 0 instead of dying of the signal.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from .api.http import MAX_HEAD_BYTES, protocol_class

    # Read deadlines and a connection cap (api/http.py): slow clients cannot hold the server.
    http = protocol_class(header_timeout=settings.header_timeout,
                          body_timeout=settings.body_timeout,
                          max_connections=settings.max_connections)
    uvicorn.run(create_app(services=services), host=settings.host, port=settings.port,
                log_level="warning", log_config=None, timeout_graceful_shutdown=30,
                h11_max_incomplete_event_size=MAX_HEAD_BYTES, http=http)
    return 0


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
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the API server")
    _add_common(serve)
    serve.add_argument("--host", help="bind address (OPENIAI_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (OPENIAI_PORT, default 8000)")
    serve.add_argument("--model-dir", help="directory of model files (OPENIAI_MODEL_DIR)")
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

    ev = sub.add_parser("eval", help="evaluate the engine: `openiai eval lfw` (recognition), "
                        "`openiai eval attributes` (face attributes and landmarks), "
                        "`openiai eval liveness` (DetectLiveFace*)")
    ev.add_argument("rest", nargs=argparse.REMAINDER)
    ev.set_defaults(func=lambda a: _delegate(
        EVAL_MODULES.get(a.rest[0], "openiai.bench.evaluate") if a.rest else "openiai.bench.evaluate",
        a.rest[1:] if a.rest[:1] and a.rest[0] in EVAL_MODULES else a.rest))

    bench = sub.add_parser("bench", help="benchmarks (e.g. `openiai bench search --n 100000`, "
                           "`openiai bench api`)")
    bench.add_argument("what", choices=["search", "api", "startup", "attributes"])
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=lambda a: _delegate(
        "openiai.bench.attribute_cost" if a.what == "attributes" else f"openiai.bench.{a.what}",
        a.rest))

    cal = sub.add_parser("calibrate", help="measure impostor scores and write the score table")
    cal.add_argument("rest", nargs=argparse.REMAINDER)
    cal.set_defaults(func=lambda a: _delegate("openiai.bench.calibrate", a.rest))
    return parser


# `openiai eval NAME ...`: the module whose main() evaluates NAME; anything else is LFW's.
EVAL_MODULES = {"attributes": "openiai.bench.attributes", "liveness": "openiai.bench.liveness"}


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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:  # one clear line, not a traceback
        print(f"openiai: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
