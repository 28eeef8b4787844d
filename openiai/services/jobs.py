"""Background jobs: resumable, one runner per job across processes, a bounded share of a core.

A job is a row of ``jobs`` (:class:`openiai.store.schema.Job`): a ``kind``, its ``params``,
a ``status`` (``queued`` -> ``running`` -> ``done`` | ``failed``), a ``progress`` (0-100),
the handler's own ``checkpoint`` and, when finished, a ``result`` (or an ``error``).

Writing a kind
--------------
A kind is a function that does **one batch** and saves it::

    from openiai.services import jobs

    @jobs.kind("my_kind")
    def step(job: jobs.JobStep) -> None:
        done = job.checkpoint.get("done", 0)      # where the last saved batch stopped
        ...work on the next batch, outside any transaction (reads, inference)...
        with job.save({"done": done + n}, progress=100 * (done + n) / total) as s:
            ...the batch's own writes on ``s``...   # one transaction with the checkpoint
        # or, for the last batch:  with job.finish(result={...}) as s: ...
        # or, to give up:          raise jobs.JobFailed("why", result={...})

The runner calls ``step`` again and again until the job is finished. Everything a batch
writes commits in the same transaction as its checkpoint and progress, and only while this
runner still holds the job's lease (else :class:`LeaseLost` rolls it all back): after a crash
the job resumes from its last saved checkpoint, and no batch is applied twice. A step that
raises anything else fails the job (``error`` says why; the server log has the traceback).

Submitting and reading
----------------------
* :func:`submit` (inside the caller's write transaction, so "check, then insert" is atomic);
* :func:`new_job_id` - ids shaped like Tencent's (``<account>_<tag>_<unix s>_<8 chars>``);
* :func:`find` / :func:`page` - tenant-scoped reads (another account's job is not found);
* :func:`estimated_end_ms` - an end time from the measured rate so far.

The runner
----------
:class:`JobRunner` is one daemon thread per server process (only the index-writing process
starts it: :meth:`Services.start_jobs`). It takes the oldest unfinished job whose kind is
registered, leases it (``lease_owner`` = host/pid/random, ``lease_expires_ms``; renewed with
every save; a lease whose owner is a dead process on this host is taken over at once, so a
restart after SIGKILL resumes without waiting for the expiry) and runs its steps. Its share of
the machine is bounded: the thread runs at a lower OS priority (``nice`` +10, Linux per
thread), and after a step that took *t* seconds it sleeps ``t * (1 - share) / share``
(``Settings.jobs_share``, default 0.5: at most half of one core on average). Model runs also
go through the pipeline's inference slots like requests do, so a batch
(``Settings.jobs_batch`` faces) is the longest a request waits behind it.

Signed links to result files are :mod:`openiai.services.links`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import string
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from ..core.clock import now_ms
from ..store.schema import Job

log = logging.getLogger("openiai.jobs")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
UNFINISHED = (QUEUED, RUNNING)
LEASE_MS = 60_000  # a step (and its save) must take less than this
POLL_SECONDS = 1.0

Step = Callable[["JobStep"], None]
KINDS: dict[str, Step] = {}


def kind(name: str) -> Callable[[Step], Step]:
    """Register the step function of a job kind (once per name)."""

    def register(fn: Step) -> Step:
        if name in KINDS and KINDS[name] is not fn:
            raise RuntimeError(f"job kind {name} registered twice")
        KINDS[name] = fn
        return fn

    return register


class JobFailed(Exception):
    """Raised by a step: the job ends ``failed`` with this message and ``result``."""

    def __init__(self, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result or {}


class LeaseLost(Exception):
    """Another runner holds the job now (this one stalled past its lease)."""


# --------------------------------------------------------------------------- submit and read

_ALNUM = string.ascii_letters + string.digits


def new_job_id(account_id: int | None, tag: str) -> str:
    """``<account>_<tag>_<unix seconds>_<8 random letters/digits>``, like
    ``251007453_upgrade_group_qta_1596529493_gjwh07X7``."""
    rand = "".join(secrets.choice(_ALNUM) for _ in range(8))
    return f"{account_id or 0}_{tag}_{int(time.time())}_{rand}"


NOT_BEFORE = "_not_before_ms"  # params key: the runner leaves the job alone until then


def submit(s, *, kind: str, account_id: int | None, params: dict, job_id: str | None = None,
           tag: str | None = None, not_before_ms: int | None = None) -> Job:
    """Queue a job inside the caller's write transaction; returns the row. With
    ``not_before_ms`` no runner takes it before that time (epoch milliseconds)."""
    now = now_ms()
    if not_before_ms is not None:
        params = {**params, NOT_BEFORE: int(not_before_ms)}
    job = Job(job_id=job_id or new_job_id(account_id, tag or kind), account_id=account_id,
              kind=kind, params=params, status=QUEUED, progress=0.0, checkpoint={}, result={},
              error="", lease_owner=None, lease_expires_ms=0, created_ms=now, started_ms=0,
              updated_ms=now, finished_ms=0)
    s.add(job)
    s.flush()
    return job


def find(s, account_id: int | None, job_id: str, kind: str | None = None) -> Job | None:
    """The account's job with this id (and kind), or None: another account's is not found."""
    q = select(Job).where(Job.job_id == job_id, Job.account_id == account_id)
    if kind is not None:
        q = q.where(Job.kind == kind)
    return s.scalar(q)


def page(s, account_id: int | None, kinds: tuple[str, ...] | None, offset: int,
         limit: int, since_ms: int | None = None) -> tuple[int, list[Job]]:
    """(total, one page) of the account's jobs (of these kinds, created since ``since_ms``),
    newest first."""
    where = [Job.account_id == account_id]
    if kinds:
        where.append(Job.kind.in_(kinds))
    if since_ms is not None:
        where.append(Job.created_ms >= since_ms)
    total = s.scalar(select(func.count(Job.pk)).where(*where)) or 0
    rows = list(s.scalars(select(Job).where(*where)
                          .order_by(Job.created_ms.desc(), Job.pk.desc())
                          .offset(offset).limit(limit)))
    return int(total), rows


def unfinished(s, kind: str, **params) -> list[Job]:
    """Queued or running jobs of ``kind`` whose params include these values."""
    rows = s.scalars(select(Job).where(Job.kind == kind, Job.status.in_(UNFINISHED)))
    return [j for j in rows if all((j.params or {}).get(k) == v for k, v in params.items())]


def estimated_end_ms(job: Job, now: int | None = None) -> int:
    """Finished: when it finished. Running: now plus the remaining share at the rate measured
    since it started (now itself until the first batch is saved)."""
    if job.status in (DONE, FAILED):
        return int(job.finished_ms)
    now = now or now_ms()
    if not job.started_ms or job.progress <= 0:
        return now
    elapsed = max(0, now - int(job.started_ms))
    return now + int(elapsed * (100.0 - job.progress) / job.progress)


# --------------------------------------------------------------------------- one step

@dataclass
class JobStep:
    """What a step function gets: the job as last saved, and how to save the next batch."""

    runner: "JobRunner"
    pk: int
    job_id: str
    account_id: int | None
    kind: str
    params: dict
    checkpoint: dict
    progress: float
    finished: bool = field(default=False)

    @property
    def services(self) -> Any:
        """The :class:`~openiai.services.Services` the runner works for."""
        return self.runner.services

    @property
    def batch(self) -> int:
        """How many items a step should take (``Settings.jobs_batch``)."""
        return self.runner.batch

    @contextmanager
    def save(self, checkpoint: dict, progress: float):
        """A write transaction for the batch's own writes, committed with the checkpoint."""
        with self._commit(checkpoint=checkpoint, progress=progress) as s:
            yield s

    @contextmanager
    def finish(self, result: dict | None = None, checkpoint: dict | None = None):
        """The last batch: writes, result and status ``done`` in one transaction."""
        with self._commit(checkpoint=checkpoint if checkpoint is not None else self.checkpoint,
                          progress=100.0, status=DONE, result=result or {}) as s:
            yield s

    @contextmanager
    def _commit(self, *, checkpoint: dict, progress: float, status: str = RUNNING,
                result: dict | None = None):
        progress = float(min(100.0, max(0.0, progress)))
        runner = self.runner
        with runner.services.db.write() as s:
            yield s
            now = now_ms()
            values: dict[str, Any] = dict(checkpoint=checkpoint, progress=progress,
                                          status=status, updated_ms=now,
                                          lease_expires_ms=now + runner.lease_ms)
            if status != RUNNING:
                values.update(result=result or {}, finished_ms=now, lease_owner=None,
                              lease_expires_ms=0)
            done = s.execute(update(Job).where(Job.pk == self.pk,
                                               Job.lease_owner == runner.owner,
                                               Job.status == RUNNING)
                             .values(**values)).rowcount
            if done != 1:
                raise LeaseLost(f"job {self.job_id}: lease lost")
        self.checkpoint, self.progress = checkpoint, progress
        self.finished = status != RUNNING


