"""``openiai import DIR --group GROUP``: enrol a folder tree of face photos.

One sub-folder per person (folder name = PersonId and PersonName unless ``--csv`` maps it),
up to ``--max-faces`` (5) faces each: the first usable image through CreatePerson, the rest one
at a time through CreateFace. The work goes through the action dispatch the HTTP API uses
(:func:`openiai.api.dispatch.dispatch`: the same validation, handlers and output fields), on a
:class:`~openiai.services.Services` over the server's database, so limits, storage, the change
log and the vector index are exactly those of API calls; a running server picks the new faces
up from the change log.

Resuming: the database is the truth. A person already in the group with k faces counts its
first k usable images as imported. Which images were unusable (no face, quality, undecodable,
...) is kept in a journal, ``<data dir>/imports/<account>-<group>-<hash>.jsonl``, one fsynced
line per image written before the next image of that person is tried; a crash can therefore
lose at most the line of the last image of a person, and the face count (read from the
database) settles that case too. Re-running an import (or running it again after new folders
were added) never enrols an image twice.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import inspect
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .core import versions

VERSION = "2020-03-03"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif"}
MAX_FACES = 5  # the API's limit per person
SAME_IMAGE_COSINE = 0.995  # the same image embeds to the same vector (up to rounding)
ID_MAX_BYTES, NAME_MAX = 64, 60
_ID_BAD = re.compile(r"[^A-Za-z0-9\-%@#&_]")

# Skip reasons: key -> what the summary says.
REASONS = {
    "already_imported": "already imported (in the database)",
    "no_face": "no face found",
    "quality": "face quality below --quality",
    "spoof": "not a live face (--liveness): a photo of a photo or of a screen",
    "duplicate": "duplicate person (--unique): looks like an existing PersonId",
    "undecodable": "undecodable image",
    "image_size": "image too large or too small",
    "no_match": "face does not match the person's enrolled faces (--face-match-threshold)",
    "over_limit": "person already has --max-faces faces",
    "person_exists": "PersonId exists in this account but not in the group",
    "input_duplicate": "PersonId given to another folder too",
    "invalid_person": "PersonId / PersonName / Gender refused",
    "unreadable": "file could not be read",
    "error": "other error (retried next run)",
}
# Outcomes that depend only on the image and the options: journaled and not retried.
JOURNALED = {"no_face", "quality", "undecodable", "image_size", "no_match", "duplicate", "spoof"}
_CODE_REASON = {
    "InvalidParameterValue.NoFaceInPhoto": "no_face",
    "FailedOperation.FaceQualityNotQualified": "quality",
    "FailedOperation.ImageDecodeFailed": "undecodable",
    "InvalidParameterValue.ImageEmpty": "undecodable",
    "FailedOperation.ImageSizeExceed": "image_size",
    "FailedOperation.ImageResolutionExceed": "image_size",
    "FailedOperation.ImageResolutionTooSmall": "image_size",
    "FailedOperation.FaceSizeTooSmall": "no_face",
}
_RETCODE_REASON = {-1101: "no_face", -1102: "undecodable", -1109: "image_size", -1601: "quality",
                   -1604: "no_match"}


class ImportError_(Exception):
    """A problem that stops the whole import (bad arguments, group cannot be created)."""


# ------------------------------------------------------------------------------ the plan
@dataclass
class PlannedPerson:
    folder: Path
    person_id: str
    name: str
    gender: int
    images: list[Path]
    note: str = ""  # why the PersonId/name was changed from the folder name


def sanitize_id(raw: str) -> str:
    """A PersonId the API accepts: letters, digits and -%@#&_ only, at most 64 bytes."""
    out = _ID_BAD.sub("_", raw) or "_"
    return out.encode("ascii", "ignore")[:ID_MAX_BYTES].decode("ascii")


def parse_gender(raw: str) -> int:
    v = (raw or "").strip().lower()
    table = {"": 0, "0": 0, "unknown": 0, "1": 1, "m": 1, "male": 1, "2": 2, "f": 2, "female": 2}
    if v not in table:
        raise ImportError_(f"Gender {raw!r} is not 0/1/2 or male/female")
    return table[v]


