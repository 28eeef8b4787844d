"""Duplicate-person jobs of the docs' older API: CheckSimilarPerson,
EstimateCheckSimilarPersonCostTime, GetCheckSimilarPersonJobIdList, GetSimilarPersonResult.

Both API versions name them (the spec's ``legacy_actions``: SDK 3.0.600 had methods for them,
3.1.191 has none, so callers use the SDK's common client). What a check does and what its
result file holds is :mod:`openiai.services.similar_persons`; this module applies the
documented parameters, limits and errors:

* GroupIds: 1 to 10 groups ("人员库个数不可超过10个"; more: InvalidParameterValue.GroupIdsExceed),
  each an existing group of the account (InvalidParameterValue.GroupIdNotExist), all of
  FaceModelVersion 3.0 ("only groups of model version 3.0 can be checked, not across
  versions": InvalidParameterValue.UnsupportedGroupFaceModelVersion), at most 2 million
  persons in all (InvalidParameterValue.SearchPersonsExceed). A GroupId named twice counts once.
* UniquePersonControl: 1 or 2, else InvalidParameterValue.UniquePersonControlIllegal. The
  docs give it no default, so it is required like GroupIds (MissingParameter).
* "If both requests name the same GroupIds and the first has not finished, the second fails":
  FailedOperation.ConflictOperation.
* "If the estimate exceeds 5 hours, the check cannot be used": LimitExceeded.
* JobId of another account, or of no job: InvalidParameterValue (the docs name no code).
* GetCheckSimilarPersonJobIdList: newest first, Offset default 0, Limit default 10 and at
  most 1000 (InvalidParameterValue.LimitExceed), jobs of the last year; JobStatus 0 done,
  1 not finished, 2 failed; StartTime in ms since the epoch.
* GetSimilarPersonResult: Progress 0-100; SimilarPersonsUrl, once Progress is 100, a signed
  link to the result file valid 5 minutes ("有效时间为5分钟"); a failed job answers
  FailedOperation.UnKnowError with the reason.
"""

from __future__ import annotations

import secrets
import string

from ..core.clock import now_ms
from ..core.errors import ApiError, failed, missing, value
from ..services import jobs
from ..services import similar_person_jobs as spj
from ..services import similar_persons as sp
from . import limits, searched_groups
from .registry import Context, action

LINK_TTL_S = 300  # "临时下载链接，有效时间为5分钟"
KEEP_MS = 365 * 24 * 3600 * 1000  # "只保留最近1年的数据"
_ALNUM = string.ascii_letters + string.digits


def _new_job_id() -> str:
    """16 letters and digits, the shape of the docs' example JobId ("YP6v5v32pvyAqLyz")."""
    return "".join(secrets.choice(_ALNUM) for _ in range(16))


def _groups(ctx: Context, raw) -> tuple[dict[int, str], str, int]:
    """({group pk: GroupId}, model version, persons in them) of a valid GroupIds list."""
    if not raw:
        raise missing("GroupIds")
    searched = searched_groups.searched(ctx, searched_groups.group_ids(raw, sp.MAX_GROUPS),
                                        persons=True, each_version_first=True)
    if searched.persons > sp.MAX_PERSONS:
        raise value("SearchPersonsExceed", f"The groups hold {searched.persons} persons; a "
                    f"check may cover at most {sp.MAX_PERSONS}.")
    return {g.pk: g.group_id for g in searched.groups}, searched.version, int(searched.persons)


def _strength(raw) -> int:
    if raw is None:
        raise missing("UniquePersonControl")
    if raw not in sp.STRENGTH_FAR:
        raise value("UniquePersonControlIllegal", "UniquePersonControl must be 1 (stronger) or "
                    "2 (weaker).")
    return int(raw)


