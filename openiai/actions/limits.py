"""The documented limits on names and IDs, each with its documented error code."""

from __future__ import annotations

import re
import unicodedata

from ..core import versions
from ..core.errors import ApiError, value

ID_RE = re.compile(r"^[A-Za-z0-9\-%@#&_]+$")
ID_MAX_BYTES = 64
GROUP_NAME_MAX = 60
TAG_MAX = 40
EX_DESCRIPTIONS_MAX = 5
EX_DESCRIPTION_NAME_MAX = 30
PERSON_NAME_MAX = 60
PERSON_EX_VALUE_MAX = 60
GROUPS_PER_ACCOUNT = 100_000
GROUPS_PER_PERSON = 100
FACES_PER_PERSON = 5
OFFSET_MAX = 2**63 - 1  # the largest OFFSET PostgreSQL and SQLite take


def _check_id(raw: str, kind: str) -> str:
    if not raw:
        raise value(f"{kind}Illegal", f"{kind} must not be empty.")
    if len(raw.encode("utf-8")) > ID_MAX_BYTES:
        raise value(f"{kind}TooLong", f"{kind} may be at most {ID_MAX_BYTES} bytes.")
    if not ID_RE.fullmatch(raw):  # not match(): `$` would let a trailing newline through
        raise value(f"{kind}Illegal", f"{kind} `{raw}` may contain only letters, digits and "
                    "the symbols -%@#&_.")
    return raw


def group_id(raw: str) -> str:
    return _check_id(raw, "GroupId")


def person_id(raw: str) -> str:
    return _check_id(raw, "PersonId")


# The docs allow "letters, digits, - and _" in names, tags and descriptions, yet the service
# (and this server's own tests) take spaces, punctuation and CJK. So the rule enforced is
# "visible text": what can never be meant as part of a name is refused - control characters
# (NUL, newline, ...: Cc), format characters (bidi overrides, zero-width spaces and joiners,
# BOM: Cf), lone surrogates (Cs) and line/paragraph separators (Zl, Zp). Those can hide or
# reorder what a listing shows, or break a consumer that stores the text as C strings.
_NOT_TEXT = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _text(raw: str, code: str, name: str) -> str:
    for ch in raw:
        if unicodedata.category(ch) in _NOT_TEXT:
            raise value(code, f"{name} contains the character U+{ord(ch):04X}; control, format "
                        "(bidi, zero-width) and separator characters are not allowed.")
    return raw


def group_name(raw: str) -> str:
    if not raw or not raw.strip():
        raise value("GroupNameIllegal", "GroupName must be 1 to 60 characters long.")
    if len(raw) > GROUP_NAME_MAX:
        raise value("GroupNameTooLong", f"GroupName may be at most {GROUP_NAME_MAX} characters.")
    return _text(raw, "GroupNameIllegal", "GroupName")


def tag(raw: str | None) -> str:
    raw = raw or ""
    if len(raw) > TAG_MAX:
        raise value("GroupTagTooLong", f"Tag may be at most {TAG_MAX} characters.")
    return _text(raw, "GroupTagIllegal", "Tag")


def ex_description_name(raw: str) -> str:
    if not raw or not raw.strip():
        raise value("GroupExDescriptionsNameIllegal",
                    "Each group ex-description field name must be 1 to 30 characters long.")
    if len(raw) > EX_DESCRIPTION_NAME_MAX:
        raise value("GroupExDescriptionsNameTooLong",
                    f"Group ex-description field names may be at most {EX_DESCRIPTION_NAME_MAX} "
                    "characters.")
    return _text(raw, "GroupExDescriptionsNameIllegal", "A group ex-description field name")


def ex_description_names(names: list[str]) -> list[str]:
    if len(names) > EX_DESCRIPTIONS_MAX:
        raise value("GroupExDescriptionsExceed",
                    f"A group may have at most {EX_DESCRIPTIONS_MAX} ex-description fields.")
    for name in names:
        ex_description_name(name)
    if len(set(names)) != len(names):
        raise value("GroupExDescriptionsNameIdentical",
                    "Group ex-description field names must be unique within the group.")
    return list(names)


def person_name(raw: str) -> str:
    if not raw or not raw.strip():
        raise value("PersonNameIllegal", "PersonName must be 1 to 60 characters long.")
    if len(raw) > PERSON_NAME_MAX:
        raise value("PersonNameTooLong", f"PersonName may be at most {PERSON_NAME_MAX} characters.")
    return _text(raw, "PersonNameIllegal", "PersonName")