def read_csv(path: Path) -> dict[str, dict]:
    """folder -> {PersonId, PersonName, Gender}; a header row is optional."""
    rows: dict[str, dict] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if n == 1 and row[0].lower() == "folder":
                continue
            if len(row) < 2:
                raise ImportError_(f"{path}:{n}: expected folder,PersonId,PersonName[,Gender]")
            folder, pid = row[0], row[1]
            name = row[2] if len(row) > 2 and row[2] else folder
            gender = parse_gender(row[3]) if len(row) > 3 else 0
            if folder in rows:
                raise ImportError_(f"{path}:{n}: folder {folder!r} is listed twice")
            rows[folder] = {"PersonId": pid, "PersonName": name, "Gender": gender}
    return rows


def plan(root: Path, csv_rows: dict[str, dict] | None = None) -> tuple[list[PlannedPerson], dict]:
    """The persons to import, sorted by folder name, and notes about the input tree."""
    root = Path(root)
    if not root.is_dir():
        raise ImportError_(f"{root} is not a directory")
    persons, ignored_files, loose, loose_images = [], 0, 0, 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = []
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTS:
                images.append(f)
            elif f.is_file():
                ignored_files += 1
        if not images:
            continue
        row = (csv_rows or {}).get(folder.name)
        if row is not None:
            persons.append(PlannedPerson(folder, row["PersonId"], row["PersonName"],
                                         row["Gender"], images))
        else:
            pid = sanitize_id(folder.name)
            name = folder.name[:NAME_MAX]
            note = "PersonId sanitized" if pid != folder.name else ""
            persons.append(PlannedPerson(folder, pid, name, 0, images, note))
    for f in root.iterdir():
        if f.is_file():
            loose += 1
            loose_images += f.suffix.lower() in IMAGE_EXTS
    if not persons:
        raise ImportError_(_no_person_folders(root, loose_images))
    missing = sorted(set(csv_rows or {}) - {p.folder.name for p in persons})
    return persons, {"ignored_files": ignored_files, "loose_files": loose,
                     "csv_folders_missing": missing}


def _no_person_folders(root: Path, loose_images: int) -> str:
    """Why a folder gives nothing to import, and what to do instead."""
    layout = (f"`openiai import` expects one sub-folder per person, named by its PersonId: "
              f"{root}/<PersonId>/photo.jpg")
    if loose_images:
        parent = root.resolve().parent
        return (f"{root} holds {loose_images} image(s) directly and no person folders: it looks "
                f"like the photos of ONE person. {layout}. To import them as person "
                f"{root.resolve().name!r}, import the folder above it (`openiai import {parent} "
                f"...`, which imports each of its sub-folders as a person) or move the images "
                f"into {root}/<PersonId>/.")
    return f"{root} has no sub-folder holding images: nothing to import. {layout}."


