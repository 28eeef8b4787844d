"""Property-based fuzzing of every implemented action, generated from the wire schema.

For each (version, action) of ``openiai/api/wire_schema.py``, hypothesis draws parameter sets
where each declared field is absent, well-typed, or malformed (wrong type, out-of-range
integers, lone surrogates, control and bidi characters, over-long text, nested junk), plus the
odd unknown parameter. Every answer must be one the SDKs can read: a documented error code
(never ``InternalError``, i.e. no exception escaping the handler) or success, and an envelope
that encodes as UTF-8 JSON. Afterwards every listing of the account is read back: whatever the
fuzzing managed to store must not break a later read.

Most cases run in-process (the endpoint's own dispatch, tests/inproc.py's tier); a small
sample goes over HTTP in each of the five request styles, where ``wire.check`` also asserts
HTTP 200, ``application/json``, a uuid4 RequestId and no traceback text.

Fixed seed (``derandomize``) and a bounded number of examples keep the run reproducible and
short (about 30 s on 2 cores); raise ``OPENIAI_FUZZ_EXAMPLES`` for a longer campaign.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tencentcloud.iai.v20180301 import errorcodes as errors_2018
from tencentcloud.iai.v20200303 import errorcodes as errors_2020

from harness import SIGNINGS
from wire import Raw, check

from openiai.actions.registry import HANDLERS
from openiai.api.app import envelope
from openiai.api.dispatch import dispatch
from openiai.api.wire_schema import ACTIONS, MODELS
from openiai.core.clock import now_ms
from openiai.core.errors import ApiError
from openiai.store.schema import Group, Membership, Person

EXAMPLES = int(os.environ.get("OPENIAI_FUZZ_EXAMPLES", "40"))

# The common error codes of the API docs (every action may answer them) and each version's
# own codes, as the official SDK lists them.
COMMON_CODES = {
    "AuthFailure.InvalidSecretId", "AuthFailure.MFAFailure", "AuthFailure.SecretIdNotFound",
    "AuthFailure.SignatureExpire", "AuthFailure.SignatureFailure", "AuthFailure.TokenFailure",
    "AuthFailure.UnauthorizedOperation", "AuthFailure.InvalidAuthorization", "DryRunOperation",
    "FailedOperation", "InternalError", "InvalidAction", "InvalidParameter",
    "InvalidParameterValue", "InvalidRequest", "LimitExceeded", "MissingParameter",
    "NoSuchVersion", "RequestLimitExceeded", "RequestSizeLimitExceeded", "ResourceInUse",
    "ResourceInsufficient", "ResourceNotFound", "ResourceUnavailable", "UnauthorizedOperation",
    "UnknownParameter", "UnsupportedOperation", "UnsupportedProtocol", "UnsupportedRegion",
}
DOCUMENTED = COMMON_CODES | {
    v for mod in (errors_2018, errors_2020) for k, v in vars(mod).items()
    if k.isupper() and isinstance(v, str)}

CASES = [(v, a) for v in ACTIONS for a in ACTIONS[v] if a in HANDLERS]

# ---- strategies generated from the wire types -------------------------------------------------

NASTY_TEXT = [
    "", " ", "g", "p", "G", "x" * 61, "x" * 3000, "中文", "工号", "\x00", "a\x00b", "\n", "\t",
    "\x7f", "\u202e", "\u200b", "\ufeff", "\u2028", "\ud800", "f\ud800", "\udfff", "\ud83d\ude00",
    "😀", "NaN", "1e999", "-1", "0", "18446744073709551616", "%00", "%ED%A0%80", "../../etc",
    "'; DROP TABLE groups;--", "http://127.0.0.1:1/x", "http://169.254.169.254/", "ftp://x/y",
    "data:image/png;base64,AAAA", "/9j/4AAQSkZJRg==", "AAAA", "====",
]
BIG_INTS = [0, 1, 2, 3, 4, 5, 100, 1000, 1001, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
            -1, -(2**63), -(2**63) - 1, 10**30]

text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=12),
                 st.text(st.characters(codec="utf-8"), max_size=8))
junk = st.one_of(st.none(), st.booleans(), st.floats(), st.sampled_from(BIG_INTS), text,
                 st.just([]), st.just({}), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def typed(version: str, wire: str, depth: int = 0) -> st.SearchStrategy:
    """A value for a field of this wire type: usually of that type, sometimes not."""
    if wire == "string":
        good = text
    elif wire in ("uint64", "int64"):
        good = st.one_of(st.sampled_from(BIG_INTS), st.integers(-10, 10))
    elif wire == "float":
        good = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                         st.sampled_from([0.0, -0.0, 60.0, 100.0, 100.5, -1.0, 1e308]))
    elif wire == "bool":
        good = st.booleans()
    elif wire.startswith("list:"):
        good = st.lists(typed(version, wire[5:], depth + 1), max_size=6)
    else:
        fields = MODELS[version][wire]
        good = st.fixed_dictionaries({}, optional={
            f: typed(version, t, depth + 1) for f, t in fields.items()})
    if depth > 2:  # keep nested junk small
        return good
    return st.one_of(good, good, good, junk)


# Well-formed values by field name, so that a call gets past its other checks and the one
# malformed field is what the handler meets (ids hit the seeded group "g" and person "p").
VALID = {
    "GroupId": st.sampled_from(["g", "g", "n1", "n2", "n3"]),
    "PersonId": st.sampled_from(["p", "p", "q1", "q2"]),
    "GroupIds": st.sampled_from([["g"], ["g", "n1"]]),
    "GroupName": st.sampled_from(["G", "N1", "N2", "N3"]),
    "PersonName": st.just("P"),
    "Tag": st.just("t"),
    "GroupExDescriptions": st.just(["a", "b"]),
    "GroupExDescriptionInfos": st.just([{"GroupExDescriptionIndex": 0,
                                         "GroupExDescription": "a2"}]),
    "PersonExDescriptionInfos": st.just([{"PersonExDescriptionIndex": 1,
                                          "PersonExDescription": "v"}]),
    "Offset": st.just(0), "Limit": st.just(10),
    "FaceIds": st.just(["f"]),
}


def params_for(version: str, action: str) -> st.SearchStrategy:
    """Valid values for the fields we know, then one field (or an unknown one) malformed."""
    fields = ACTIONS[version][action]["in"]
    base = st.fixed_dictionaries({f: VALID[f] for f in fields if f in VALID})
    names = sorted(fields) + ["(unknown)"]

    def mutate(name: str) -> st.SearchStrategy:
        if name == "(unknown)":
            return st.tuples(st.sampled_from(["Foo", "offset", "X.0", "\ud800"]), junk)
        return st.tuples(st.just(name), typed(version, fields[name][0]))

    bad = st.sampled_from(names).flatmap(mutate)
    return st.tuples(base, bad).map(lambda t: {**t[0], t[1][0]: t[1][1]})


def _assert_answer(version: str, action: str, params: dict) -> None:
    """One in-process call: a documented outcome whose envelope encodes."""
    try:
        fields = dispatch(SERVICES["svc"], SERVICES["account"], version, action, params)
        body = envelope("rid", fields).body
    except ApiError as exc:
        assert exc.code in DOCUMENTED and exc.code != "InternalError", (exc.code, exc.message)
        body = envelope("rid", error=exc).body
    json.loads(body.decode("utf-8"))


SERVICES: dict = {}


def _seed(inproc) -> None:
    """A group and a person the fuzzed ids ("g", "p") hit, so handlers get past the lookups."""
    inproc.call("CreateGroup", GroupId="g", GroupName="G", GroupExDescriptions=["a", "b"])
    with inproc.services.db.write() as s:
        group = s.query(Group).filter_by(account_id=inproc.account_id, group_id="g").one()
        person = Person(account_id=inproc.account_id, person_id="p", name="P", gender=0,
                        face_model_version=group.face_model_version, created_ms=now_ms())
        s.add(person)
        s.flush()
        s.add(Membership(group_pk=group.pk, person_pk=person.pk, created_ms=now_ms(),
                         ex_descriptions=["x", "y"]))


def _read_everything_back(inproc) -> None:
    """Every listing and info read of the account answers (whatever the fuzzing stored)."""
    for version in ACTIONS:
        c = inproc.variant(version=version)
        groups = c.call("GetGroupList", Limit=1000)["GroupInfos"]
        for g in groups:
            c.call("GetGroupInfo", GroupId=g["GroupId"])
            persons = c.call("GetPersonList", GroupId=g["GroupId"], Limit=1000)["PersonInfos"]
            for p in persons:
                c.call("GetPersonBaseInfo", PersonId=p["PersonId"])
                c.call("GetPersonGroupInfo", PersonId=p["PersonId"], Limit=100)
        json.dumps(groups, ensure_ascii=False).encode("utf-8")


# The deterministic sweep: each field of each action, alone, set to each of these.
NASTY_STR = ["", " ", "\x00", "a\nb", "\x1b[31m", "\u202e", "\u200b", "\ufeff", "\ud800",
             "f\udfff", "\ud83d\ude00", "x" * 61, "x" * 3000, "中文", 5, 1.5, True, [], {}]
NASTY_INT = [-1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30, 1.5, "abc",
             "1", "", True, [], {}]
NASTY_FLOAT = [float("nan"), float("inf"), -float("inf"), 1e308, -1.0, 100.0001, "x", [], {}]
NASTY_BOOL = ["yes", 2, [], {}]


def nasty(version: str, wire: str, depth: int = 0) -> list:
    if wire == "string":
        return NASTY_STR
    if wire in ("uint64", "int64"):
        return NASTY_INT
    if wire == "float":
        return NASTY_FLOAT
    if wire == "bool":
        return NASTY_BOOL
    if wire.startswith("list:"):
        item = wire[5:]
        inner = nasty(version, item, depth + 1) if depth < 2 else []
        return ["x", 0, {}, [None], [[]], [{}] * 3, ["a"] * 200] + [[v] for v in inner]
    fields = MODELS[version][wire]
    out = ["x", 0, [], {"Unknown": 1}, dict.fromkeys(fields, None)]
    if depth < 2:
        out += [{f: v} for f, t in fields.items() for v in nasty(version, t, depth + 1)[:8]]
    return out


def sweep(version: str, action: str) -> list[dict]:
    """Every field alone (others well-formed where VALID knows them) times its nasty values."""
    fields = ACTIONS[version][action]["in"]
    base = {f: DEFAULTS[f] for f in fields if f in DEFAULTS}
    return [{**base, f: v} for f, (wire, _) in fields.items() for v in nasty(version, wire)]


DEFAULTS = {"GroupId": "g", "PersonId": "p", "GroupIds": ["g"], "GroupName": "G2",
            "PersonName": "P", "Offset": 0, "Limit": 10}


@pytest.mark.parametrize("version,action", CASES, ids=[f"{v}-{a}" for v, a in CASES])
def test_fuzz_in_process(inproc, version, action):
    SERVICES.update(svc=inproc.services, account=inproc.account_id)
    _seed(inproc)
    for params in sweep(version, action):
        _assert_answer(version, action, params)

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(params_for(version, action))
    def run(params):
        _assert_answer(version, action, params)

    run()
    _read_everything_back(inproc)


# ---- a small sample over HTTP, in each request style ------------------------------------------

WIRE_ACTIONS = ["CreateGroup", "ModifyGroup", "GetGroupList", "GetPersonList",
                "ModifyPersonGroupInfo", "CopyPerson", "DetectFace"]


@pytest.fixture(scope="module")
def fuzz_key(engine_server):
    return engine_server.create_key(f"fuzz-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("sign,method", SIGNINGS, ids=[f"{s}-{m}" for s, m in SIGNINGS])
def test_fuzz_over_http(engine_server, fuzz_key, sign, method):
    raw = Raw(engine_server, *fuzz_key)
    if sign == "TC3-HMAC-SHA256" and method == "POST":  # JSON: values keep their types
        send = lambda action, params: raw.tc3(action, params)  # noqa: E731
    elif sign == "TC3-HMAC-SHA256":
        send = lambda action, params: raw.tc3(  # noqa: E731
            action, params, method="GET", content_type="application/x-www-form-urlencoded")
    else:
        send = lambda action, params: raw.v1(action, params, method=method,  # noqa: E731
                                             sign_method=sign)

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(WIRE_ACTIONS).flatmap(
        lambda a: st.tuples(st.just(a), params_for("2020-03-03", a))))
    def run(case):
        action, params = case
        if method == "GET" or sign != "TC3-HMAC-SHA256":
            # Form and query carry UTF-8 text, in which a lone surrogate cannot be encoded:
            # it goes as the literal text `\ud800` (the bytes themselves: test_hardening).
            params = json.loads(json.dumps(params).replace("\\ud", "\\\\ud"))
        out = check(send(action, params))
        if "Error" in out:
            code = out["Error"]["Code"]
            assert code in DOCUMENTED and code != "InternalError", out["Error"]

    run()