def gender(raw: int | None) -> int:
    if raw is None:
        return 0
    if raw not in (0, 1, 2):
        raise value("PersonGenderIllegal", "Gender must be 0 (unset), 1 (male) or 2 (female).")
    return raw


def face_model_version(raw: str | None) -> str:
    if raw is None or raw == "":
        return versions.DEFAULT
    if raw not in versions.VERSIONS:
        raise value("FaceModelVersionIllegal",
                    f"FaceModelVersion must be one of {', '.join(versions.names())}.")
    return raw


def page(offset: int | None, limit: int | None, *, default_limit: int = 10,
         max_limit: int = 1000) -> tuple[int, int]:
    offset = 0 if offset is None else offset
    limit = default_limit if limit is None else limit
    if limit > max_limit:
        raise value("LimitExceed", f"Limit may be at most {max_limit}.")
    # Offset is a uint64 on the wire, but SQL OFFSET is a signed 64-bit integer: past any
    # possible row count every offset reads the same empty page, so it is clamped.
    return min(offset, OFFSET_MAX), limit


# --- persons and faces (CreatePerson ... DeleteFace) ---

PERSON_EX_INFOS_MAX = 5              # PersonExDescriptionInfos: "Up to 5 fields are allowed"
PERSON_GROUP_INFO_MAX_LIMIT = 100    # GetPersonGroupInfo Limit: default 10, max 100
PERSON_LIST_MAX_LIMIT = 1000         # GetPersonList Limit: default 10, max 1000
UPLOAD_FACES_MAX = 4                 # CreateFace: "Up to four faces can be uploaded at a time"
COPY_GROUP_IDS_MAX = GROUPS_PER_PERSON  # more GroupIds than a person may join can never succeed
DEFAULT_FACE_MATCH_THRESHOLD = 60.0  # CreateFace: "Default value: 60. Value range: [0,100]"


def _control_level(raw: int | None, code: str, name: str) -> int:
    if raw is None:
        return 0
    if raw not in (0, 1, 2, 3, 4):
        raise value(code, f"{name} must be 0, 1, 2, 3 or 4.")
    return raw


def quality_control(raw: int | None) -> int:
    return _control_level(raw, "QualityControlIllegal", "QualityControl")


def unique_person_control(raw: int | None) -> int:
    return _control_level(raw, "UniquePersonControlIllegal", "UniquePersonControl")


def face_match_threshold(raw: float | None) -> float:
    if raw is None:
        return DEFAULT_FACE_MATCH_THRESHOLD
    if not (0.0 <= raw <= 100.0):  # also refuses NaN
        raise value("FaceMatchThresholdIllegal", "FaceMatchThreshold must be within [0, 100].")
    return float(raw)


def person_ex_infos(infos, field_count: int) -> dict[int, str]:
    """PersonExDescriptionInfos -> {field index: value}, checked against the group's fields.

    Codes: more than 5 items or an index past the group's fields -> PersonExDescriptionInfosExceed;
    the same index twice -> PersonExDescriptionsNameIdentical; a value over 60 characters ->
    PersonExDescriptionsNameTooLong (the only "too long" code the docs have for these fields).
    """
    infos = infos or []
    if len(infos) > PERSON_EX_INFOS_MAX:
        raise value("PersonExDescriptionInfosExceed",
                    f"PersonExDescriptionInfos may hold at most {PERSON_EX_INFOS_MAX} items.")
    out: dict[int, str] = {}
    for info in infos:
        index, text = info.PersonExDescriptionIndex, info.PersonExDescription
        if index is None or text is None:
            raise ApiError("MissingParameter", "Each PersonExDescriptionInfos item needs "
                           "PersonExDescriptionIndex and PersonExDescription.")
        if index >= field_count:
            raise value("PersonExDescriptionInfosExceed",
                        f"PersonExDescriptionIndex {index} is out of range: the group has "
                        f"{field_count} ex-description field(s), indexed from 0.")
        if index in out:
            raise value("PersonExDescriptionsNameIdentical",
                        f"PersonExDescriptionIndex {index} is given more than once.")
        if len(text) > PERSON_EX_VALUE_MAX:
            raise value("PersonExDescriptionsNameTooLong",
                        f"PersonExDescription may be at most {PERSON_EX_VALUE_MAX} characters.")
        out[index] = _text(text, "PersonExDescriptionsNameIllegal", "PersonExDescription")
    return out

