"""The console's pages: a Starlette app mounted at ``/console`` by ``openiai serve``.

Every page that reads or changes an account's data calls the API's own actions through
:func:`openiai.api.dispatch.dispatch` with the signed-in account's id: the same validation,
limits, error codes and account wall as a signed API request. Two reads that no action offers
(the persons of a group matching a text, and a face's stored crop for its thumbnail) are
account-scoped queries in :mod:`openiai.store.repo`. An admin session (``openiai
admin-token``) sees accounts, keys and the server's metrics, never an account's groups.
"""

from __future__ import annotations

import base64
import io
import hmac
import logging
import math
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import anyio
from PIL import Image as PILImage
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..api.dispatch import dispatch
from ..core import timing
from ..core.errors import ApiError, failed, value
from ..services import jobs
from ..store import repo
from ..store.admin_tokens import AdminTokens, digest
from ..store.schema import Account
from ..vision.image import sniff_format
from .dashboard import Dashboard
from .sessions import COOKIE, Session, SessionStore, csrf_ok

log = logging.getLogger("openiai.console")

HERE = Path(__file__).parent
V2020, V2018 = "2020-03-03", "2018-03-01"
PAGE_SIZE = 50  # persons per page: a group of any size is read one page at a time
GROUPS_PAGE = 50
JOBS_PAGE = 50
SEARCH_MAX_GROUPS = 60  # SearchPersonsReturnsByGroup's GroupIds limit
MAX_UPLOAD = 8 * 1024 * 1024  # bytes per photo (its base64 still has to fit the API's limits)
MAX_BODY = 2 * MAX_UPLOAD + 64 * 1024
PRE_COOKIE = "openiai_console_login"  # CSRF token of the sign-in form (no session yet)
FAILURE_WINDOW, FAILURE_LIMIT = 300.0, 10  # sign-in failures per client address

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Refused(Exception):
    """An HTTP answer other than the page (403 CSRF, 404, 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def q(value) -> str:
    """A path segment: GroupIds and PersonIds may hold % # & @."""
    return quote(str(value), safe="")


def _ts(ms) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(ms) / 1000))
    except (TypeError, ValueError, OverflowError):
        return ""


