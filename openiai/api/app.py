"""The ASGI app: one endpoint, ``GET /`` and ``POST /``, speaking the IAI wire protocol."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ..core import timing
from ..actions.registry import Context
from ..services import Services
from ..services.links import LinkError
from ..core.settings import Settings
from .auth import NonceCache, SignatureActions, authenticate
from ..core.errors import ApiError, invalid, too_large
from .metrics import CONTENT_TYPE_LATEST, AccountNames, Metrics
from .protocol import MAX_TC3_BYTES, Tc3Credentials, read_request
from .dispatch import execute, is_image_action, prepare
from .schema import without_surrogates
from .ratelimit import RateLimiter

log = logging.getLogger("openiai.api")


def envelope(request_id: str, payload: dict | None = None, error: ApiError | None = None) -> Response:
    body = dict(payload or {})
    if error is not None:
        body = {"Error": {"Code": error.code, "Message": error.message}}
    body["RequestId"] = request_id
    text = json.dumps({"Response": body}, ensure_ascii=False)
    # An error message may quote what the caller sent, and a stored value may predate the
    # input checks: a lone surrogate there must not turn the answer into InternalError.
    text = without_surrogates(text)
    # Exactly "application/json": the Python SDK ignores Response.Error under any other type.
    return Response(text.encode("utf-8"), status_code=200, media_type="application/json")


async def _read_body(request: Request) -> bytes:
    """The body, refusing anything over the largest allowed size without buffering it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_TC3_BYTES:
        raise too_large(f"The request body ({int(declared)} bytes) exceeds the 10 MB limit.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_TC3_BYTES:
            raise too_large("The request body exceeds the 10 MB limit.")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # lets request.form() reuse what was read
    return body


def _authenticate_and_validate(req, services: Services, nonces: NonceCache, seen: dict,
                               rate_limiter: RateLimiter | None = None,
                               names: AccountNames | None = None,
                               actions: SignatureActions | None = None):
    key = authenticate(req, services.keys.lookup, nonces, actions=actions)
    seen["account_id"] = key.account_id  # for the log line, even if validation fails

    def admit(action: str) -> None:
        # After authentication (only a verified account is counted), before any parsing work.
        if rate_limiter is not None:
            rate_limiter.check(key.account_id, lambda: names(key.account_id), action)

    return key, prepare(req.version, req.action, req.params, admit)


# What a browser opening the endpoint gets: the API answers signed requests only, so instead of
# a JSON AuthFailure say what this is and where to go.
BROWSER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>openiai</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>openiai {version}</h1>
<p>A self-hosted face recognition server speaking the
<a href="https://www.tencentcloud.com/document/product/1059">Tencent Cloud Face Recognition
(IAI) API 3.0</a>. This address is its API endpoint: point the official SDKs or
<code>tccli</code> at it with a SecretId/SecretKey; it answers signed requests only.</p>
<ul>
<li>Documentation: the README of the installation (set-up, keys, clients, actions).</li>
<li>Console: <a href="/console/">/console/</a> (served by <code>openiai serve</code>); keys
are also managed on the server with <code>openiai keys</code>.</li>
<li>Status: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>,
<a href="/metrics">/metrics</a>.</li>
</ul>
</body></html>
"""


def browser_page(request: Request) -> Response | None:
    """The HTML page for a browser's plain ``GET /`` (HTML accepted, no query, no signature);
    None for anything an API client could send, which goes on to the protocol."""
    if request.method != "GET" or request.url.query or "authorization" in request.headers:
        return None
    if "text/html" not in request.headers.get("accept", ""):
        return None
    from .. import __version__

    return Response(BROWSER_PAGE.format(version=__version__).encode(),
                    media_type="text/html; charset=utf-8")


READY_CHECK_TIMEOUT_S = 5.0


def _check_database(services: Services) -> str:
    with services.db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").scalar()
    return "ok"


def _check_index(services: Services) -> str:
    index = getattr(services, "index", None)
    if index is None:
        return "no vector index"
    sync = getattr(services, "index_sync", None)
    if sync is not None and not getattr(sync, "ready", True):
        return "vector index still loading"
    index.collections()  # answers (takes the manager's table without blocking on searches)
    return "ok"


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    services = services or Services(settings or Settings.from_env())
    settings = services.settings
    limiter = anyio.CapacityLimiter(max(4, settings.workers))
    # Actions without an image get threads of their own: a GetGroupList does not wait for a
    # free handler thread behind 16 searches (README "Concurrency"; `openiai bench priority`).
    metadata_limiter = (anyio.CapacityLimiter(settings.metadata_workers)
                        if settings.separate_pools else limiter)
    signature_actions = SignatureActions() if settings.strict_replay else None
    names = AccountNames(services.db)
    metrics = Metrics(services, names)
    rate_limiter = RateLimiter.from_settings(services.settings)
    nonces = NonceCache()  # v1 signatures seen in the last 5 minutes (replay protection)

    async def endpoint(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        stages = timing.begin()  # the handler thread gets a copy of this context: same dict
        action, sign, seen = "-", None, {}
        metrics.in_progress.inc()
        try:
            if request.method not in ("GET", "POST"):
                raise ApiError("UnsupportedProtocol", f"HTTP method {request.method} is not "
                               "supported; only GET and POST requests are.")
            body = await _read_body(request)
            headers = {k.lower(): v for k, v in request.headers.items()}
            req = await read_request(
                request.method, headers, request.scope.get("query_string", b"").decode("latin-1"),
                body, lambda: _multipart_pairs(request),
            )
            action = (req.action or "-")[:64]
            sign = ("TC3-HMAC-SHA256" if isinstance(req.credentials, Tc3Credentials)
                    else req.credentials.method)
            # Key lookup (database, decryption) and parsing a body of up to 10 MB block, so
            # they run off the event loop; not under the handlers' limiter, so a cheap request
            # is not queued behind inference.
            key, call = await anyio.to_thread.run_sync(
                _authenticate_and_validate, req, services, nonces, seen, rate_limiter, names,
                signature_actions)
            action = call.action
            ctx = Context(account_id=key.account_id, version=call.version,
                          request_id=request_id, services=services)
            pool = limiter if is_image_action(call.version, action) else metadata_limiter
            fields = await anyio.to_thread.run_sync(execute, call, ctx, limiter=pool)
            with timing.stage("serialise"):
                response = envelope(request_id, fields)
            code = None
        except ApiError as exc:
            with timing.stage("serialise"):
                response = envelope(request_id, error=exc)
            code = exc.code
        except ClientDisconnect:
            # The client left (or the read timeout cut it off, api/http.py) before its body
            # arrived: nobody is waiting for an answer and the server did nothing wrong.
            code = "ClientDisconnect"  # a metrics label only; no response reaches the wire
            response = Response(status_code=400)
        except Exception:
            log.exception("unhandled error in %s (RequestId %s)", action, request_id,
                          extra={"request_id": request_id, "action": action})
            code = "InternalError"
            response = envelope(request_id, error=ApiError(
                "InternalError", f"Internal error; quote RequestId {request_id} when reporting it."))
        finally:
            metrics.in_progress.dec()
        latency = time.perf_counter() - started
        log.info("request", extra={
            "request_id": request_id, "action": action, "account_id": seen.get("account_id"),
            "http_method": request.method, "sign": sign, "code": code,
            "latency_ms": round(latency * 1000, 2),
            "stages_ms": {k: round(v * 1000, 2) for k, v in stages.items()}})
        metrics.observe(action, code, latency, stages)
        return response

    async def healthz(_request: Request) -> Response:
        """Liveness: the process serves HTTP. Readiness is /readyz."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(_request: Request) -> Response:
        """Readiness: every model loaded, database answering, vector index loaded; else 503.

        ``checks.models`` names each model of the zoo ("ok", "not loaded" or why it failed);
        ``checks.warm_up`` is "ok" once every model has run once and the attribute and
        liveness heads are loaded: every model a request may need is in before "ready"."""
        models = services.faces.status()
        checks: dict = {"models": models}
        for name, check in (("database", _check_database), ("index", _check_index)):
            try:
                with anyio.fail_after(READY_CHECK_TIMEOUT_S):
                    checks[name] = await anyio.to_thread.run_sync(check, services,
                                                                  abandon_on_cancel=True)
            except TimeoutError:
                checks[name] = f"no answer within {READY_CHECK_TIMEOUT_S:g} s"
            except Exception as exc:
                first_line = (str(exc).splitlines() or [""])[0]
                checks[name] = f"{type(exc).__name__}: {first_line}"[:300]
        checks["warm_up"] = warm["state"]
        ready = all(v == "ok" for v in [*models.values(), checks["database"], checks["index"],
                                        checks["warm_up"]])
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return Response(json.dumps(body).encode(), status_code=200 if ready else 503,
                        media_type="application/json")

    async def metrics_endpoint(_request: Request) -> Response:
        body = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    # A model counts as loaded in the zoo before its first run, and the heads files are not
    # in the zoo at all: ready means this whole warm-up finished ("ok"), or why it did not.
    warm = {"state": "loading the models and heads"}

    def warm_up() -> None:
        started = time.perf_counter()
        try:
            services.faces.warmup()
            services.attributes.warmup()
            services.liveness.head()
        except Exception as exc:  # the zoo keeps the reason; /readyz reports it per model
            log.exception("loading the face models or attribute heads failed")
            warm["state"] = f"failed: {type(exc).__name__}: {exc}"[:300]
            return
        warm["state"] = "ok"
        log.info("models loaded",
                 extra={"latency_ms": round((time.perf_counter() - started) * 1000, 2)})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # Models load in the background: /healthz answers at once, /readyz once they are in.
        threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
        services.start_jobs()  # background jobs (services/jobs.py), index writer only
        yield
        # uvicorn runs this after in-flight requests finished (or timeout_graceful_shutdown).
        services.close()
        log.info("shutdown complete")

    async def root_endpoint(request: Request) -> Response:
        return browser_page(request) or await endpoint(request)

    async def files_endpoint(request: Request) -> Response:
        """A file behind a short-lived signed link (services/links.py): 403 forged or
        expired, 404 gone."""
        try:
            path = services.links.open(request.path_params["token"])
        except LinkError as exc:
            return Response(json.dumps({"error": str(exc)}).encode(), status_code=exc.status,
                            media_type="application/json")
        media = "application/json" if path.suffix == ".json" else "application/octet-stream"
        try:
            data = await anyio.to_thread.run_sync(path.read_bytes)
        except OSError:  # removed between the check and the read
            return Response(b'{"error": "file not found"}', status_code=404,
                            media_type="application/json")
        return Response(data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{path.name}"',
                                 "Cache-Control": "no-store"})

    root = Route("/", root_endpoint)
    # Every method reaches the endpoint, so TRACE, PROPFIND or a lowercase `get` get the
    # UnsupportedProtocol envelope instead of Starlette's 405 text/plain. (A function endpoint
    # given methods=None is taken as GET only, hence the attribute set afterwards.)
    root.methods = None
    app = Starlette(routes=[
        root,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/files/{token}", files_endpoint, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.services = services
    app.state.metrics = metrics
    app.state.rate_limiter = rate_limiter
    return app


async def _multipart_pairs(request: Request) -> list[tuple[str, str]]:
    try:
        form = await request.form(max_files=0, max_fields=10_000)
    except Exception as exc:  # python-multipart raises several types for broken bodies
        raise ApiError("InvalidParameter", f"The multipart/form-data body is malformed: {exc}") from None
    pairs = []
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise invalid(f"Form field `{key}` must be a plain value, not a file upload.")
        pairs.append((key, value))
    return pairs
