"""Data written by the previous release (database revision 0002) after the upgrade to head.

The old data directory is built the way that release wrote it: the schema migrated to 0002
only, and the rows it stored - one SFace vector per face in ``faces.feature``, the 112x112
aligned crop as PNG in ``faces.aligned_crop``, and the change log entries ``add_face`` and
the commit hook recorded - written with plain SQL against that schema, from real LFW photos.
A real server then starts on it (migrating to head) and must find, verify, extend and shrink
the migrated persons as if they had been enrolled through it.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from conftest import TESTDATA
from harness import Api, Server
from images import b64

LFW = TESTDATA / "lfw" / "images"
OLD_REVISION = "0002"
SFACE_TEMPLATE = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                  [41.5493, 92.3655], [70.7299, 92.2041]]

# group -> (FaceModelVersion, persons); a person in two groups was copied by CopyPerson.
GROUPS = {
    "staff": ("3.0", ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]),
    "guests": ("3.0", ["Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez"]),
    "legacy": ("2.0", ["Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi"]),
}
FACES_PER_PERSON = 2  # photos 1 and 2 enrolled; photo 3 is kept back for CreateFace


# --------------------------------------------------------------------------- the old release

# The tables of revision 0002 that the old release wrote, with its columns.
_t = {
    "accounts": sa.table("accounts", sa.column("id"), sa.column("name"), sa.column("created_ms")),
    "groups": sa.table("groups", sa.column("pk"), sa.column("account_id"), sa.column("group_id"),
                       sa.column("name"), sa.column("tag"), sa.column("ex_descriptions", sa.JSON),
                       sa.column("face_model_version"), sa.column("created_ms"),
                       sa.column("updated_ms")),
    "persons": sa.table("persons", sa.column("pk"), sa.column("account_id"),
                        sa.column("person_id"), sa.column("name"), sa.column("gender"),
                        sa.column("face_model_version"), sa.column("created_ms")),
    "memberships": sa.table("memberships", sa.column("group_pk"), sa.column("person_pk"),
                            sa.column("ex_descriptions", sa.JSON), sa.column("created_ms")),
    "faces": sa.table("faces", sa.column("pk"), sa.column("account_id"), sa.column("face_id"),
                      sa.column("person_pk"), sa.column("face_model_version"), sa.column("x"),
                      sa.column("y"), sa.column("width"), sa.column("height"),
                      sa.column("feature", sa.LargeBinary),
                      sa.column("aligned_crop", sa.LargeBinary),
                      sa.column("quality"), sa.column("created_ms")),
    "index_changes": sa.table("index_changes", sa.column("account_id"),
                              sa.column("face_model_version"), sa.column("kind"),
                              sa.column("payload", sa.JSON), sa.column("vector", sa.LargeBinary),
                              sa.column("created_ms")),
}


@dataclass
class OldFace:
    pk: int
    face_id: str
    person: str
    photo: Path
    version: str
    feature: bytes
    crop: bytes


@dataclass
class OldData:
    account: str
    faces: list[OldFace] = field(default_factory=list)
    kept_back: dict[str, Path] = field(default_factory=dict)  # person -> an unused photo

    def of(self, person: str) -> list[OldFace]:
        return [f for f in self.faces if f.person == person]


def photos(person: str) -> list[Path]:
    return sorted((LFW / person).glob("*.jpg"))[:FACES_PER_PERSON + 1]


def old_face(path: Path) -> tuple[tuple[int, int, int, int], np.ndarray, bytes]:
    """(rect, SFace vector, PNG of the 112x112 aligned crop): what the old CreatePerson kept."""
    from images import pipeline
    from openiai.vision.image import decode_bytes

    engine = pipeline()
    pixels = decode_bytes(path.read_bytes()).pixels
    face = engine.detect(pixels, max_faces=1)[0]
    crop = engine.aligned_crop(pixels, face, "3.0")
    feature = np.asarray(engine.zoo.get("sface").embed([crop])[0], "<f4")
    rect = tuple(int(round(float(v))) for v in face.box)
    return rect, feature, cv2.imencode(".png", crop)[1].tobytes()


def alembic_config() -> Config:
    from openiai.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def write_old_release(engine: sa.Engine) -> OldData:
    """Migrate to 0002 and store GROUPS as the old release did, change log included."""
    migrate(engine, OLD_REVISION)
    data = OldData(account=f"legacy-{uuid.uuid4().hex[:6]}")
    clock = itertools.count(1_700_000_000_000, 1000)
    t = _t
    with engine.begin() as conn:
        account = conn.execute(t["accounts"].insert().values(
            name=data.account, created_ms=next(clock)).returning(t["accounts"].c.id)).scalar_one()
        group_pks, person_pks, person_groups = {}, {}, {}
        for group, (version, persons) in GROUPS.items():
            now = next(clock)
            group_pks[group] = conn.execute(t["groups"].insert().values(
                account_id=account, group_id=group, name=group, tag="", ex_descriptions=[],
                face_model_version=version, created_ms=now, updated_ms=now
            ).returning(t["groups"].c.pk)).scalar_one()
            for person in persons:
                person_groups.setdefault(person, []).append(group_pks[group])
                if person not in person_pks:
                    person_pks[person] = _old_person(conn, data, account, person, version, clock)
                conn.execute(t["memberships"].insert().values(
                    group_pk=group_pks[group], person_pk=person_pks[person], ex_descriptions=[],
                    created_ms=next(clock)))
        # The commit hook's person_upsert: the fused vector and the full group list.
        for person, pk in person_pks.items():
            faces = data.of(person)
            vectors = np.stack([np.frombuffer(f.feature, "<f4") for f in faces])
            fused = vectors.mean(axis=0)
            fused /= np.linalg.norm(fused)
            conn.execute(t["index_changes"].insert().values(
                account_id=account, face_model_version=faces[0].version, kind="person_upsert",
                payload={"person": pk, "groups": sorted(person_groups[person])},
                vector=fused.astype("<f4").tobytes(), created_ms=next(clock)))
    return data


def _old_person(conn, data: OldData, account: int, person: str, version: str, clock) -> int:
    t = _t
    pk = conn.execute(t["persons"].insert().values(
        account_id=account, person_id=person, name=person.replace("_", " "), gender=0,
        face_model_version=version, created_ms=next(clock)
    ).returning(t["persons"].c.pk)).scalar_one()
    *enrolled, kept_back = photos(person)
    data.kept_back[person] = kept_back
    for photo in enrolled:
        rect, feature, crop = old_face(photo)
        face_id = str(10**18 + secrets.randbelow(9 * 10**18))
        face_pk = conn.execute(t["faces"].insert().values(
            account_id=account, face_id=face_id, person_pk=pk, face_model_version=version,
            x=rect[0], y=rect[1], width=rect[2], height=rect[3], feature=feature.tobytes(),
            aligned_crop=crop, quality=None, created_ms=next(clock)
        ).returning(t["faces"].c.pk)).scalar_one()
        conn.execute(t["index_changes"].insert().values(
            account_id=account, face_model_version=version, kind="face_upsert",
            payload={"face": face_pk, "person": pk}, vector=feature.tobytes(),
            created_ms=next(clock)))
        data.faces.append(OldFace(face_pk, face_id, person, photo, version, feature.tobytes(),
                                  crop))
    return pk


# --------------------------------------------------------------------------- helpers

def database(tmp_path: Path, database_url: str | None) -> tuple[Path, str]:
    """(data dir, database URL) for a server started on that data dir."""
    from openiai.core.settings import Settings

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return data_dir, Settings(data_dir=data_dir, database_url=database_url).db_url


def image(path: Path) -> str:
    return b64(path.relative_to(TESTDATA))


def top(out: dict) -> dict:
    return out["Results"][0]["Candidates"][0]


def stored_rows(url: str, face_pks: list[int]) -> dict[int, tuple]:
    """face pk -> (version, {model version: vector bytes}, crop bytes, crop landmarks)."""
    from openiai.store.db import Database
    from openiai.store.schema import Face, FaceFeature

    db = Database(url)
    try:
        with db.read() as s:
            out = {f.pk: (f.face_model_version, {}, f.crop_image, f.crop_landmarks)
                   for f in s.query(Face).filter(Face.pk.in_(face_pks))}
            for v in s.query(FaceFeature).filter(FaceFeature.face_pk.in_(face_pks)):
                out[v.face_pk][1][v.model_version] = v.vector
    finally:
        db.dispose()
    return out


# --------------------------------------------------------------------------- tests

def test_previous_release_data_serves_after_upgrade(tmp_path, database_url):
    from openiai.store.db import make_engine
    from openiai.vision.canonical import decode_crop

    data_dir, url = database(tmp_path, database_url)
    engine = make_engine(url)
    try:
        old = write_old_release(engine)
    finally:
        engine.dispose()

    srv = Server(data_dir, database_url=database_url)
    srv.start()  # migrates to head, rebuilds the index from the migrated tables
    try:
        api = Api(srv, *srv.create_key(old.account))
        # 2.0's dlib vectors are re-extracted by a background job the server queued.
        assert wait_for_jobs(url) == {"reextract_missing": "done"}

        # The rows moved: each vector under its face's own version, the old crop as the crop.
        rows = stored_rows(url, [f.pk for f in old.faces])
        for f in old.faces:
            version, vectors, crop, landmarks = rows[f.pk]
            assert version == f.version
            if f.version == "2.0":  # an SFace vector; 2.0's own is re-extracted (migration 0004)
                assert vectors["2.0sface"] == f.feature and set(vectors) == {"2.0", "2.0sface"}
            else:
                assert vectors == {f.version: f.feature}
            assert crop == f.crop and decode_crop(crop).shape == (112, 112, 3)
            assert np.allclose(landmarks, SFACE_TEMPLATE)

        # Every face and every person is found with its own photo.
        for group, (version, persons) in GROUPS.items():
            counts = api.call("GetPersonListNum", GroupId=group)
            assert (counts["PersonNum"], counts["FaceNum"]) == (len(persons),
                                                                len(persons) * FACES_PER_PERSON)
            for person in persons:
                for f in old.of(person):
                    hit = top(api.call("SearchFaces", GroupIds=[group], Image=image(f.photo)))
                    assert (hit["FaceId"], hit["PersonId"]) == (f.face_id, person), (group, f)
                    # 2.0's dlib vector comes from the old 112 px crop (black past its edges).
                    assert hit["Score"] > (99 if version == "3.0" else 90), (hit, version)
                if version == "3.0":
                    first, second = old.of(person)
                    out = api.call("SearchPersons", GroupIds=[group], Image=image(first.photo))
                    assert top(out)["PersonId"] == person, (group, person)
                    assert api.call("VerifyPerson", PersonId=person,
                                    Image=image(second.photo))["IsMatch"]

        # CreateFace compares with the migrated faces, then stores a canonical crop beside them.
        colin, blair = "Colin_Powell", "Tony_Blair"
        refused = api.call("CreateFace", PersonId=colin, Images=[image(old.of(blair)[0].photo)],
                           FaceMatchThreshold=80)
        assert refused["RetCode"] == [-1604] and refused["SucFaceNum"] == 0
        added = api.call("CreateFace", PersonId=colin, Images=[image(old.kept_back[colin])],
                         FaceMatchThreshold=0)
        assert added["SucFaceNum"] == 1
        new_face = added["SucFaceIds"][0]
        hit = top(api.call("SearchFaces", GroupIds=["staff"], Image=image(old.kept_back[colin])))
        assert (hit["FaceId"], hit["PersonId"]) == (new_face, colin)

        # DeleteFace removes a migrated face (and its vectors) from the index.
        gone = old.of(blair)[1]
        assert api.call("DeleteFace", PersonId=blair, FaceIds=[gone.face_id])["SucDeletedNum"] == 1
        hit = top(api.call("SearchFaces", GroupIds=["staff"], Image=image(gone.photo)))
        assert hit["FaceId"] != gone.face_id and hit["PersonId"] == blair  # its other photo
        assert stored_rows(url, [gone.pk]) == {}

        # And after a restart, which loads the index snapshot written at shutdown.
        srv.stop()
        srv.start()
        api = Api(srv, *srv.create_key(old.account))
        hit = top(api.call("SearchFaces", GroupIds=["staff"], Image=image(old.kept_back[colin])))
        assert hit["FaceId"] == new_face
        for f in old.of("Hugo_Chavez"):
            hit = top(api.call("SearchFaces", GroupIds=["guests"], Image=image(f.photo)))
            assert hit["FaceId"] == f.face_id
    finally:
        srv.stop()


def wait_for_jobs(url: str, timeout: float = 120.0) -> dict:
    """{kind: status} of the database's background jobs once none is queued or running."""
    import time

    from openiai.store.db import make_engine

    engine = make_engine(url)
    try:
        deadline = time.time() + timeout
        while True:
            with engine.connect() as conn:
                rows = dict(conn.execute(sa.text("SELECT kind, status FROM jobs")).all())
            if not set(rows.values()) & {"queued", "running"} or time.time() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        engine.dispose()


