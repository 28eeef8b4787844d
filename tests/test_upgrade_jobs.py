"""Group FaceModelVersion upgrades (issue 12 item 2): UpgradeGroupFaceModelVersion,
GetUpgradeGroupFaceModelVersionResult, GetUpgradeGroupFaceModelVersionJobList and
RevertGroupFaceModelVersion.

In-process (SQLite and PostgreSQL): a 2.0 group upgraded to 3.0 one batch at a time, with
every acknowledged face found in the index under the group's version after every step (the
group serves on 2.0 until the switch), a face enrolled mid-job, the documented refusals, one
revert per group, and a face whose stored crop is unreadable (Status 3, FailedFacesUrl).
Over HTTP with the official SDK (both API versions): the same upgrade while searches keep
answering, a SIGKILL of the server mid-job and a restart that resumes from the saved
checkpoint, and the signed FailedFacesUrl link fetched, tampered with and expired.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import select

from conftest import TESTDATA
from harness import Api, Server
from images import b64

LFW = TESTDATA / "lfw" / "images"


def _people(count: int, faces: int) -> list[tuple[str, list[str]]]:
    """The first ``count`` LFW people (sorted) with more than ``faces`` photos: (name, files);
    the last file of each is kept back as a probe."""
    out = []
    for d in sorted(LFW.iterdir()):
        files = sorted(d.iterdir())
        if len(files) > faces:
            out.append((d.name, [str(f.relative_to(TESTDATA)) for f in files[:faces + 1]]))
        if len(out) == count:
            return out
    raise AssertionError("not enough LFW people")


def _enrol(api, group: str, people) -> None:
    for name, files in people:
        api.call("CreatePerson", GroupId=group, PersonId=name, PersonName=name,
                 Image=b64(files[0]))
        if len(files) > 2:
            api.call("CreateFace", PersonId=name, Images=[b64(f) for f in files[1:-1]],
                     FaceMatchThreshold=0)


def assert_all_searchable(services, account_id: int, group_id: str) -> str:
    """Every face of the group is in the index under the group's version, found first by its
    own stored vector within the group, and nothing of the group is under the other version.
    Returns the group's version."""
    from openiai.core.features import from_bytes
    from openiai.core.versions import names
    from openiai.store.repo import get_group
    from openiai.store.schema import Face, FaceFeature, Membership

    with services.db.read() as s:
        group = get_group(s, account_id, group_id)
        version = group.face_model_version
        rows = s.execute(select(Face.pk, Face.face_model_version, FaceFeature.vector)
                         .join(Membership, Membership.person_pk == Face.person_pk)
                         .outerjoin(FaceFeature, (FaceFeature.face_pk == Face.pk)
                                    & (FaceFeature.model_version == version))
                         .where(Membership.group_pk == group.pk)).all()
    assert rows and all(v == version and vec is not None for _, v, vec in rows)
    import numpy as np

    queries = np.stack([from_bytes(vec) for _, _, vec in rows])
    hits = services.index.search_faces(account_id, version, queries, [group.pk], 1,
                                       unique_persons=False)
    assert [h[0].face for h in hits] == [pk for pk, _, _ in rows]
    assert services.index.group_counts(account_id, version, [group.pk])["faces"] == len(rows)
    for other in set(names()) - {version}:
        assert services.index.group_counts(account_id, other, [group.pk])["faces"] == 0
    return version


def _step(services) -> None:
    """One batch of the oldest unfinished job, then the lease goes back (as a runner would
    between two steps, minus the sleep)."""
    assert services.jobs.run_next(throttle=False, max_steps=1)


def _result(api, job_id: str) -> dict:
    return api.call("GetUpgradeGroupFaceModelVersionResult", JobId=job_id)


