"""Duplicate-person jobs: CheckSimilarPerson, EstimateCheckSimilarPersonCostTime,
GetCheckSimilarPersonJobIdList, GetSimilarPersonResult.

Over HTTP through the SDK's common client (SDK 3.1.191 has no methods for them; the docs and
older SDKs do), on both API versions: a small gallery in two groups with duplicates planted
(one LFW person enrolled under two PersonIds, different photos), the check run by the server's
job runner, the result file fetched through its signed link; the documented limits and error
codes. In-process: a second check of the same groups while the first is queued, and another
account's JobId. How well the check finds duplicates at scale is ``openiai eval
similar-persons`` (README), not here.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from harness import Common
from images import lfw

# (name, photo of PersonId A, photo of PersonId B, groups of A and B): the planted duplicates.
PLANTED = [("George_W_Bush", 7, 16, ("g1", "g2")),
           ("Colin_Powell", 38, 40, ("g1", "g1")),
           ("Tony_Blair", 6, 18, ("g2", "g2"))]
# One PersonId each: nobody here is anybody else.
SINGLES = [("Donald_Rumsfeld", 22, "g1"), ("Gerhard_Schroeder", 3, "g2"),
           ("Ariel_Sharon", 16, "g1")]


def _wait_done(common: Common, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        out = common.call("GetSimilarPersonResult", JobId=job_id)
        assert 0.0 <= out["Progress"] <= 100.0
        if out["Progress"] == 100.0:
            return out
        assert out["SimilarPersonsUrl"] == ""
        assert time.monotonic() < deadline, f"job {job_id} stuck at {out['Progress']}"
        time.sleep(0.3)


def _download(url: str) -> list[dict]:
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        return json.loads(r.read())


def _gallery(api) -> tuple[dict[str, str], set[frozenset]]:
    tag = uuid.uuid4().hex[:6]
    groups = {g: f"{g}-{tag}" for g in ("g1", "g2")}
    for gid in groups.values():
        api.call("CreateGroup", GroupId=gid, GroupName=gid)
    planted = set()
    for name, a, b, (ga, gb) in PLANTED:
        for suffix, number, g in (("a", a, ga), ("b", b, gb)):
            api.call("CreatePerson", GroupId=groups[g], PersonId=f"{name}-{suffix}",
                     PersonName=name, Image=lfw(name, number))
        planted.add(frozenset((f"{name}-a", f"{name}-b")))
    for name, number, g in SINGLES:
        api.call("CreatePerson", GroupId=groups[g], PersonId=name, PersonName=name,
                 Image=lfw(name, number))
    return groups, planted


def test_check_finds_the_planted_duplicates(api):
    groups, planted = _gallery(api)
    group_ids = [groups["g1"], groups["g2"]]
    common = Common(api, "2020-03-03")

    estimate = common.call("EstimateCheckSimilarPersonCostTime", GroupIds=group_ids)
    assert set(estimate) == {"EstimatedTimeCost", "RequestId"}
    assert estimate["EstimatedTimeCost"] == 1  # 9 persons: under a minute, rounded up

    job_id = common.call("CheckSimilarPerson", GroupIds=group_ids, UniquePersonControl=1)["JobId"]
    assert len(job_id) == 16 and job_id.isalnum()
    done = _wait_done(common, job_id)
    assert set(done) == {"Progress", "SimilarPersonsUrl", "RequestId"}
    rows = _download(done["SimilarPersonsUrl"])
    assert {frozenset((r["PersonId"], r["SimilarPersonId"])) for r in rows} == planted
    by_pair = {(r["PersonId"], r["SimilarPersonId"]): r for r in rows}
    bush = by_pair[("George_W_Bush-a", "George_W_Bush-b")]  # created first = PersonId
    assert bush["GroupIds"] == [groups["g1"]] and bush["SimilarGroupIds"] == [groups["g2"]]
    assert all(50.0 <= r["Score"] <= 100.0 for r in rows)  # strength 1: score >= 50 (FAR 1e-4)
    assert [r["Score"] for r in rows] == sorted((r["Score"] for r in rows), reverse=True)

    # A forged or altered link opens nothing.
    head, _, token = done["SimilarPersonsUrl"].rpartition("/")
    with pytest.raises(urllib.error.HTTPError) as err:
        _download(f"{head}/{token[:-2]}{'AA' if token[-2:] != 'AA' else 'BB'}")
    assert err.value.code == 403

    # The older API version, the weaker strength: the same groups again once the first is done.
    old = Common(api, "2018-03-01")
    weak_id = old.call("CheckSimilarPerson", GroupIds=group_ids, UniquePersonControl=2)["JobId"]
    weak = _download(_wait_done(old, weak_id)["SimilarPersonsUrl"])
    weak_pairs = {frozenset((r["PersonId"], r["SimilarPersonId"])) for r in weak}
    assert weak_pairs <= planted and all(r["Score"] >= 60.0 for r in weak)

    listing = common.call("GetCheckSimilarPersonJobIdList")
    assert listing["JobIdNum"] == 2
    assert [i["JobId"] for i in listing["JobIdInfos"]] == [weak_id, job_id]  # newest first
    assert all(i["JobStatus"] == 0 for i in listing["JobIdInfos"])
    now = time.time() * 1000
    assert all(now - 600_000 < i["StartTime"] <= now + 5_000 for i in listing["JobIdInfos"])
    page = old.call("GetCheckSimilarPersonJobIdList", Offset=1, Limit=1)
    assert page["JobIdNum"] == 2 and [i["JobId"] for i in page["JobIdInfos"]] == [job_id]


def test_limits_and_error_codes(api):
    common = Common(api, "2020-03-03")
    tag = uuid.uuid4().hex[:6]
    gids = [f"lim{i}-{tag}" for i in range(11)]
    for gid in gids:
        api.call("CreateGroup", GroupId=gid, GroupName=gid)
    old = f"v2-{tag}"
    api.call("CreateGroup", GroupId=old, GroupName=old, FaceModelVersion="2.0")

    for action in ("CheckSimilarPerson", "EstimateCheckSimilarPersonCostTime"):
        extra = {"UniquePersonControl": 1} if action == "CheckSimilarPerson" else {}
        assert common.code(action, GroupIds=gids, **extra) == "InvalidParameterValue.GroupIdsExceed"
        assert common.code(action, GroupIds=[gids[0], f"nope-{tag}"], **extra) == \
            "InvalidParameterValue.GroupIdNotExist"
        assert common.code(action, GroupIds=[gids[0], old], **extra) == \
            "InvalidParameterValue.UnsupportedGroupFaceModelVersion"
        assert common.code(action, GroupIds=["bad id!"], **extra) == \
            "InvalidParameterValue.GroupIdIllegal"
        assert common.code(action, GroupIds=[], **extra) == "MissingParameter"
        assert common.code(action, **extra) == "MissingParameter"
        assert common.code(action, GroupIds=gids[0], **extra) == "InvalidParameter"
    for bad in (0, 3, -1):
        assert common.code("CheckSimilarPerson", GroupIds=gids[:2], UniquePersonControl=bad) == \
            "InvalidParameterValue.UniquePersonControlIllegal"
    assert common.code("CheckSimilarPerson", GroupIds=gids[:2]) == "MissingParameter"
    # Ten groups (one named twice counts once) are within the limit; empty groups: 0 minutes.
    assert common.call("EstimateCheckSimilarPersonCostTime",
                       GroupIds=gids[:10] + gids[:1])["EstimatedTimeCost"] == 0

    assert common.code("GetSimilarPersonResult") == "MissingParameter"
    assert common.code("GetSimilarPersonResult", JobId="AAAAAAAAAAAA") == "InvalidParameterValue"
    assert common.code("GetCheckSimilarPersonJobIdList", Limit=1001) == \
        "InvalidParameterValue.LimitExceed"
    assert common.code("GetCheckSimilarPersonJobIdList", Offset=-1) == \
        "InvalidParameterValue.OffsetExceed"
    listing = common.call("GetCheckSimilarPersonJobIdList")
    assert listing["JobIdInfos"] == [] and listing["JobIdNum"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_same_groups_twice_and_another_account(inproc_services, backend):
    """In-process (the runner's thread is not started there, so a job stays queued until the
    test runs it): the same GroupIds while a check is unfinished, and a JobId of another
    account."""
    from openiai.api.dispatch import dispatch
    from openiai.core.errors import ApiError

    services = inproc_services(backend)
    me = services.keys.ensure_account(f"dupes-{uuid.uuid4().hex[:6]}")
    other = services.keys.ensure_account(f"dupes-{uuid.uuid4().hex[:6]}")

    def call(account, action, **params):
        return dispatch(services, account, "2020-03-03", action, params)

    def code(account, action, **params):
        with pytest.raises(ApiError) as err:
            call(account, action, **params)
        return err.value.code

    for gid in ("a", "b"):
        call(me, "CreateGroup", GroupId=gid, GroupName=gid)
    first = call(me, "CheckSimilarPerson", GroupIds=["a", "b"], UniquePersonControl=1)["JobId"]
    assert code(me, "CheckSimilarPerson", GroupIds=["b", "a"], UniquePersonControl=2) == \
        "FailedOperation.ConflictOperation"
    other_groups = call(me, "CheckSimilarPerson", GroupIds=["a"], UniquePersonControl=1)["JobId"]
    assert call(me, "GetSimilarPersonResult", JobId=first) == {"Progress": 0.0,
                                                               "SimilarPersonsUrl": ""}
    assert code(other, "GetSimilarPersonResult", JobId=first) == "InvalidParameterValue"
    assert call(other, "GetCheckSimilarPersonJobIdList") == {"JobIdInfos": [], "JobIdNum": 0}
    listing = call(me, "GetCheckSimilarPersonJobIdList")
    assert [(i["JobId"], i["JobStatus"]) for i in listing["JobIdInfos"]] == \
        [(other_groups, 1), (first, 1)]

    services.jobs.run_until_idle(timeout=60)
    done = call(me, "GetSimilarPersonResult", JobId=first)
    assert done["Progress"] == 100.0 and "/files/" in done["SimilarPersonsUrl"]
    token = done["SimilarPersonsUrl"].rsplit("/", 1)[1]
    assert json.loads(services.links.open(token).read_text()) == []  # nobody in the groups
    # Finished: the same groups may be checked again.
    call(me, "CheckSimilarPerson", GroupIds=["a", "b"], UniquePersonControl=2)
    services.jobs.run_until_idle(timeout=60)


def test_paged_snapshot_and_a_runner_stopped_mid_job(inproc_services, monkeypatch):
    """Snapshot pages of 2 persons and search batches of 2, the runner stopped after a few
    steps (its lease handed back, as at a shutdown) and the job finished by a later run: the
    same pairs as the HTTP test's check."""
    import base64

    from images import LFW
    from openiai.api.dispatch import dispatch
    from openiai.services import similar_persons as sp

    monkeypatch.setattr(sp, "SNAPSHOT_PAGE", 2)
    monkeypatch.setattr(sp, "BATCH", 2)
    services = inproc_services("sqlite")
    me = services.keys.ensure_account(f"dupes-{uuid.uuid4().hex[:6]}")

    def call(action, **params):
        return dispatch(services, me, "2020-03-03", action, params)

    def photo(name, number):
        return base64.b64encode((LFW / name / f"{name}_{number:04d}.jpg").read_bytes()).decode()

    call("CreateGroup", GroupId="g", GroupName="g")
    planted = set()
    for name, a, b, _ in PLANTED:
        for suffix, number in (("a", a), ("b", b)):
            call("CreatePerson", GroupId="g", PersonId=f"{name}-{suffix}", PersonName=name,
                 Image=photo(name, number))
        planted.add(frozenset((f"{name}-a", f"{name}-b")))
    for name, number, _ in SINGLES:
        call("CreatePerson", GroupId="g", PersonId=name, PersonName=name, Image=photo(name, number))
    job_id = call("CheckSimilarPerson", GroupIds=["g"], UniquePersonControl=1)["JobId"]
    services.jobs.run_next(throttle=False, max_steps=4)  # 9 persons: 5 pages, not all read
    progress = call("GetSimilarPersonResult", JobId=job_id)["Progress"]
    assert 0 < progress < sp.SNAPSHOT_SHARE
    services.jobs.run_next(throttle=False, max_steps=4)  # into the searches
    assert sp.SNAPSHOT_SHARE < call("GetSimilarPersonResult", JobId=job_id)["Progress"] < 100
    services.jobs.run_until_idle(timeout=60)
    done = call("GetSimilarPersonResult", JobId=job_id)
    rows = json.loads(services.links.open(done["SimilarPersonsUrl"].rsplit("/", 1)[1]).read_text())
    assert {frozenset((r["PersonId"], r["SimilarPersonId"])) for r in rows} == planted