def test_downgrade_restores_the_previous_schema(tmp_path, database_url):
    """0003 -> 0002 puts each face's own vector back and a 112x112 SFace crop, for old faces
    the very bytes they had; a face without a vector under its own version stops it."""
    from openiai.store.db import Database, make_engine
    from openiai.store.faces import add_face
    from openiai.store.schema import FaceFeature, Person
    from openiai.vision.canonical import canonical_crop, encode_crop
    from images import pipeline
    from openiai.vision.image import decode_bytes

    _, url = database(tmp_path, database_url)
    engine = make_engine(url)
    try:
        old = write_old_release(engine)
        migrate(engine, "head")
        # One face stored by this release: a canonical crop and vectors under two versions.
        photo = old.kept_back["Colin_Powell"]
        pixels = decode_bytes(photo.read_bytes()).pixels
        face = pipeline().detect(pixels, max_faces=1)[0]
        crop, landmarks = canonical_crop(pixels, face.landmarks)
        vector = pipeline().features(pixels, [face], "3.0")[0]
        db = Database(url)
        with db.write() as s:
            person = s.query(Person).filter(Person.person_id == "Colin_Powell").one()
            new = add_face(s, account_id=person.account_id, person_pk=person.pk,
                           model_version="3.0", rect=(0, 0, 10, 10),
                           features={"3.0": vector, "9.9": -vector}, crop=encode_crop(crop),
                           crop_landmarks=landmarks)
            new_pk = new.pk
        db.dispose()

        migrate(engine, OLD_REVISION, down=True)
        with engine.connect() as conn:
            faces = _t["faces"]
            back = {pk: (feature, png) for pk, feature, png in conn.execute(
                sa.select(faces.c.pk, faces.c.feature, faces.c.aligned_crop))}
        for f in old.faces:
            assert back[f.pk] == (f.feature, f.crop)
        feature, png = back[new_pk]
        assert np.array_equal(np.frombuffer(feature, "<f4"), vector.astype("<f4"))
        recut = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        aligned = pipeline().aligned_crop(pixels, face, "3.0")
        assert recut.shape == (112, 112, 3)
        assert np.abs(recut.astype(int) - aligned).mean() < 8  # JPEG and two resamplings

        migrate(engine, "head")  # and up again: the same rows as the first upgrade
        rows = stored_rows(url, [f.pk for f in old.faces] + [new_pk])
        # (2.0's SFace vectors step aside until a server re-extracts: migration 0004)
        assert all(rows[f.pk][1] == {"2.0sface" if f.version == "2.0" else f.version: f.feature}
                   for f in old.faces)
        assert list(rows[new_pk][1]) == ["3.0"] and rows[new_pk][2] == png
        db = Database(url)
        with db.write() as s:
            s.query(FaceFeature).filter(FaceFeature.face_pk == old.faces[0].pk).delete()
        db.dispose()
        with pytest.raises(RuntimeError, match="no vector under their own FaceModelVersion"):
            migrate(engine, OLD_REVISION, down=True)
    finally:
        engine.dispose()