def test_upgrade_step_by_step_revert_once(inproc):
    services = inproc.services
    people = _people(8, 2)  # 8 persons x 2 faces, probes kept back
    inproc.call("CreateGroup", GroupId="old", GroupName="Old", FaceModelVersion="2.0")
    inproc.call("CreateGroup", GroupId="side", GroupName="Side", FaceModelVersion="2.0")
    inproc.call("CreateGroup", GroupId="new", GroupName="New", FaceModelVersion="3.0")
    _enrol(inproc, "old", people)
    assert assert_all_searchable(services, inproc.account_id, "old") == "2.0"

    # The documented refusals.
    up = "UpgradeGroupFaceModelVersion"
    assert inproc.code(up, GroupId="none", FaceModelVersion="3.0") == \
        "InvalidParameterValue.GroupIdNotExist"
    assert inproc.code(up, GroupId="old", FaceModelVersion="4.0") == \
        "InvalidParameterValue.FaceModelVersionIllegal"
    assert inproc.code(up, GroupId="old", FaceModelVersion="2.0") == \
        "FailedOperation.GroupCannotUpgrade"  # the same version
    assert inproc.code(up, GroupId="new", FaceModelVersion="2.0") == \
        "FailedOperation.GroupCannotUpgrade"  # an older one
    inproc.call("CopyPerson", PersonId=people[0][0], GroupIds=["side"])
    err = inproc.error(up, GroupId="old", FaceModelVersion="3.0")  # shares a person with side
    assert err.code == "FailedOperation.GroupCannotUpgrade" and people[0][0] in err.message
    inproc.call("DeletePersonFromGroup", PersonId=people[0][0], GroupId="side")
    assert inproc.code("GetUpgradeGroupFaceModelVersionResult", JobId="nope") == \
        "FailedOperation.UpgradeJobIdNotExist"

    services.jobs.batch = 4
    job = inproc.call(up, GroupId="old", FaceModelVersion="3.0")["JobId"]
    assert re.fullmatch(rf"{inproc.account_id}_upgrade_group_\d+_[A-Za-z0-9]{{8}}", job)
    assert inproc.code(up, GroupId="old", FaceModelVersion="3.0") == \
        "FailedOperation.GroupCannotUpgrade"  # one at a time
    assert inproc.code("RevertGroupFaceModelVersion", JobId=job) == \
        "FailedOperation.JobCannnotRollback"  # not finished
    first = _result(inproc, job)
    assert (first["Status"], first["Progress"], first["FromFaceModelVersion"],
            first["ToFaceModelVersion"], first["GroupId"], first["FailedFacesUrl"]) == \
        (0, 0.0, "2.0", "3.0", "old", "")

    progress = []
    late = _people(9, 2)[-1]
    for i in range(30):
        _step(services)
        r = _result(inproc, job)
        progress.append(r["Progress"])
        if r["Status"] != 0:
            break
        assert assert_all_searchable(services, inproc.account_id, "old") == "2.0"
        if i == 1:  # a person enrolled mid-job: scanned with the rest, searchable throughout
            _enrol(inproc, "old", [late])
    assert r["Status"] == 1 and r["Progress"] == 100.0 and r["EndTimestamp"] >= r["StartTime"]
    assert progress == sorted(progress) and len(progress) >= 4
    assert assert_all_searchable(services, inproc.account_id, "old") == "3.0"
    assert inproc.call("GetGroupInfo", GroupId="old")["FaceModelVersion"] == "3.0"
    found = inproc.call("SearchPersons", GroupIds=["old"], Image=b64(late[1][-1]))
    assert found["FaceModelVersion"] == "3.0"
    assert found["Results"][0]["Candidates"][0]["PersonId"] == late[0]

    # After the switch, a face enrolled on 3.0 only: the revert re-extracts its 2.0 vector.
    inproc.call("CreateFace", PersonId=people[1][0], Images=[b64(people[1][1][-1])],
                FaceMatchThreshold=0)
    listing = inproc.call("GetUpgradeGroupFaceModelVersionJobList", Offset=0, Limit=10)
    assert listing["JobNum"] == 1 and listing["JobInfos"][0]["JobId"] == job
    assert listing["JobInfos"][0]["Status"] == 1
    assert inproc.call("RevertGroupFaceModelVersion", JobId=job) == {"RequestId": ANY}
    assert _result(inproc, job)["Status"] == 2
    assert assert_all_searchable(services, inproc.account_id, "old") == "2.0"
    assert inproc.code("RevertGroupFaceModelVersion", JobId=job) == \
        "FailedOperation.JobCannnotRollback"

    # Upgraded again: allowed; reverted again: refused (one revert per group).
    again = inproc.call(up, GroupId="old", FaceModelVersion="3.0")["JobId"]
    services.jobs.run_until_idle(timeout=120)
    assert _result(inproc, again)["Status"] == 1
    assert assert_all_searchable(services, inproc.account_id, "old") == "3.0"
    err = inproc.error("RevertGroupFaceModelVersion", JobId=again)
    assert err.code == "FailedOperation.JobCannnotRollback" and "only once" in err.message
    page = inproc.call("GetUpgradeGroupFaceModelVersionJobList", Offset=1, Limit=1)
    assert page["JobNum"] == 2 and [j["JobId"] for j in page["JobInfos"]] == [job]
    assert inproc.code("GetUpgradeGroupFaceModelVersionJobList", Limit=1001) == \
        "InvalidParameterValue.LimitExceed"


