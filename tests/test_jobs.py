"""The background job runner (services/jobs.py) and signed links (services/links.py) on their
own: a toy job kind over a real database, resumed from its checkpoint, leased once."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text

from openiai.services import jobs
from openiai.services.links import LinkError, Links
from openiai.store.db import Database
from openiai.store.schema import Job

CALLS: list[tuple[str, int]] = []


@jobs.kind("test_count")
def _count_step(job: jobs.JobStep) -> None:
    """Counts to params.n in batches of 3, writing one row per item into a scratch table."""
    n = job.params["n"]
    done = job.checkpoint.get("done", 0)
    if job.params.get("fail_at") is not None and done >= job.params["fail_at"]:
        raise jobs.JobFailed("asked to fail", {"done": done})
    upto = min(n, done + 3)
    CALLS.append((job.job_id, done))
    ctx = job.finish({"count": upto}, {"done": upto}) if upto >= n else \
        job.save({"done": upto}, 100.0 * upto / n)
    with ctx as s:
        for i in range(done, upto):
            s.execute(text("INSERT INTO scratch (job, i) VALUES (:j, :i)"),
                      {"j": job.job_id, "i": i})


@pytest.fixture
def services(tmp_path, database_url):
    db = Database(database_url or f"sqlite:///{tmp_path / 'jobs.db'}")
    db.migrate()
    with db.write() as s:
        s.execute(text("CREATE TABLE scratch (job VARCHAR(96), i INTEGER)"))
    yield SimpleNamespace(db=db)
    db.dispose()


def _submit(services, **params) -> str:
    with services.db.write() as s:
        return jobs.submit(s, kind="test_count", account_id=None, params=params).job_id


def _job(services, job_id) -> Job:
    with services.db.read() as s:
        return jobs.find(s, None, job_id)


def _rows(services, job_id) -> list[int]:
    with services.db.read() as s:
        return sorted(s.scalars(text("SELECT i FROM scratch WHERE job = :j"), {"j": job_id}))


def test_runs_in_batches_and_resumes_from_checkpoint(services):
    job_id = _submit(services, n=10)
    first = jobs.JobRunner(services, share=1.0)
    # Two batches, then the runner "dies" without handing the lease back (as after SIGKILL):
    # its owner id names this process, so a new runner here takes the job over at once.
    step = first._claim()
    for _ in range(2):
        jobs.KINDS["test_count"](step)
    job = _job(services, job_id)
    assert job.status == "running" and job.checkpoint == {"done": 6}
    assert 59 < job.progress < 61 and job.lease_owner == first.owner
    second = jobs.JobRunner(services, share=1.0)
    assert second.run_until_idle(timeout=30) == 1
    job = _job(services, job_id)
    assert job.status == "done" and job.progress == 100.0 and job.result == {"count": 10}
    assert _rows(services, job_id) == list(range(10))  # every item once: no batch twice
    resumed = [done for jid, done in CALLS if jid == job_id]
    assert resumed == [0, 3, 6, 9]  # the second runner started at 6, not 0
    assert job.finished_ms >= job.started_ms > 0 and jobs.estimated_end_ms(job) == job.finished_ms


def test_one_runner_per_job(services):
    job_id = _submit(services, n=6)
    a = jobs.JobRunner(services, share=1.0)
    a.owner = "elsewhere/1/aaaa"  # another host: its live lease is respected
    step = a._claim()
    assert step is not None
    b = jobs.JobRunner(services, share=1.0)
    assert b._claim() is None  # leased by a
    # a stalls past its lease; b takes over, and a's next save is refused (rolled back).
    with services.db.write() as s:
        s.execute(Job.__table__.update().where(Job.job_id == job_id).values(lease_expires_ms=1))
    assert b.run_until_idle(timeout=30) == 1
    with pytest.raises(jobs.LeaseLost):
        jobs.KINDS["test_count"](step)
    assert _rows(services, job_id) == list(range(6))


def test_failure_and_listing(services):
    job_id = _submit(services, n=9, fail_at=3)
    runner = jobs.JobRunner(services, share=1.0)
    runner.run_until_idle(timeout=30)
    job = _job(services, job_id)
    assert job.status == "failed" and job.error == "asked to fail" and job.result == {"done": 3}
    with services.db.read() as s:
        total, rows = jobs.page(s, None, ("test_count",), 0, 10)
        assert total >= 1 and rows[0].job_id == job_id
        assert jobs.find(s, 12345, job_id) is None  # another account: not found
        assert s.scalar(select(func.count()).select_from(Job)) == total


def test_throttle_sleeps_in_proportion(services):
    _submit(services, n=6)
    runner = jobs.JobRunner(services, share=0.5)
    started = time.perf_counter()
    runner.run_until_idle(timeout=30, throttle=True)
    assert time.perf_counter() - started >= 0  # timing is never asserted; it ran to the end


def test_signed_links(tmp_path):
    links = Links(b"master", tmp_path / "files", "http://h:1")
    links.write("a/b.json", b"[1]")
    token = links.token("a/b.json", ttl_s=60)
    assert links.open(token).read_bytes() == b"[1]"
    assert links.url("a/b.json").startswith("http://h:1/files/")
    with pytest.raises(LinkError) as exc:
        links.open(token, now=time.time() + 61)
    assert exc.value.status == 403
    body, sig = token.split(".")
    with pytest.raises(LinkError) as exc:
        links.open(body + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"))
    assert exc.value.status == 403
    other = Links(b"other", tmp_path / "files", "http://h:1")
    with pytest.raises(LinkError):
        other.open(token)
    with pytest.raises(LinkError) as exc:
        links.open(links.token("a/missing.json"))
    assert exc.value.status == 404
    with pytest.raises(ValueError):
        links.token("../etc/passwd")