def _estimate(ctx: Context, groups: dict[int, str], version: str, persons: int) -> int:
    """Minutes: this check's persons plus what the similar-person jobs queued before it have
    left, at the per-person search cost measured on these groups now, on the job runner's
    share of a core (``OPENIAI_JOBS_SHARE``: it sleeps between steps for the rest)."""
    if persons == 0:
        return 0
    per_person = sp.measure_search_seconds(ctx.services.db, ctx.services.index, ctx.account_id,
                                           version, groups)
    with ctx.services.db.read() as s:
        ahead = sum(int((j.params or {}).get("persons", 0)) * (100.0 - float(j.progress)) / 100.0
                    for j in jobs.unfinished(s, spj.KIND))
    return sp.estimate_minutes(persons + int(ahead), per_person, ctx.services.jobs.share)


@action("EstimateCheckSimilarPersonCostTime")
def estimate_check_similar_person_cost_time(ctx: Context, req) -> dict:
    groups, version, persons = _groups(ctx, req.GroupIds)
    return {"EstimatedTimeCost": _estimate(ctx, groups, version, persons)}


@action("CheckSimilarPerson")
def check_similar_person(ctx: Context, req) -> dict:
    groups, version, persons = _groups(ctx, req.GroupIds)
    strength = _strength(req.UniquePersonControl)
    minutes = _estimate(ctx, groups, version, persons)
    if minutes > sp.MAX_ESTIMATE_MINUTES:
        raise ApiError("LimitExceeded", f"The check is estimated to take {minutes} minutes; "
                       f"checks estimated over {sp.MAX_ESTIMATE_MINUTES // 60} hours cannot run.")
    key = sorted(groups)
    params = {"group_pks": key, "group_ids": [groups[pk] for pk in key], "version": version,
              "strength": strength, "persons": persons}
    with ctx.services.db.write() as s:
        if any(j.account_id == ctx.account_id for j in jobs.unfinished(s, spj.KIND, group_pks=key)):
            raise failed("ConflictOperation", "A duplicate-person check of the same groups has "
                         "not finished yet.")
        job = jobs.submit(s, kind=spj.KIND, account_id=ctx.account_id, params=params,
                          job_id=_new_job_id())
        job_id = job.job_id
    ctx.services.jobs.wake()
    return {"JobId": job_id}


@action("GetCheckSimilarPersonJobIdList")
def get_check_similar_person_job_id_list(ctx: Context, req) -> dict:
    if req.Offset is not None and req.Offset < 0:
        raise value("OffsetExceed", "Offset must not be negative.")
    if req.Limit is not None and req.Limit < 0:
        raise value("LimitExceed", "Limit must not be negative.")
    offset, limit = limits.page(req.Offset, req.Limit, default_limit=10, max_limit=1000)
    with ctx.services.db.read() as s:
        total, rows = jobs.page(s, ctx.account_id, (spj.KIND,), offset, limit,
                                 since_ms=now_ms() - KEEP_MS)
        infos = [{"JobId": j.job_id, "StartTime": int(j.created_ms),
                  "JobStatus": {jobs.DONE: 0, jobs.FAILED: 2}.get(j.status, 1)} for j in rows]
    return {"JobIdInfos": infos, "JobIdNum": total}


@action("GetSimilarPersonResult")
def get_similar_person_result(ctx: Context, req) -> dict:
    if not req.JobId:
        raise missing("JobId")
    with ctx.services.db.read() as s:
        job = jobs.find(s, ctx.account_id, req.JobId, kind=spj.KIND)
        if job is None:
            raise ApiError("InvalidParameterValue", f"JobId `{req.JobId}` names no "
                           "duplicate-person check of this account.")
        status, progress, error = job.status, float(job.progress), job.error
    if status == jobs.FAILED:
        raise failed("UnKnowError", f"The duplicate-person check failed: {error}")
    url = ""
    if status == jobs.DONE:
        url = ctx.services.links.url(spj.result_relpath(req.JobId), ttl_s=LINK_TTL_S)
    return {"Progress": round(progress, 2) if status != jobs.DONE else 100.0,
            "SimilarPersonsUrl": url}