class _Any:
    def __eq__(self, other) -> bool:
        return True


ANY = _Any()


def _corrupt_one_crop(db, account_id: int, person_id: str) -> str:
    """Overwrite one stored crop of the person with bytes no decoder reads; its FaceId."""
    from openiai.store.schema import Face, Person

    with db.write() as s:
        face = s.scalars(select(Face).join(Person, Person.pk == Face.person_pk)
                         .where(Person.person_id == person_id,
                                Person.account_id == account_id)).first()
        face.crop_image = b"this is not an image"
        return face.face_id


@pytest.mark.parametrize("inproc", ["sqlite"], indirect=True)
def test_unreadable_crop_fails_the_upgrade_with_a_signed_list(inproc):
    services = inproc.services
    people = _people(3, 1)
    inproc.call("CreateGroup", GroupId="lost", GroupName="Lost", FaceModelVersion="2.0")
    _enrol(inproc, "lost", people)
    bad = _corrupt_one_crop(services.db, inproc.account_id, people[1][0])
    job = inproc.call("UpgradeGroupFaceModelVersion", GroupId="lost",
                      FaceModelVersion="3.0")["JobId"]
    services.jobs.run_until_idle(timeout=120)
    r = _result(inproc, job)
    assert r["Status"] == 3 and r["Progress"] == 100.0
    assert assert_all_searchable(services, inproc.account_id, "lost") == "2.0"  # not switched
    token = urlparse(r["FailedFacesUrl"]).path.rsplit("/", 1)[1]
    import json

    listed = json.loads(services.links.open(token).read_bytes())
    assert listed["GroupId"] == "lost"
    assert [(f["FaceId"], f["PersonId"]) for f in listed["FailedFaces"]] == [(bad, people[1][0])]
    from openiai.services.links import LinkError

    with pytest.raises(LinkError):  # half an hour, as the docs say
        services.links.open(token, now=time.time() + 1801)
    assert inproc.code("RevertGroupFaceModelVersion", JobId=job) == \
        "FailedOperation.JobCannnotRollback"


def _wait(api, job_id, until, timeout=120.0, every=0.1) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = api.call("GetUpgradeGroupFaceModelVersionResult", JobId=job_id)
        if until(r):
            return r
        time.sleep(every)
    raise AssertionError(f"job {job_id} never reached the state: {r}")


