"""The database schema. Every row that belongs to a tenant carries ``account_id``; IDs chosen
by clients (GroupId, PersonId) are unique per account only, so two accounts never collide.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    __tablename__ = "api_keys"
    secret_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # Fernet token of the SecretKey; the master key lives in a file outside the database.
    secret_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class Group(Base):
    __tablename__ = "groups"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    group_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str] = mapped_column(String(255), default="")
    ex_descriptions: Mapped[list] = mapped_column(JSON, default=list)  # up to 5 field names
    face_model_version: Mapped[str] = mapped_column(String(8))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("account_id", "group_id", name="uq_groups_account_group_id"),
        UniqueConstraint("account_id", "name", name="uq_groups_account_name"),
    )


class Person(Base):
    __tablename__ = "persons"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    person_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    gender: Mapped[int] = mapped_column(Integer, default=0)
    # A person's faces are embedded with one recognizer, so all its groups share this version.
    face_model_version: Mapped[str] = mapped_column(String(8))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("account_id", "person_id", name="uq_persons_account_person_id"),
    )


class Membership(Base):
    """A person in a group, with the values of that group's ex-description fields."""

    __tablename__ = "memberships"
    group_pk: Mapped[int] = mapped_column(ForeignKey("groups.pk", ondelete="CASCADE"),
                                          primary_key=True)
    person_pk: Mapped[int] = mapped_column(ForeignKey("persons.pk", ondelete="CASCADE"),
                                           primary_key=True)
    ex_descriptions: Mapped[list] = mapped_column(JSON, default=list)  # aligned to the group's
    created_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (Index("ix_memberships_person", "person_pk"),)


class Face(Base):
    __tablename__ = "faces"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    face_id: Mapped[str] = mapped_column(String(64), unique=True)
    person_pk: Mapped[int] = mapped_column(ForeignKey("persons.pk", ondelete="CASCADE"), index=True)
    face_model_version: Mapped[str] = mapped_column(String(8))
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # The canonical crop every recognizer re-extracts features from (openiai.vision.canonical):
    # a 320x320 JPEG; faces stored before revision 0003 keep their 112x112 SFace PNG.
    crop_image: Mapped[bytes] = mapped_column(LargeBinary)
    # The face's 5 landmarks in crop_image's pixels, [[x, y], ...] in YuNet order.
    crop_landmarks: Mapped[list] = mapped_column(JSON)
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class FaceFeature(Base):
    """One face's feature vector under one FaceModelVersion.

    A face is served (indexed, searched, verified) under its ``Face.face_model_version``, and
    that vector is always here; vectors under other versions are extracted from the crop ahead
    of a group's upgrade to them."""

    __tablename__ = "face_features"
    face_pk: Mapped[int] = mapped_column(
        ForeignKey("faces.pk", ondelete="CASCADE", name="fk_face_features_face_pk"),
        primary_key=True)
    model_version: Mapped[str] = mapped_column(String(8), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian, L2-normalised
    created_ms: Mapped[int] = mapped_column(BigInteger)


class IndexChange(Base):
    """The vector index's change log: one row per change, written in the same transaction as
    the rows it describes. ``seq`` only grows (AUTOINCREMENT on SQLite, a sequence on
    PostgreSQL, writers serialised), so "everything after seq N" is exactly what an index
    snapshot taken at N is missing. Kinds and payloads: ``openiai.core.changes.KINDS``."""

    __tablename__ = "index_changes"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    account_id: Mapped[int] = mapped_column(Integer)
    face_model_version: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32 LE
    created_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = {"sqlite_autoincrement": True}


class IndexState(Base):
    """Small named values about the change log: ``pruned_through`` (every change up to this
    seq is gone, so an index older than it must be rebuilt) and ``database_id`` (a random
    id, so a snapshot is never loaded against a different database)."""

    __tablename__ = "index_state"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))


class Job(Base):
    """A background job (:mod:`openiai.services.jobs`). ``status``: queued, running, done,
    failed. ``checkpoint`` is the handler's own resume point, saved with each batch's writes;
    ``result`` what it reports when done (kind-specific, e.g. an upgrade's counts).
    ``account_id`` is None for the server's own jobs (re-extraction at start-up)."""

    __tablename__ = "jobs"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(96))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE", name="fk_jobs_account"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    checkpoint: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    finished_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (
        UniqueConstraint("job_id", name="uq_jobs_job_id"),
        Index("ix_jobs_account_kind", "account_id", "kind", "created_ms"),
        Index("ix_jobs_status", "status"),
    )