# ------------------------------------------------------------------------------ journal
class Journal:
    """Append-only JSON lines, fsynced one by one; a torn last line is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict[str, dict]] = defaultdict(dict)  # person -> image -> entry
        self.person_marks: dict[str, dict] = {}  # person -> {"result": "duplicate", ...}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if e.get("image") is None:
                        self.person_marks[e["person"]] = e
                    else:
                        self.entries[e["person"]][e["image"]] = e
        self._lock = threading.Lock()
        self._f = open(self.path, "a", encoding="utf-8")
        try:  # one import per journal at a time (same account, group and folder)
            import fcntl

            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except OSError:
            self._f.close()
            raise ImportError_(f"another import is using {self.path}; wait for it to finish") from None

    def write(self, entry: dict) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        with self._lock:
            self._f.close()


def journal_path(data_dir: Path, account: str, group: str, root: Path) -> Path:
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]
    safe = lambda s: re.sub(r"[^A-Za-z0-9_.-]", "_", s)[:40]  # noqa: E731
    return Path(data_dir) / "imports" / f"{safe(account)}-{safe(group)}-{digest}.jsonl"


# ------------------------------------------------------------------------------ results
@dataclass
class Outcome:
    image: str  # path relative to the import root
    person_id: str
    reason: str  # "ok" or a REASONS key
    detail: str = ""


@dataclass
class Stats:
    persons_total: int = 0
    persons_done: int = 0
    persons_created: int = 0
    faces_enrolled: int = 0
    images_processed: int = 0  # images that went through the engine in this run
    images_verified: int = 0  # images embedded to match them to faces the journal lost
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcomes: list[Outcome], created: bool, processed: int, verified: int = 0) -> None:
        with self.lock:
            self.images_verified += verified
            self.outcomes.extend(outcomes)
            self.persons_done += 1
            self.persons_created += int(created)
            self.faces_enrolled += sum(o.reason == "ok" for o in outcomes)
            self.images_processed += processed


# ------------------------------------------------------------------------------ the importer
class Importer:
    def __init__(self, services, account: str, group: str, root: Path, *, group_name: str | None = None,
                 face_model_version: str | None = None, quality: int = 0, unique: int = 0,
                 max_faces: int = MAX_FACES, face_match_threshold: float | None = None,
                 workers: int = 2, journal_file: Path | None = None,
                 liveness: bool = False, copy_existing: bool = False) -> None:
        from .actions.registry import Context

        self.services = services
        self.root = Path(root)
        self.account, self.group = account, group
        self.quality, self.unique = quality, unique
        self.max_faces = max(1, min(max_faces, MAX_FACES))
        self.threshold = face_match_threshold
        self.liveness = liveness
        self.copy_existing = copy_existing
        self.copied: list[str] = []  # PersonIds added to the group by CopyPerson
        self._copied_lock = threading.Lock()
        self.workers = max(1, workers)
        # First, so that a second import of the same account, group and folder is refused
        # before it writes anything.
        self.journal = Journal(journal_file or journal_path(services.settings.data_dir, account,
                                                            group, self.root))
        account_id = services.keys.ensure_account(account)
        self.ctx = Context(account_id=account_id, version=VERSION,
                           request_id=f"import-{uuid.uuid4()}", services=services)
        try:
            self._ensure_group(group_name or group, face_model_version)
        except ImportError_:
            self.journal.close()
            raise
        self.stop = threading.Event()
        self.interrupted = False

    # -- calling actions exactly as the API does
    def call(self, action: str, **params) -> dict:
        from .api.dispatch import dispatch

        return dispatch(self.services, self.ctx.account_id, VERSION, action, params,
                        request_id=self.ctx.request_id)

    def _ensure_group(self, name: str, version: str | None) -> None:
        from .core.errors import ApiError

        try:
            info = self.call("GetGroupInfo", GroupId=self.group)
            self.group_created = False
            self.face_model_version = info.get("FaceModelVersion")
            return
        except ApiError as exc:
            if exc.code != "InvalidParameterValue.GroupIdNotExist":
                raise ImportError_(f"group {self.group}: {exc.code}: {exc.message}") from None
        params = {"GroupId": self.group, "GroupName": name}
        if version:
            params["FaceModelVersion"] = version
        try:
            out = self.call("CreateGroup", **params)
        except ApiError as exc:
            raise ImportError_(f"cannot create group {self.group}: {exc.code}: {exc.message}") from None
        self.group_created = True
        self.face_model_version = out.get("FaceModelVersion")

    def existing_faces(self) -> dict[str, list[str]]:
        """PersonId -> FaceIds of every person in the group (GetPersonList pages)."""
        out, offset = {}, 0
        while True:
            page = self.call("GetPersonList", GroupId=self.group, Offset=offset, Limit=1000)
            infos = page.get("PersonInfos") or []
            for p in infos:
                out[p["PersonId"]] = list(p.get("FaceIds") or [])
            if len(infos) < 1000:
                return out
            offset += len(infos)

    # -- one person, images in order
    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _journal(self, p: PlannedPerson, image: str | None, result: str, **extra) -> None:
        self.journal.write({"person": p.person_id, "image": image, "result": result,
                            "q": self.quality, "u": self.unique, "t": self.threshold,
                            "l": int(self.liveness),
                            "ts": int(time.time()), **extra})

    def _still_valid(self, entry: dict) -> bool:
        """Whether a journaled failure still holds under this run's options."""
        r = entry.get("result")
        if r == "quality":
            return self.quality >= int(entry.get("q") or 0)
        if r == "spoof":  # refused by the liveness gate: retried once the gate is off
            return self.liveness
        if r == "no_match":
            t_old = entry.get("t")
            t_now = self.threshold
            t_old = 60.0 if t_old is None else float(t_old)
            t_now = 60.0 if t_now is None else float(t_now)
            return t_now >= t_old
        return r in JOURNALED

    def _stored_features(self, person_id: str):
        """(face ids, (n, dim) features under the person's version) the database holds for a
        person of this account."""
        import numpy as np

        from .store.face_features import person_face_features
        from .store.repo import find_person

        with self.services.db.read() as s:
            person = find_person(s, self.ctx.account_id, person_id)
            if person is None:
                return [], np.zeros((0, 0), np.float32)
            return person_face_features(s, self.ctx.account_id, person.pk,
                                        person.face_model_version)

    def _match_stored(self, path: Path, ids: list[str], feats) -> str | None:
        """The stored face this image produced, if any (same image: cosine ~1)."""
        from .actions.persons import extract_face
        from .core.errors import ApiError

        try:
            b64 = base64.b64encode(path.read_bytes()).decode("ascii")
            new = extract_face(self.ctx, b64, None, model_version=self.face_model_version or versions.DEFAULT,
                               quality=0, rotate=False)
        except (ApiError, OSError):
            return None
        if not len(ids):
            return None
        sims = feats @ new.feature
        best = int(sims.argmax())
        return ids[best] if float(sims[best]) >= SAME_IMAGE_COSINE else None

    def _copy_into_group(self, p: PlannedPerson) -> tuple[list[str] | None, str]:
        """--copy-existing: the person (who exists in the account, not in the group) added to
        the group by CopyPerson; (their FaceIds, "") or (None, why CopyPerson refused)."""
        from .core.errors import ApiError

        try:
            self.call("CopyPerson", PersonId=p.person_id, GroupIds=[self.group])
            faces = self.call("GetPersonBaseInfo", PersonId=p.person_id).get("FaceIds") or []
        except ApiError as exc:  # e.g. FailedOperation.AcrossVersionsError
            return None, f"CopyPerson refused: {exc.code}: {exc.message}"
        with self._copied_lock:
            self.copied.append(p.person_id)
        return list(faces), ""

    def import_person(self, p: PlannedPerson, have: list[str] | None,
                      copied: bool = False) -> tuple[list[Outcome], bool, int, int]:
        """Enrol one person's images in order; ``have``: the FaceIds the database holds for
        the person in this group (None: not in the group)."""
        from .core.errors import ApiError

        rels = [self._rel(i) for i in p.images]
        out: list[Outcome] = []
        mark = self.journal.person_marks.get(p.person_id)
        if (have is None and mark and mark.get("result") == "duplicate" and self.unique
                and self.unique <= int(mark.get("u") or 0)):
            return [Outcome(r, p.person_id, "duplicate", mark.get("detail", "")) for r in rels], False, 0, 0
        # The database is the truth: enrolments journaled for a person who is gone are ignored, an
        # image journaled as enrolled counts only while its face exists, and faces the journal
        # does not account for (a line lost in a crash, a lost journal) are matched to images
        # by their features.
        earlier = self.journal.entries.get(p.person_id, {})
        if have is None:  # never created, or deleted since: only image-level refusals stand
            earlier = {k: e for k, e in earlier.items() if e.get("result") not in ("ok", "no_match")}
        db_faces = set(have or [])
        unaccounted = db_faces - {e.get("face") for e in earlier.values() if e.get("result") == "ok"}
        ids, feats = self._stored_features(p.person_id) if unaccounted else ([], None)
        done, todo, retry, verified = 0, [], [], 0
        for path, rel in zip(p.images, rels):
            e = earlier.get(rel)
            result = e.get("result") if e else None
            if result == "ok" and e.get("face") in db_faces:
                done += 1
                out.append(Outcome(rel, p.person_id, "already_imported", e["face"]))
            elif result in JOURNALED and result != "duplicate":
                if self._still_valid(e):
                    out.append(Outcome(rel, p.person_id, result, e.get("detail", "")))
                else:
                    retry.append((path, rel))
            elif unaccounted and (face := self._match_stored(path, ids, feats)) in unaccounted:
                verified += 1
                unaccounted.discard(face)
                self._journal(p, rel, "ok", face=face, detail="matched in the database")
                done += 1
                out.append(Outcome(rel, p.person_id, "already_imported", face))
            else:
                verified += int(bool(unaccounted))
                todo.append((path, rel))
        # Faces of the person that no image produced (added through the API) still count.
        done = max(done, len(db_faces))
        faces, created, processed = done, False, 0
        for i, (path, rel) in enumerate(todo + retry):
            if self.stop.is_set():
                break  # interrupted: the rest is neither done nor journaled
            if faces >= self.max_faces:
                out.append(Outcome(rel, p.person_id, "over_limit"))
                continue
            try:
                b64 = base64.b64encode(path.read_bytes()).decode("ascii")
            except OSError as exc:
                out.append(Outcome(rel, p.person_id, "unreadable", str(exc)))
                continue
            processed += 1
            if self.liveness:
                refused = self._liveness_refusal(b64)
                if refused is not None:
                    self._journal(p, rel, refused[0], detail=refused[1])
                    out.append(Outcome(rel, p.person_id, refused[0], refused[1]))
                    continue
            if faces == 0:
                params = {"GroupId": self.group, "PersonId": p.person_id, "PersonName": p.name,
                          "Image": b64}
                if p.gender:
                    params["Gender"] = p.gender
                if self.quality:
                    params["QualityControl"] = self.quality
                if self.unique:
                    params["UniquePersonControl"] = self.unique
                try:
                    res = self.call("CreatePerson", **params)
                except ApiError as exc:
                    reason = _CODE_REASON.get(exc.code)
                    if reason is not None:
                        self._journal(p, rel, reason, detail=exc.code)
                        out.append(Outcome(rel, p.person_id, reason, exc.code))
                        continue
                    detail = f"{exc.code}: {exc.message}"
                    if exc.code == "InvalidParameterValue.PersonIdAlreadyExist":
                        reason = "person_exists"
                        faces_there, why = (None, "") if copied or not self.copy_existing \
                            else self._copy_into_group(p)
                        detail = f"{detail}; {why}" if why else detail
                        if faces_there is not None:  # in the group now: match, then enrol
                            # (every image again: what this pass tried is not in the journal's
                            # memory, and the person's faces may come from these very images)
                            more, _, n, v = self.import_person(p, faces_there, copied=True)
                            return more, created, processed + n, verified + v
                    elif exc.code.startswith(("InvalidParameterValue.Person", "InvalidParameter")):
                        reason = "invalid_person"
                    else:
                        reason = "error"
                    rest = [r for _, r in (todo + retry)[i:]]
                    out.extend(Outcome(r, p.person_id, reason, detail) for r in rest)
                    return out, created, processed, verified
                if not res.get("FaceId"):
                    similar = res.get("SimilarPersonId", "")
                    self._journal(p, None, "duplicate", detail=similar)
                    rest = [r for _, r in (todo + retry)[i:]]
                    out.extend(Outcome(r, p.person_id, "duplicate", similar) for r in rest)
                    return out, created, processed, verified
                self._journal(p, rel, "ok", face=res["FaceId"])
                out.append(Outcome(rel, p.person_id, "ok", res["FaceId"]))
                faces, created = 1, True
            else:
                params = {"PersonId": p.person_id, "Images": [b64]}
                if self.quality:
                    params["QualityControl"] = self.quality
                if self.threshold is not None:
                    params["FaceMatchThreshold"] = float(self.threshold)
                try:
                    res = self.call("CreateFace", **params)
                except ApiError as exc:
                    if exc.code == "InvalidParameterValue.PersonFaceNumExceed":
                        faces = self.max_faces  # someone else filled it up
                        out.append(Outcome(rel, p.person_id, "over_limit", exc.code))
                        continue
                    out.append(Outcome(rel, p.person_id, "error", f"{exc.code}: {exc.message}"))
                    continue
                code = (res.get("RetCode") or [-1000])[0]
                if code == 0 and res.get("SucFaceIds"):
                    face_id = res["SucFaceIds"][0]
                    self._journal(p, rel, "ok", face=face_id)
                    out.append(Outcome(rel, p.person_id, "ok", face_id))
                    faces += 1
                else:
                    reason = _RETCODE_REASON.get(code)
                    if reason is None:
                        out.append(Outcome(rel, p.person_id, "error", f"RetCode {code}"))
                    else:
                        self._journal(p, rel, reason, detail=f"RetCode {code}")
                        out.append(Outcome(rel, p.person_id, reason, f"RetCode {code}"))
        return out, created, processed, verified

    def _liveness_refusal(self, b64: str) -> tuple[str, str] | None:
        """(reason, detail) when the liveness gate refuses the image, else None.

        DetectLiveFace, as the API answers it, on the face CreatePerson/CreateFace would
        enrol (the largest): its IsLiveness is the documented Score 87, the operating point
        of the README's Liveness section. DetectLiveFace rather than the Accurate action
        because enrolment photos may hold faces under the Accurate action's 100 px minimum."""
        from .core.errors import ApiError

        try:
            res = self.call("DetectLiveFace", Image=b64)
        except ApiError as exc:
            reason = _CODE_REASON.get(exc.code)
            return (reason, exc.code) if reason else ("error", f"{exc.code}: {exc.message}")
        if not res.get("IsLiveness"):
            return "spoof", f"DetectLiveFace Score {res.get('Score')}"
        return None

    # -- the whole run
    def run(self, persons: list[PlannedPerson], *, limit: int | None = None,
            progress: bool = True, console=None) -> Stats:
        stats = Stats()
        seen: dict[str, str] = {}
        work: list[PlannedPerson] = []
        for p in persons:
            if p.person_id in seen:
                stats.outcomes.extend(Outcome(self._rel(i), p.person_id, "input_duplicate",
                                              f"also folder {seen[p.person_id]}") for i in p.images)
                continue
            seen[p.person_id] = p.folder.name
            work.append(p)
        if limit is not None:
            work = work[:limit]
        existing = self.existing_faces()
        stats.persons_total = len(work)
        started = time.perf_counter()
        bar = _progress(console, enabled=progress)
        with bar:
            task = bar.add_task("importing", total=len(work), images=0, faces=0, started=started)
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="import") as pool:
                pending, it = set(), iter(work)

                def refill():
                    while len(pending) < self.workers * 4 and not self.stop.is_set():
                        p = next(it, None)
                        if p is None:
                            return
                        pending.add(pool.submit(self._one, p, existing.get(p.person_id), stats))

                try:
                    refill()
                    while pending:
                        finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                        for f in finished:
                            pending.discard(f)
                            f.result()  # a bug in the importer itself should not pass silently
                            bar.advance(task)
                        bar.update(task, images=stats.images_processed, faces=stats.faces_enrolled)
                        refill()
                except KeyboardInterrupt:
                    # Persons in flight stop after their current image (each image is committed
                    # and journaled, or not started); queued persons are dropped.
                    self.stop.set()
                    self.interrupted = True
                    for f in pending:
                        f.cancel()
                    wait(pending)
        stats.seconds = time.perf_counter() - started  # type: ignore[attr-defined]
        return stats

    def _one(self, p: PlannedPerson, have: int | None, stats: Stats) -> None:
        if self.stop.is_set():
            return
        outcomes, created, processed, verified = self.import_person(p, have)
        stats.add(outcomes, created, processed, verified)

    def close(self) -> None:
        self.journal.close()