def test_upgrade_over_http_resumes_after_sigkill(tmp_path):
    # A slow job (2 faces a batch, 5 % of a core) so that the kill lands in its middle.
    server = Server(tmp_path / "srv", extra_env={"OPENIAI_JOBS_SHARE": "0.05",
                                                 "OPENIAI_JOBS_BATCH": "2"})
    server.start()
    try:
        api = Api(server, *server.create_key("upgrader"))
        old = api.variant(version="2018-03-01")
        people = _people(12, 2)
        api.call("CreateGroup", GroupId="big", GroupName="Big", FaceModelVersion="2.0")
        api.call("CreateGroup", GroupId="lost", GroupName="Lost", FaceModelVersion="2.0")
        _enrol(api, "big", people)  # 24 faces
        _enrol(api, "lost", _people(14, 2)[12:])
        bad = _corrupt_crop_in_file(server, "lost")

        job = old.call("UpgradeGroupFaceModelVersion", GroupId="big",
                       FaceModelVersion="3.0")["JobId"]
        probe = b64(people[3][1][-1])
        # Searches keep answering, on 2.0, while the job runs.
        r = _wait(api, job, lambda r: r["Progress"] > 0)
        hit = api.call("SearchFaces", GroupIds=["big"], Image=probe)
        assert hit["FaceModelVersion"] == "2.0"
        assert hit["Results"][0]["Candidates"][0]["PersonId"] == people[3][0]
        before = _wait(api, job, lambda r: r["Progress"] > 0)
        server.kill()
        assert 0 < before["Progress"] < 100 and before["Status"] == 0

        server.env["OPENIAI_JOBS_SHARE"] = "1"
        server.start()
        after = api.call("GetUpgradeGroupFaceModelVersionResult", JobId=job)
        assert after["Progress"] >= before["Progress"]  # resumed, not restarted from zero
        done = _wait(old, job, lambda r: r["Status"] != 0)
        assert done["Status"] == 1 and done["Progress"] == 100.0 and done["FailedFacesUrl"] == ""
        log = server.log_path.read_text()
        resumed = re.findall(rf"job {job} \(upgrade_group\) claimed at ([\d.]+) %", log)
        assert len(resumed) >= 2 and float(resumed[-1]) > 0, log[-2000:]
        hit = api.call("SearchFaces", GroupIds=["big"], Image=probe)
        assert hit["FaceModelVersion"] == "3.0"
        assert hit["Results"][0]["Candidates"][0]["PersonId"] == people[3][0]
        listing = old.call("GetUpgradeGroupFaceModelVersionJobList")
        assert listing["JobNum"] == 1 and listing["JobInfos"][0]["Status"] == 1

        api.call("RevertGroupFaceModelVersion", JobId=job)
        hit = api.call("SearchFaces", GroupIds=["big"], Image=probe)
        assert hit["FaceModelVersion"] == "2.0"
        assert hit["Results"][0]["Candidates"][0]["PersonId"] == people[3][0]
        assert old.code("RevertGroupFaceModelVersion", JobId=job) == \
            "FailedOperation.JobCannnotRollback"

        # A face that cannot be re-extracted: Status 3 and a signed link to the list.
        lost = api.call("UpgradeGroupFaceModelVersion", GroupId="lost",
                        FaceModelVersion="3.0")["JobId"]
        failed = _wait(api, lost, lambda r: r["Status"] != 0)
        assert failed["Status"] == 3 and failed["FailedFacesUrl"].startswith(
            f"http://{server.endpoint}/files/")
        got = httpx.get(failed["FailedFacesUrl"], timeout=10)
        assert got.status_code == 200 and got.headers["content-type"] == "application/json"
        assert [f["FaceId"] for f in got.json()["FailedFaces"]] == [bad]
        url = failed["FailedFacesUrl"]
        tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        assert httpx.get(tampered, timeout=10).status_code == 403
        assert httpx.get(f"http://{server.endpoint}/files/garbage", timeout=10).status_code == 403
        # Another account cannot see the job.
        other = Api(server, *server.create_key("someone-else"))
        assert other.code("GetUpgradeGroupFaceModelVersionResult", JobId=job) == \
            "FailedOperation.UpgradeJobIdNotExist"
        assert other.code("RevertGroupFaceModelVersion", JobId=job) == \
            "FailedOperation.UpgradeJobIdNotExist"
    finally:
        server.stop()


def _corrupt_crop_in_file(server, group_id: str) -> str:
    """Corrupt one stored crop of the group in the server's SQLite database (a lost picture)."""
    from openiai.store.db import Database
    from openiai.store.schema import Face, Group, Membership

    db = Database(f"sqlite:///{server.data_dir / 'openiai.db'}")
    try:
        with db.write() as s:
            face = s.scalars(select(Face).join(Membership, Membership.person_pk == Face.person_pk)
                             .join(Group, Group.pk == Membership.group_pk)
                             .where(Group.group_id == group_id)).first()
            face.crop_image = b"this is not an image"
            return face.face_id
    finally:
        db.dispose()