# --------------------------------------------------------------------------- the runner

def _owner_id() -> str:
    return f"{socket.gethostname()[:60]}/{os.getpid()}/{secrets.token_hex(4)}"


def _dead_here(owner: str | None, mine: str) -> bool:
    """Whether a lease owner is a process of this host that no longer runs (or an earlier
    runner of this very process): its lease need not be waited out."""
    if not owner:
        return True
    try:
        host, pid, _tag = owner.split("/")
        my_host, my_pid, _ = mine.split("/")
        pid_n = int(pid)
    except ValueError:
        return False
    if host != my_host:
        return False
    if str(pid_n) == my_pid:
        return owner != mine  # a runner this process started before (a restarted one)
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobRunner:
    """Runs the jobs of registered kinds, one at a time, on one low-priority thread."""

    def __init__(self, services: Any, *, share: float = 0.5, batch: int = 32,
                 lease_ms: int = LEASE_MS, poll_seconds: float = POLL_SECONDS) -> None:
        self.services = services
        self.share = min(1.0, max(0.01, float(share)))
        self.batch = max(1, int(batch))
        self.lease_ms = lease_ms
        self.poll_seconds = poll_seconds
        self.owner = _owner_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: str | None = None  # the JobId being worked on, for /metrics and logs

    # ---- lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """A job was queued in this process: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the step in progress; the job's lease is handed back."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ---- the loop
    def _loop(self) -> None:
        try:  # Linux: a thread is a task, its own nice value (the other threads keep theirs)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while not self._stop.is_set():
            try:
                ran = self.run_next()
            except Exception:  # the database away for a moment: try again at the next poll
                log.exception("job runner")
                ran = False
            if not ran:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def run_until_idle(self, timeout: float = 600.0, throttle: bool = False) -> int:
        """Run jobs in this thread until none is left (tests, tools); returns how many ran."""
        deadline = time.monotonic() + timeout
        ran = 0
        while time.monotonic() < deadline and self.run_next(throttle=throttle):
            ran += 1
        return ran

    def run_next(self, throttle: bool = True, max_steps: int | None = None) -> bool:
        """Claim one job and run it to its end (or until stopped); False when there was none."""
        step = self._claim()
        if step is None:
            return False
        self.current = step.job_id
        try:
            self._run(step, throttle, max_steps)
        finally:
            self.current = None
        return True

    def _run(self, step: JobStep, throttle: bool, max_steps: int | None) -> None:
        fn = KINDS[step.kind]
        steps = 0
        while not step.finished:
            if self._stop.is_set() or (max_steps is not None and steps >= max_steps):
                self._release(step)
                return
            started = time.perf_counter()
            try:
                fn(step)
            except LeaseLost:
                log.warning("job %s: lease lost to another runner", step.job_id)
                return
            except JobFailed as exc:
                self._end(step, FAILED, exc.message, exc.result)
                return
            except Exception as exc:
                log.exception("job %s (%s) failed", step.job_id, step.kind)
                self._end(step, FAILED, f"internal error: {type(exc).__name__}: {exc}"[:500], {})
                return
            steps += 1
            if throttle and not step.finished and self.share < 1.0:
                self._stop.wait((time.perf_counter() - started) * (1 - self.share) / self.share)

    def _claim(self) -> JobStep | None:
        with self.services.db.read() as s:
            candidates = s.execute(
                select(Job.pk, Job.kind, Job.lease_owner, Job.lease_expires_ms, Job.params)
                .where(Job.status.in_(UNFINISHED)).order_by(Job.created_ms, Job.pk)).all()
        now = now_ms()
        for pk, job_kind, owner, expires, params in candidates:
            if job_kind not in KINDS:
                continue  # a kind this build does not know: left to one that does
            if int((params or {}).get(NOT_BEFORE, 0)) > now:
                continue
            if owner and owner != self.owner and expires > now and not _dead_here(owner, self.owner):
                continue
            with self.services.db.write() as s:
                job = s.get(Job, pk)
                if job is None or job.status not in UNFINISHED or job.lease_owner != owner:
                    continue  # someone else got there between the read and now
                job.lease_owner = self.owner
                job.lease_expires_ms = now_ms() + self.lease_ms
                job.status = RUNNING
                job.started_ms = job.started_ms or now_ms()
                job.updated_ms = now_ms()
                step = JobStep(self, job.pk, job.job_id, job.account_id, job.kind,
                               dict(job.params or {}), dict(job.checkpoint or {}),
                               float(job.progress))
            log.info("job %s (%s) claimed at %.1f %%", step.job_id, step.kind, step.progress)
            return step
        return None

    def _release(self, step: JobStep) -> None:
        with self.services.db.write() as s:
            s.execute(update(Job).where(Job.pk == step.pk, Job.lease_owner == self.owner)
                      .values(lease_owner=None, lease_expires_ms=0))

    def _end(self, step: JobStep, status: str, error: str, result: dict) -> None:
        now = now_ms()
        with self.services.db.write() as s:
            s.execute(update(Job).where(Job.pk == step.pk, Job.lease_owner == self.owner)
                      .values(status=status, error=error, result=result, finished_ms=now,
                              updated_ms=now, lease_owner=None, lease_expires_ms=0))
        step.finished = True
        log.info("job %s (%s) ended %s: %s", step.job_id, step.kind, status, error)