# ------------------------------------------------------------------------------ display
def _progress(console, enabled: bool):
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            elapsed = max(time.perf_counter() - task.fields.get("started", time.perf_counter()), 1e-9)
            return Text(f"{task.fields.get('images', 0) / elapsed:5.1f} img/s",
                        style="progress.data.speed")

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("persons, {task.fields[faces]} faces"), Rate(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, disable=not enabled, transient=False)


def summarize(stats: Stats, notes: dict) -> dict:
    by_reason: Counter = Counter(o.reason for o in stats.outcomes if o.reason != "ok")
    examples: dict[str, list[str]] = defaultdict(list)
    for o in stats.outcomes:
        if o.reason != "ok" and len(examples[o.reason]) < 3:
            examples[o.reason].append(o.image + (f" ({o.detail})" if o.detail else ""))
    seconds = getattr(stats, "seconds", 0.0)
    return {
        "persons": stats.persons_total, "persons_finished": stats.persons_done,
        "persons_created": stats.persons_created, "faces_enrolled": stats.faces_enrolled,
        "images_processed": stats.images_processed, "images_verified": stats.images_verified,
        "seconds": round(seconds, 2),
        "images_per_second": round(stats.images_processed / seconds, 2) if seconds else 0.0,
        "skipped": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        "examples": dict(examples), **notes,
    }


