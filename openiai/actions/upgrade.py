"""Group FaceModelVersion upgrades: UpgradeGroupFaceModelVersion,
GetUpgradeGroupFaceModelVersionResult, GetUpgradeGroupFaceModelVersionJobList,
RevertGroupFaceModelVersion (both API versions).

The upgrade runs as a background job (:mod:`openiai.services.upgrade`, :mod:`..services.jobs`);
the group serves on its old version until the job switches it. Error codes: GroupIdNotExist,
FaceModelVersionIllegal, GroupCannotUpgrade (same or older version, an upgrade already running,
persons shared with other groups), UpgradeJobIdNotExist, JobCannnotRollback (not finished,
failed, reverted before: one revert per group).
"""

from __future__ import annotations

from ..core.errors import failed, missing
from ..services import jobs, upgrade
from ..store.repo import get_group
from ..store.schema import Job
from . import limits
from .registry import Context, action


def _job(s, ctx: Context, job_id: str | None) -> Job:
    if not job_id:
        raise missing("JobId")
    job = jobs.find(s, ctx.account_id, job_id, upgrade.KIND)
    if job is None:
        raise failed("UpgradeJobIdNotExist", f"Upgrade job `{job_id}` does not exist.")
    return job


@action("UpgradeGroupFaceModelVersion")
def upgrade_group(ctx: Context, req) -> dict:
    if not req.FaceModelVersion:
        raise missing("FaceModelVersion")
    version = limits.face_model_version(req.FaceModelVersion)
    with ctx.services.db.write() as s:
        group = get_group(s, ctx.account_id, req.GroupId)
        job = upgrade.submit(s, ctx.account_id, group, version)
    ctx.services.jobs.wake()
    return {"JobId": job.job_id}


@action("GetUpgradeGroupFaceModelVersionResult")
def upgrade_result(ctx: Context, req) -> dict:
    with ctx.services.db.read() as s:
        job = _job(s, ctx, req.JobId)
    status = upgrade.wire_status(job)
    result = job.result or {}
    url = ""
    if status == upgrade.UPGRADE_FAILED and result.get("failed_file"):
        url = ctx.services.links.url(result["failed_file"])
    return {
        "EndTimestamp": jobs.estimated_end_ms(job),
        "Progress": 100.0 if status != upgrade.UPGRADING else round(float(job.progress), 2),
        "Status": status,
        "StartTime": job.created_ms,
        "FromFaceModelVersion": job.params["from"],
        "ToFaceModelVersion": job.params["to"],
        "GroupId": job.params["group_id"],
        "FailedFacesUrl": url,
    }


@action("GetUpgradeGroupFaceModelVersionJobList")
def upgrade_job_list(ctx: Context, req) -> dict:
    offset, limit = limits.page(req.Offset, req.Limit, default_limit=10, max_limit=1000)
    with ctx.services.db.read() as s:
        total, rows = jobs.page(s, ctx.account_id, (upgrade.KIND,), offset, limit)
    return {"JobNum": total, "JobInfos": [
        {"JobId": j.job_id, "GroupId": j.params["group_id"],
         "FromFaceModelVersion": j.params["from"], "ToFaceModelVersion": j.params["to"],
         "StartTime": j.created_ms, "Status": upgrade.wire_status(j)} for j in rows]}


@action("RevertGroupFaceModelVersion")
def revert_group(ctx: Context, req) -> dict:
    with ctx.services.db.read() as s:
        job = _job(s, ctx, req.JobId)
    upgrade.revert(ctx.services, ctx.account_id, job)
    return {}