class Console:
    def __init__(self, services, metrics=None, sessions: SessionStore | None = None,
                 rate_limiter=None) -> None:
        self.services = services
        self.rate_limiter = rate_limiter  # the API's: console calls count against the same limits
        self.sessions = sessions or SessionStore()
        self.admin_tokens = AdminTokens(services.settings.data_dir)
        self.metrics = metrics
        self.dashboard = Dashboard(metrics)
        self.failures: dict[str, list[float]] = {}
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.filters["q"] = q
        self.env.filters["ts"] = _ts
        self.env.filters["photo"] = _photo_meta

    # --- plumbing --------------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200,
               session: Session | None = None, **ctx) -> Response:
        flash = []
        if session is not None:
            flash, session.flash = session.flash, []
        text = self.env.get_template(name).render(
            request=request, session=session, flash=flash, base="/console", **ctx)
        return Response(text, status_code=status, media_type="text/html; charset=utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    @staticmethod
    def flash(session: Session, text: str, kind: str = "ok") -> None:
        session.flash.append((kind, text))

    async def call(self, session: Session, action: str, version: str = V2020, **params) -> dict:
        """One action for the signed-in account, as the API runs it."""
        params = {k: v for k, v in params.items() if v is not None}
        started, stages, code = time.perf_counter(), timing.begin(), None
        try:
            if self.rate_limiter is not None:
                self.rate_limiter.check(session.account_id, lambda: session.label, action)
            return await anyio.to_thread.run_sync(
                dispatch, self.services, session.account_id, version, action, params)
        except ApiError as exc:
            code = exc.code
            raise
        finally:  # counted in /metrics (and the dashboard) like a signed request
            if self.metrics is not None:
                self.metrics.observe(action, code, time.perf_counter() - started, stages)

    async def read(self, fn, *args):
        def run():
            with self.services.db.read() as s:
                return fn(s, *args)
        return await anyio.to_thread.run_sync(run)

    def _secure(self, request: Request) -> bool:
        return request.url.scheme == "https"

    async def _session(self, request: Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None and session.kind == "account":
            # A disabled key ends its console sessions too (within the key cache's seconds).
            key = await anyio.to_thread.run_sync(self.services.keys.lookup, session.secret_id)
            if key is None or key.account_id != session.account_id:
                self.sessions.end(session)
                return None
        elif session is not None:  # `openiai admin-token --revoke-all` ends admin sessions
            if session.secret_id not in await anyio.to_thread.run_sync(self.admin_tokens.digests):
                self.sessions.end(session)
                return None
        return session

    async def form(self, request: Request, session: Session | None):
        """The POSTed form, after the size and CSRF checks."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            raise Refused(413, "The upload is too large (at most 8 MB per photo).")
        try:
            form = await request.form(max_files=2, max_fields=100,
                                      max_part_size=MAX_UPLOAD)
        except Exception:
            raise Refused(400, "The form could not be read (too large or malformed).") from None
        if not csrf_ok(session, form.get("csrf")):
            raise Refused(403, "The form is missing its CSRF token or the token is wrong "
                          "(reload the page and try again).")
        return form

    @staticmethod
    async def photo(form, name: str = "photo") -> str:
        """A file field as base64 (the API's Image parameter); ImageEmpty when none was chosen."""
        upload = form.get(name)
        if upload is None or isinstance(upload, str):
            raise value("ImageEmpty", "Choose a photo.")
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise failed("ImageSizeExceed", "The photo is larger than 8 MB.")
        if not data:
            raise value("ImageEmpty", "Choose a photo.")
        return base64.b64encode(data).decode()

    def page(self, path: str, handler, *, who: str = "account", methods=("GET",)):
        """Wraps a handler: session check (sign-in redirect), who may see it, CSRF on POST,
        security headers, and ApiError shown on the page it came from."""

        async def endpoint(request: Request) -> Response:
            try:
                session = await self._session(request)
                if session is None:
                    target = "/console/login"
                    if request.method == "GET" and request.url.path != "/console/":
                        target += "?" + urlencode({"next": request.url.path})
                    return RedirectResponse(target, status_code=303)
                if (who == "admin") != session.admin and who != "any":
                    raise Refused(404, "No such page.")
                form = await self.form(request, session) if request.method == "POST" else None
                return await handler(request, session, form)
            except Refused as exc:
                status, message = exc.status, exc.message
            except ApiError as exc:
                status, message = 400, f"{exc.code}: {exc.message}"
            return self.render(request, "error.html", status,
                               session=self.sessions.get(request.cookies.get(COOKIE)),
                               message=message)

        return Route(path, endpoint, methods=list(methods))

    # --- sign-in ---------------------------------------------------------------------------

    async def login_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
        response = self.render(request, "login.html", status, token=token, error=error,
                               next=_local(request.query_params.get("next", "")))
        response.set_cookie(PRE_COOKIE, token, path="/console/", httponly=True,
                            samesite="strict", secure=self._secure(request))
        return response

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            if await self._session(request) is not None:
                return RedirectResponse("/console/", status_code=303)
            return await self.login_page(request)
        try:
            form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
        except Exception:
            return await self.login_page(request, "The form could not be read.", 400)
        pre = request.cookies.get(PRE_COOKIE, "")
        sent = form.get("csrf") or ""
        if not pre or not hmac.compare_digest(pre, sent):
            return self.render(request, "error.html", 403,
                               message="The sign-in form is missing its CSRF token or the token "
                               "is wrong (reload the page and try again).")
        client = request.client.host if request.client else "-"
        now = time.monotonic()
        if len(self.failures) > 10_000:  # many addresses: forget the ones out of the window
            self.failures = {c: ts for c, ts in self.failures.items()
                             if ts and now - ts[-1] < FAILURE_WINDOW}
        recent = [t for t in self.failures.get(client, []) if now - t < FAILURE_WINDOW]
        self.failures[client] = recent
        if len(recent) >= FAILURE_LIMIT:
            return await self.login_page(request, "Too many failed sign-ins from this address; "
                                         "wait a few minutes.", 429)
        secret_id = (form.get("secret_id") or "").strip()
        secret_key = (form.get("secret_key") or "").strip()
        token = (form.get("admin_token") or "").strip()
        session = None
        if token:
            if await anyio.to_thread.run_sync(self.admin_tokens.verify, token):
                session, cookie = self.sessions.create("admin", "admin",
                                                       secret_id=digest(token))
        elif secret_id and secret_key:
            key = await anyio.to_thread.run_sync(self.services.keys.lookup, secret_id[:64])
            if key is not None and hmac.compare_digest(key.secret_key.encode(),
                                                       secret_key.encode()):
                name = await self.read(lambda s: s.scalar(
                    select(Account.name).where(Account.id == key.account_id)))
                session, cookie = self.sessions.create("account", name or f"#{key.account_id}",
                                                       key.account_id, key.secret_id)
        if session is None:
            recent.append(now)
            return await self.login_page(request, "Sign-in failed: unknown or disabled "
                                         "SecretId, wrong SecretKey, or unknown admin token.", 401)
        self.failures.pop(client, None)
        target = _local(form.get("next") or "") or "/console/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, cookie, path="/console/", httponly=True, samesite="strict",
                            secure=self._secure(request))
        response.delete_cookie(PRE_COOKIE, path="/console/")
        return response

    async def logout(self, request: Request, session: Session, form) -> Response:
        self.sessions.end(session)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console/", httponly=True, samesite="strict")
        return response

    async def home(self, request: Request, session: Session, form) -> Response:
        return RedirectResponse("/console/admin" if session.admin else "/console/groups",
                                status_code=303)

    # --- groups ----------------------------------------------------------------------------

    async def groups(self, request: Request, session: Session, form) -> Response:
        if form is not None:  # create
            names = [n.strip() for n in (form.get("ex_names") or "").split(",") if n.strip()]
            gid = (form.get("group_id") or "").strip()
            try:
                await self.call(session, "CreateGroup", GroupId=gid,
                                GroupName=(form.get("group_name") or "").strip() or gid,
                                Tag=(form.get("tag") or "").strip() or None,
                                GroupExDescriptions=names or None)
            except ApiError as exc:
                self.flash(session, f"{exc.code}: {exc.message}", "error")
                return RedirectResponse("/console/groups", status_code=303)
            self.flash(session, f"Group {gid} created.")
            return RedirectResponse(f"/console/groups/{q(gid)}/persons", status_code=303)
        page = _page(request)
        listed = await self.call(session, "GetGroupList", Offset=(page - 1) * GROUPS_PAGE,
                                 Limit=GROUPS_PAGE)
        rows = []
        for g in listed["GroupInfos"]:
            counts = await self.call(session, "GetPersonListNum", GroupId=g["GroupId"])
            rows.append({**g, **counts})
        return self.render(request, "groups.html", session=session, groups=rows, page=page,
                           pages=max(1, math.ceil(listed["GroupNum"] / GROUPS_PAGE)),
                           total=listed["GroupNum"])

    async def group_edit(self, request: Request, session: Session, form) -> Response:
        gid = request.path_params["group_id"]
        info = await self._group(session, gid)
        if form is not None:
            changes = []
            for i in range(5):
                text = (form.get(f"ex{i}") or "").strip()
                old = info["GroupExDescriptions"][i] if i < len(info["GroupExDescriptions"]) else ""
                if text and text != old:
                    changes.append({"GroupExDescriptionIndex": i, "GroupExDescription": text})
            try:
                await self.call(session, "ModifyGroup", GroupId=gid,
                                GroupName=(form.get("group_name") or "").strip() or None,
                                Tag=form.get("tag"), GroupExDescriptionInfos=changes or None)
                self.flash(session, f"Group {gid} saved.")
            except ApiError as exc:
                self.flash(session, f"{exc.code}: {exc.message}", "error")
            return RedirectResponse(f"/console/groups/{q(gid)}", status_code=303)
        counts = await self.call(session, "GetPersonListNum", GroupId=gid)
        return self.render(request, "group.html", session=session, group=info, counts=counts)

    async def group_delete(self, request: Request, session: Session, form) -> Response:
        gid = request.path_params["group_id"]
        info = await self._group(session, gid)
        if form is None:
            counts = await self.call(session, "GetPersonListNum", GroupId=gid)
            return self.render(
                request, "confirm.html", session=session, title=f"Delete group {gid}?",
                text=f"Group {info['GroupName']} holds {counts['PersonNum']} persons and "
                     f"{counts['FaceNum']} faces. Persons in no other group are deleted with "
                     "their faces. This cannot be undone.",
                action=f"/console/groups/{q(gid)}/delete",
                back=f"/console/groups/{q(gid)}", button="Delete group")
        await self.call(session, "DeleteGroup", GroupId=gid)
        self.flash(session, f"Group {gid} deleted.")
        return RedirectResponse("/console/groups", status_code=303)

    async def _group(self, session: Session, gid: str) -> dict:
        try:
            return await self.call(session, "GetGroupInfo", GroupId=gid)
        except ApiError as exc:  # another account's group is exactly as absent as none
            raise Refused(404, f"{exc.code}: {exc.message}") from None

    # --- persons ---------------------------------------------------------------------------

    async def persons(self, request: Request, session: Session, form) -> Response:
        gid = request.path_params["group_id"]
        info = await self._group(session, gid)
        if form is not None:  # enrol a new person
            pid = (form.get("person_id") or "").strip()
            try:
                ex = [{"PersonExDescriptionIndex": i, "PersonExDescription": form.get(f"ex{i}")}
                      for i in range(len(info["GroupExDescriptions"])) if form.get(f"ex{i}")]
                image = await self.photo(form)
                out = await self.call(session, "CreatePerson", GroupId=gid, PersonId=pid,
                                      PersonName=(form.get("person_name") or "").strip() or pid,
                                      Gender=_int(form.get("gender")), Image=image,
                                      PersonExDescriptionInfos=ex or None,
                                      UniquePersonControl=_int(form.get("unique")))
                if out.get("SimilarPersonId"):
                    self.flash(session, f"Not enrolled: {pid} looks like the enrolled person "
                               f"{out['SimilarPersonId']}.", "error")
                else:
                    self.flash(session, f"Person {pid} enrolled.")
            except ApiError as exc:
                self.flash(session, f"{exc.code}: {exc.message}", "error")
            return RedirectResponse(f"/console/groups/{q(gid)}/persons", status_code=303)
        page, text = _page(request), request.query_params.get("q", "").strip()[:64]
        offset = (page - 1) * PAGE_SIZE
        if text:
            counts = await self.call(session, "GetPersonListNum", GroupId=gid)
            def find(s):
                group = repo.get_group(s, session.account_id, gid)
                return repo.group_persons_page(s, session.account_id, group, text, offset,
                                               PAGE_SIZE)
            total, people = await self.read(find)
        else:
            listed = await self.call(session, "GetPersonList", GroupId=gid, Offset=offset,
                                     Limit=PAGE_SIZE)
            total, people = listed["PersonNum"], listed["PersonInfos"]
            counts = {"PersonNum": listed["PersonNum"], "FaceNum": listed["FaceNum"]}
        return self.render(request, "persons.html", session=session, group=info,
                           counts=counts, persons=people, page=page, text=text, total=total,
                           pages=max(1, math.ceil(total / PAGE_SIZE)))

    async def person(self, request: Request, session: Session, form) -> Response:
        gid, pid = request.path_params["group_id"], request.path_params["person_id"]
        here = f"/console/groups/{q(gid)}/persons/{q(pid)}"
        info = await self._group(session, gid)
        if form is not None:
            what = form.get("do")
            try:
                if what == "add-face":
                    image = await self.photo(form)
                    out = await self.call(session, "CreateFace", PersonId=pid, Images=[image])
                    if out["SucFaceNum"]:
                        self.flash(session, "Face added.")
                    else:
                        self.flash(session, f"No face added (RetCode {out['RetCode']}).", "error")
                elif what == "remove-face":
                    await self.call(session, "DeleteFace", PersonId=pid,
                                    FaceIds=[form.get("face_id") or ""])
                    self.flash(session, "Face removed.")
                elif what == "base":
                    await self.call(session, "ModifyPersonBaseInfo", PersonId=pid,
                                    PersonName=(form.get("person_name") or "").strip() or None,
                                    Gender=_int(form.get("gender")))
                    self.flash(session, "Saved.")
                elif what == "ex":
                    ex = [{"PersonExDescriptionIndex": i,
                           "PersonExDescription": form.get(f"ex{i}") or ""}
                          for i in range(len(info["GroupExDescriptions"]))]
                    if ex:
                        await self.call(session, "ModifyPersonGroupInfo", GroupId=gid,
                                        PersonId=pid, PersonExDescriptionInfos=ex)
                    self.flash(session, "Saved.")
                else:
                    raise Refused(400, "Unknown form.")
            except ApiError as exc:
                self.flash(session, f"{exc.code}: {exc.message}", "error")
            return RedirectResponse(here, status_code=303)
        try:
            base = await self.call(session, "GetPersonBaseInfo", PersonId=pid)
            groups = await self.call(session, "GetPersonGroupInfo", PersonId=pid, Limit=100)
        except ApiError as exc:
            raise Refused(404, f"{exc.code}: {exc.message}") from None
        mine = [g for g in groups["PersonGroupInfos"] if g["GroupId"] == gid]
        if not mine:
            raise Refused(404, f"Person {pid} is not in group {gid}.")
        return self.render(request, "person.html", session=session, group=info, pid=pid,
                           person=base, ex=mine[0]["PersonExDescriptions"],
                           groups=groups["PersonGroupInfos"])

    async def person_delete(self, request: Request, session: Session, form) -> Response:
        gid, pid = request.path_params["group_id"], request.path_params["person_id"]
        await self._group(session, gid)
        here = f"/console/groups/{q(gid)}/persons/{q(pid)}"
        everywhere = request.query_params.get("everywhere") == "1" or (
            form is not None and form.get("everywhere") == "1")
        if form is None:
            return self.render(
                request, "confirm.html", session=session,
                title=f"Delete person {pid}?" if everywhere else f"Remove {pid} from {gid}?",
                text=("The person is deleted from every group, with all their faces."
                      if everywhere else "If the person is in no other group, they are "
                      "deleted with their faces.") + " This cannot be undone.",
                action=f"{here}/delete", back=here, everywhere=everywhere,
                button="Delete person" if everywhere else "Remove from group")
        try:
            if everywhere:
                await self.call(session, "DeletePerson", PersonId=pid)
            else:
                await self.call(session, "DeletePersonFromGroup", GroupId=gid, PersonId=pid)
        except ApiError as exc:
            self.flash(session, f"{exc.code}: {exc.message}", "error")
            return RedirectResponse(here, status_code=303)
        self.flash(session, f"Person {pid} deleted." if everywhere
                   else f"Person {pid} removed from {gid}.")
        return RedirectResponse(f"/console/groups/{q(gid)}/persons", status_code=303)

    async def face(self, request: Request, session: Session, form) -> Response:
        """A face's stored canonical crop, for its owner only."""
        crop = await self.read(repo.face_crop, session.account_id,
                               request.path_params["face_id"][:64])
        if crop is None:
            raise Refused(404, "No such face.")
        media = "image/png" if crop[:4] == b"\x89PNG" else "image/jpeg"
        return Response(crop, media_type=media,
                        headers={"Cache-Control": "private, max-age=600",
                                 "X-Content-Type-Options": "nosniff"})

    # --- photo tools -----------------------------------------------------------------------

    async def _all_groups(self, session: Session) -> list[dict]:
        listed = await self.call(session, "GetGroupList", Limit=1000)
        return listed["GroupInfos"]

    async def tool(self, request: Request, session: Session, form, template: str, run,
                   **ctx) -> Response:
        """A photo tool's page: the form, and after a POST what ``run(form)`` found (or the
        API's error) beside it."""
        if form is not None:
            try:
                ctx.update(await run(form))
            except ApiError as exc:
                ctx["error"] = f"{exc.code}: {exc.message}"
        return self.render(request, template, session=session, **ctx)

    async def search(self, request: Request, session: Session, form) -> Response:
        groups = await self._all_groups(session)
        threshold = _float(form.get("threshold"), 60.0) if form is not None else 60.0
        per_group = (_int(form.get("per_group")) if form is not None else None) or 5
        ticked = ([g for g in form.getlist("groups") if isinstance(g, str)]
                  if form is not None else [])

        async def run(form) -> dict:
            image = await self.photo(form)
            # None ticked: every group, as far as one search may name (the action's limit).
            chosen = ticked or [g["GroupId"] for g in groups][:SEARCH_MAX_GROUPS]
            result = await self.call(
                session, "SearchPersonsReturnsByGroup", GroupIds=chosen or None, Image=image,
                MaxPersonNumPerGroup=per_group, MaxFaceNum=5, FaceMatchThreshold=threshold,
                NeedPersonInfo=1)
            # A person search matches persons, not faces: the thumbnail is their first face.
            faces = {}
            for face in result["ResultsReturnsByGroup"]:
                for group in face["GroupCandidates"]:
                    for c in group["Candidates"]:
                        if c["PersonId"] not in faces:
                            info = await self.call(session, "GetPersonBaseInfo",
                                                   PersonId=c["PersonId"])
                            faces[c["PersonId"]] = (info["FaceIds"] or [""])[0]
            return {"image": image, "result": result, "faces": faces}

        return await self.tool(request, session, form, "search.html", run, groups=groups,
                               threshold=threshold, per_group=per_group, chosen=set(ticked))

    async def compare(self, request: Request, session: Session, form) -> Response:
        async def run(form) -> dict:
            a, b = await self.photo(form, "photo_a"), await self.photo(form, "photo_b")
            return {"image_a": a, "image_b": b,
                    "result": await self.call(session, "CompareFace", ImageA=a, ImageB=b)}

        return await self.tool(request, session, form, "compare.html", run)

    async def detect(self, request: Request, session: Session, form) -> Response:
        async def run(form) -> dict:
            image = await self.photo(form)
            found = await self.call(session, "DetectFace", Image=image, MaxFaceNum=10,
                                    NeedFaceAttributes=1, NeedQualityDetection=1)
            shapes = await self.call(session, "AnalyzeFace", Image=image, Mode=0)
            return {"image": image, "result": found, "points": _points(shapes["FaceShapeSet"])}

        return await self.tool(request, session, form, "detect.html", run)

    async def liveness(self, request: Request, session: Session, form) -> Response:
        async def run(form) -> dict:
            image = await self.photo(form)
            return {"image": image, "result": await self.call(session, "DetectLiveFace",
                                                              version=V2018, Image=image)}

        return await self.tool(request, session, form, "liveness.html", run)

    # --- admin -----------------------------------------------------------------------------

    async def admin(self, request: Request, session: Session, form) -> Response:
        keys = self.services.keys
        created = None
        if form is not None:
            what = form.get("do")
            if what == "create":
                account = (form.get("account") or "").strip()
                if not account or len(account) > 128 or not account.isprintable():
                    self.flash(session, "An account name is 1-128 printable characters.",
                               "error")
                else:
                    secret_id, secret_key = await anyio.to_thread.run_sync(keys.create_key,
                                                                           account)
                    created = {"account": account, "SecretId": secret_id,
                               "SecretKey": secret_key}
            elif what in ("enable", "disable"):
                sid = form.get("secret_id") or ""
                ok = await anyio.to_thread.run_sync(keys.set_enabled, sid, what == "enable")
                self.flash(session, f"{sid} {what}d." if ok else f"No such key {sid}.",
                           "ok" if ok else "error")
            if created is None:
                return RedirectResponse("/console/admin", status_code=303)
        rows = await anyio.to_thread.run_sync(keys.list_keys)
        accounts: dict[str, list] = {}
        for k in rows:
            accounts.setdefault(k.account, []).append(k)
        # The new secret is in this one answer only (no-store; a reload does not show it).
        return self.render(request, "admin.html", session=session, accounts=accounts,
                           created=created)

    # --- background jobs (services/jobs.py) -------------------------------------------------

    async def jobs_page(self, request: Request, session: Session, form) -> Response:
        """The account's background jobs, newest first: kind, what, status, progress."""
        page = _page(request)
        total, rows = await self.read(jobs.page, session.account_id, None,
                                      (page - 1) * JOBS_PAGE, JOBS_PAGE)
        return self.render(request, "jobs.html", session=session, total=total, page=page,
                           pages=max(1, math.ceil(total / JOBS_PAGE)),
                           jobs=[_job_view(j) for j in rows])

    async def job_page(self, request: Request, session: Session, form) -> Response:
        """One job of the account (another account's, or none: 404)."""
        job = await self.read(jobs.find, session.account_id, request.path_params["job_id"][:96])
        if job is None:
            raise Refused(404, "No such job.")
        view = _job_view(job)
        failed_file = (job.result or {}).get("failed_file") or (job.result or {}).get("file")
        if failed_file:
            view["download"] = self.services.links.url(failed_file)
        return self.render(request, "job.html", session=session, job=view)

    async def dashboard_page(self, request: Request, session: Session, form) -> Response:
        view = await anyio.to_thread.run_sync(self.dashboard.view)
        return self.render(request, "dashboard.html", session=session, d=view)

    # --- the app ---------------------------------------------------------------------------

    def app(self) -> Starlette:
        post = ("GET", "POST")
        routes = [
            Route("/login", self.login, methods=["GET", "POST"]),
            self.page("/logout", self.logout, who="any", methods=("POST",)),
            self.page("/", self.home, who="any"),
            self.page("/groups", self.groups, methods=post),
            self.page("/groups/{group_id}", self.group_edit, methods=post),
            self.page("/groups/{group_id}/delete", self.group_delete, methods=post),
            self.page("/groups/{group_id}/persons", self.persons, methods=post),
            self.page("/groups/{group_id}/persons/{person_id}", self.person, methods=post),
            self.page("/groups/{group_id}/persons/{person_id}/delete", self.person_delete,
                      methods=post),
            self.page("/faces/{face_id}", self.face),
            self.page("/search", self.search, methods=post),
            self.page("/compare", self.compare, methods=post),
            self.page("/detect", self.detect, methods=post),
            self.page("/liveness", self.liveness, methods=post),
            self.page("/jobs", self.jobs_page),
            self.page("/jobs/{job_id}", self.job_page),
            self.page("/admin", self.admin, who="admin", methods=post),
            self.page("/dashboard", self.dashboard_page, who="admin"),
            Mount("/static", StaticFiles(directory=HERE / "static")),
        ]
        app = Starlette(routes=routes)
        app.state.console = self
        return app


JOB_KINDS = {"upgrade_group": "Group model upgrade", "similar_persons": "Duplicate-person check"}


def _job_view(job) -> dict:
    """What the jobs pages show of a job row."""
    p = job.params or {}
    status = job.status
    if job.kind == "upgrade_group":
        what = f"{p.get('group_id')}: FaceModelVersion {p.get('from')} → {p.get('to')}"
        if status == jobs.DONE and (job.result or {}).get("reverted_ms"):
            status = "reverted"
    elif job.kind == "similar_persons":
        what = (f"{', '.join(p.get('group_ids', []))}: UniquePersonControl {p.get('strength')}, "
                f"{p.get('persons')} persons")[:200]
    else:
        what = ", ".join(f"{k}={v}" for k, v in sorted(p.items()))[:200]
    return {"job_id": job.job_id, "kind": JOB_KINDS.get(job.kind, job.kind), "what": what,
            "status": status, "progress": round(float(job.progress), 1),
            "created": job.created_ms, "finished": job.finished_ms, "error": job.error,
            "result": job.result or {}}


def _photo_meta(b64: str) -> tuple[str, int, int]:
    """(media type, width, height as shown upright) of an uploaded photo, from its header."""
    data = base64.b64decode(b64)
    fmt = sniff_format(data) or "JPEG"
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            width, height = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientation: turned 90°
                width, height = height, width
    except Exception:
        width, height = 640, 480
    return f"image/{fmt.lower()}", width, height


def _local(target: str) -> str:
    """Only a console path may be a redirect target (no open redirect)."""
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


def _page(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, min(int(raw), 10**9)) if raw.isdigit() else 1


def _int(raw) -> int | None:
    return int(raw) if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() else None


def _float(raw, default: float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def _points(shapes: list[dict]) -> list[tuple[float, float]]:
    """Every landmark of AnalyzeFace's FaceShapeSet, as (x, y)."""
    out = []
    for shape in shapes or []:
        for part in shape.values():
            for p in part or []:
                if isinstance(p, dict) and "X" in p:
                    out.append((p["X"], p["Y"]))
    return out


def mount(app: Starlette) -> Console:
    """Serve the console at ``/console/`` of the API app (``openiai serve`` does this)."""
    console = Console(app.state.services, getattr(app.state, "metrics", None),
                      rate_limiter=getattr(app.state, "rate_limiter", None))
    app.router.routes.append(Mount("/console", console.app()))
    return console


__all__ = ["Console", "mount"]