def print_summary(summary: dict, console, interrupted: bool = False) -> None:
    from rich.table import Table

    title = "Import interrupted: re-run the same command to resume" if interrupted else "Import finished"
    console.print(f"[bold]{title}[/bold]: {summary['persons_finished']}/{summary['persons']} persons, "
                  f"{summary['persons_created']} created, {summary['faces_enrolled']} faces enrolled, "
                  f"{summary['images_processed']} images processed in {summary['seconds']:.1f} s "
                  f"({summary['images_per_second']:.1f} images/s)")
    if summary["skipped"]:
        t = Table(title="Skipped images")
        t.add_column("reason")
        t.add_column("images", justify="right")
        t.add_column("examples", overflow="fold")
        for reason, n in summary["skipped"].items():
            t.add_row(REASONS.get(reason, reason), str(n), "\n".join(summary["examples"].get(reason, [])))
        console.print(t)
    for key, label in (("ignored_files", "files without an image extension were ignored"),
                       ("loose_files", "files directly in DIR (not in a person folder) were ignored")):
        if summary.get(key):
            console.print(f"{summary[key]} {label}")
    if summary.get("persons_copied"):
        console.print(f"{summary['persons_copied']} existing person(s) added to the group with "
                      "CopyPerson (--copy-existing), with the faces they had")
    exists = summary["skipped"].get("person_exists")
    if exists:
        console.print(
            f"[yellow]{exists} image(s) skipped: their PersonId exists in this account but not "
            "in this group[/yellow] (a PersonId is unique per account, so CreatePerson refuses "
            "it). Add those persons to the group with the CopyPerson action (their faces come "
            "along), or run the same import again with --copy-existing to do that here.",
            soft_wrap=True)
    if summary.get("csv_folders_missing"):
        miss = summary["csv_folders_missing"]
        console.print(f"{len(miss)} CSV folder(s) not found under DIR: {', '.join(miss[:5])}"
                      + (" ..." if len(miss) > 5 else ""))


