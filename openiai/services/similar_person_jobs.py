"""The duplicate-person check as a background job kind (:mod:`openiai.services.jobs`).

Each runner step is one :meth:`openiai.services.similar_persons.Check.step` (the snapshot, a
batch of searches, or the result file), saved as the job's checkpoint and progress. The
check's working files (the snapshot and the pair file) live under
``<data dir>/jobs/similar_persons/<JobId>/``; the result file is a signed-link file
(:mod:`openiai.services.links`), ``similar_persons/<JobId>.json``. The working directory is
removed once the result is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import jobs
from .similar_persons import Check

KIND = "similar_persons"


def result_relpath(job_id: str) -> str:
    return f"similar_persons/{job_id}.json"


def work_dir(services, job_id: str) -> Path:
    return Path(services.settings.data_dir) / "jobs" / KIND / job_id


def check_for(services, job_id: str, account_id: int, params: dict) -> Check:
    return Check(directory=work_dir(services, job_id), db=services.db, index=services.index,
                 account_id=account_id, version=params["version"],
                 groups={int(pk): gid for pk, gid in zip(params["group_pks"], params["group_ids"])},
                 strength=int(params["strength"]), expected_persons=int(params.get("persons", 0)),
                 result_path=services.links.path(result_relpath(job_id)))


@jobs.kind(KIND)
def step(job: jobs.JobStep) -> None:
    check = check_for(job.services, job.job_id, job.account_id, job.params)
    checkpoint, progress, done = check.step(job.checkpoint)
    if not done:
        with job.save(checkpoint, progress):
            pass
        return
    with job.finish(result={"persons": checkpoint.get("n", 0), "pairs": checkpoint["pairs"],
                            "file": result_relpath(job.job_id)}, checkpoint=checkpoint):
        pass
    shutil.rmtree(check.directory, ignore_errors=True)