def write_report(path: Path, outcomes: list[Outcome]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "PersonId", "result", "detail"])
        for o in sorted(outcomes, key=lambda o: o.image):
            w.writerow([o.image, o.person_id, o.reason, o.detail])


# ------------------------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="folder with one sub-folder of images per person")
    p.add_argument("--group", required=True, help="GroupId (created if missing)")
    p.add_argument("--group-name", help="GroupName for a new group (default: the GroupId)")
    # Not argparse choices: the data directory's own versions are known only once it is open.
    p.add_argument("--face-model-version",
                   help=f"FaceModelVersion for a new group: {', '.join(versions.names())} or one "
                        "of your own (<data dir>/models/N.M.toml) (default 3.0)")
    p.add_argument("--account", default="default", help="account (created if missing; default `default`)")
    p.add_argument("--csv", help="CSV with columns folder,PersonId,PersonName[,Gender] "
                   "(header optional); folders not listed use the folder name")
    p.add_argument("--quality", type=int, default=0, choices=range(5), metavar="0-4",
                   help="QualityControl level (default 0: none)")
    p.add_argument("--unique", type=int, default=0, choices=range(5), metavar="0-4",
                   help="UniquePersonControl level: skip persons who look like an existing one")
    p.add_argument("--face-match-threshold", type=float,
                   help="CreateFace FaceMatchThreshold (API default 60): a later image must "
                   "match the person's enrolled faces above this score")
    p.add_argument("--max-faces", type=int, default=MAX_FACES, help="faces per person (1-5, default 5)")
    p.add_argument("--liveness", action="store_true",
                   help="refuse images whose face DetectLiveFace judges not live (a photo of a "
                   "printed photo or of a screen); see the README's Liveness section")
    p.add_argument("--copy-existing", action="store_true",
                   help="a PersonId that exists in the account but not in the group is added to "
                   "the group (CopyPerson, with its faces), then its new images are enrolled; "
                   "without this such folders are skipped")
    p.add_argument("--workers", type=int, default=2, help="persons imported in parallel (default 2)")
    p.add_argument("--limit", type=int, help="import only the first N persons (sorted by folder)")
    p.add_argument("--journal", help="progress journal file (default <data dir>/imports/...)")
    p.add_argument("--report", help="write every image with its result (ok + FaceId, or the skip "
                   "reason) to this CSV")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_cli(args, settings) -> int:
    from rich.console import Console

    from .services import Services

    console = Console(stderr=True)
    try:
        csv_rows = read_csv(Path(args.csv)) if args.csv else None
        persons, notes = plan(Path(args.dir), csv_rows)
    except ImportError_ as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # one line: grep, logs
        return 2
    kwargs = {"owner": False} if "owner" in inspect.signature(Services).parameters else {}
    services = Services(settings, **kwargs)
    importer = None
    previous = signal.getsignal(signal.SIGTERM)
    try:
        try:
            importer = Importer(services, args.account, args.group, Path(args.dir),
                                group_name=args.group_name, face_model_version=args.face_model_version,
                                quality=args.quality, unique=args.unique, max_faces=args.max_faces,
                                face_match_threshold=args.face_match_threshold,
                                workers=args.workers, journal_file=args.journal and Path(args.journal),
                                liveness=args.liveness, copy_existing=args.copy_existing)
        except ImportError_ as exc:
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # one line: grep, logs
            return 2
        # The models every image needs; the rest (liveness, quality rules) load on first use.
        # Warming all of them cost about 1.2 s of each run's start for models an import of a
        # 3.0 group never runs (the dlib ResNet, the attribute nets).
        services.faces.warmup(("yunet", versions.get(importer.face_model_version).recognizer))

        def on_term(_sig, _frm):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        try:
            stats = importer.run(persons, limit=args.limit, progress=not args.no_progress,
                                 console=console)
        except KeyboardInterrupt:  # a second interrupt, or one before the first person
            console.print("[yellow]interrupted: re-run the same command to resume[/yellow]")
            return 130
        interrupted = importer.interrupted
        summary = summarize(stats, notes)
        summary["group_created"] = importer.group_created
        summary["persons_copied"] = len(importer.copied)
        summary["journal"] = str(importer.journal.path)
        print_summary(summary, console, interrupted)
        if args.report:
            write_report(Path(args.report), stats.outcomes)
        if args.json:
            print(json.dumps(summary, ensure_ascii=False))
        if interrupted:
            return 130
        # Exit 1 when the folder gave the group nothing at all (no face enrolled now or by an
        # earlier run, no person copied) and images were refused: a dead end, not a resume.
        skipped = summary["skipped"]
        refused = sum(n for reason, n in skipped.items() if reason != "already_imported")
        if refused and not (summary["faces_enrolled"] or summary["persons_copied"]
                            or skipped.get("already_imported")):
            console.print(f"[red]nothing imported[/red]: all {refused} image(s) were refused "
                          "(reasons above)")
            return 1
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if importer is not None:
            importer.close()
        services.close()


def main(argv: list[str] | None = None) -> int:
    from .core.settings import Settings

    p = argparse.ArgumentParser(prog="openiai import", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--data-dir")
    p.add_argument("--database-url")
    args = p.parse_args(argv)
    settings = Settings.from_env(data_dir=Path(args.data_dir) if args.data_dir else None,
                                 database_url=args.database_url)
    return run_cli(args, settings)


if __name__ == "__main__":
    sys.exit(main())
