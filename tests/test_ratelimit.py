"""Per-account rate limits: the token buckets and their configuration (in process, with a fake
clock), then RequestLimitExceeded over the official SDK and the SDK's StandardRetryer."""

from __future__ import annotations

import json
import logging
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.retry import StandardRetryer

from harness import Api, Server
from openiai.core.errors import ApiError
from openiai.api.ratelimit import RateLimitConfigError, RateLimiter, Rule, parse
from openiai.core.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _limiter(config: dict, clock=None) -> RateLimiter:
    return RateLimiter(parse(config), clock=clock or Clock())


def _allowed(limiter: RateLimiter, account: str, action: str, n: int, account_id: int = 1) -> int:
    ok = 0
    for _ in range(n):
        try:
            limiter.check(account_id, lambda: account, action)
            ok += 1
        except ApiError as exc:
            assert exc.code == "RequestLimitExceeded"
    return ok


# ---- configuration and buckets, in process ---------------------------------------------------

def test_parse_forms():
    rules = parse({"*": {"*": 20}, "acme": {"DetectFace": {"rate": 0.5, "burst": 3},
                                          "CreateGroup": {"rate": 4}}, "ops": {"*": None}})
    assert rules["*"]["*"] == Rule(20.0, 20.0)
    assert rules["acme"]["DetectFace"] == Rule(0.5, 3.0)
    assert rules["acme"]["CreateGroup"] == Rule(4.0, 4.0)
    assert parse({"a": {"*": 0.2}})["a"]["*"] == Rule(0.2, 1.0)  # burst at least 1
    assert rules["ops"]["*"] is None


@pytest.mark.parametrize("config,needle", [
    ([], "JSON object"),
    ({"a": 5}, "object of action"),
    ({"a": {"X": 0}}, "rate must be > 0"),
    ({"a": {"X": -1}}, "rate must be > 0"),
    ({"a": {"X": "5"}}, "expected a number"),
    ({"a": {"X": True}}, "expected a number"),
    ({"a": {"X": {"burst": 2}}}, "`rate`"),
    ({"a": {"X": {"rate": 1, "burst": 0.5}}}, "burst must be >= 1"),
    ({"a": {"X": {"rate": 1, "brust": 2}}}, "unknown keys"),
    ({"a": {"X": float("inf")}}, "rate must be > 0"),
])
def test_parse_rejects(config, needle):
    with pytest.raises(RateLimitConfigError, match=needle):
        parse(config)


def test_off_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENIAI_RATE_LIMITS", raising=False)
    limiter = RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path))
    assert _allowed(limiter, "a", "DetectFace", 1000) == 1000


def test_burst_then_refill_at_rate():
    clock = Clock()
    limiter = _limiter({"acme": {"GetGroupList": {"rate": 2, "burst": 3}}}, clock)
    assert _allowed(limiter, "acme", "GetGroupList", 10) == 3
    clock.t += 0.49
    assert _allowed(limiter, "acme", "GetGroupList", 1) == 0
    clock.t += 0.02  # 0.51 s at 2/s: one token
    assert _allowed(limiter, "acme", "GetGroupList", 5) == 1
    clock.t += 100  # refills up to the burst, not beyond
    assert _allowed(limiter, "acme", "GetGroupList", 10) == 3


def test_most_specific_rule_wins_and_buckets_are_per_account():
    config = {"*": {"*": {"rate": 1, "burst": 5}, "DetectFace": {"rate": 1, "burst": 2}},
              "acme": {"*": {"rate": 1, "burst": 10}, "SearchFaces": {"rate": 1, "burst": 1}},
              "ops": {"*": None}}
    limiter = _limiter(config)
    # (acme, SearchFaces) beats everything; (acme, *) beats (*, DetectFace).
    assert _allowed(limiter, "acme", "SearchFaces", 5, account_id=1) == 1
    assert _allowed(limiter, "acme", "DetectFace", 20, account_id=1) == 10
    # "*" as the action is one bucket shared by the account's unlisted actions: spent above.
    assert _allowed(limiter, "acme", "GetGroupList", 5, account_id=1) == 0
    # Any other account: (*, DetectFace), then (*, *); each account with its own buckets.
    assert _allowed(limiter, "bob", "DetectFace", 5, account_id=2) == 2
    assert _allowed(limiter, "bob", "GetGroupList", 9, account_id=2) == 5
    assert _allowed(limiter, "carol", "GetGroupList", 9, account_id=3) == 5
    # null: no limit for that account at all.
    assert _allowed(limiter, "ops", "DetectFace", 100, account_id=4) == 100


def test_error_is_the_documented_code_with_a_useful_message():
    limiter = _limiter({"acme": {"DetectFace": {"rate": 0.5, "burst": 1}}})
    limiter.check(1, lambda: "acme", "DetectFace")
    with pytest.raises(ApiError) as info:
        limiter.check(1, lambda: "acme", "DetectFace")
    assert info.value.code == "RequestLimitExceeded"
    assert "DetectFace" in info.value.message and "retry in 2.00 s" in info.value.message


def test_account_name_is_only_looked_up_when_limits_exist(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENIAI_RATE_LIMITS", raising=False)
    limiter = RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path))

    def boom():
        raise AssertionError("name looked up with no limits configured")

    limiter.check(1, boom, "DetectFace")


def test_settings_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENIAI_RATE_LIMITS", '{"a": {"*": 1}}')
    assert _allowed(RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path)), "a", "X", 3) == 1
    path = tmp_path / "limits.json"
    path.write_text('{"a": {"*": {"rate": 1, "burst": 2}}}')
    monkeypatch.setenv("OPENIAI_RATE_LIMITS", str(path))
    assert _allowed(RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path)), "a", "X", 3) == 2
    monkeypatch.setenv("OPENIAI_RATE_LIMITS", str(tmp_path / "missing.json"))
    with pytest.raises(RateLimitConfigError, match="does not exist"):
        RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path))
    monkeypatch.setenv("OPENIAI_RATE_LIMITS", "{not json")
    with pytest.raises(RateLimitConfigError, match="not valid JSON"):
        RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path))
    path.write_text('{"a": {"*": 0}}')
    monkeypatch.setenv("OPENIAI_RATE_LIMITS", str(path))
    with pytest.raises(RateLimitConfigError, match="rate must be > 0"):
        RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path))


def test_default_file_is_watched_and_reloaded(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENIAI_RATE_LIMITS", raising=False)
    path = tmp_path / "rate_limits.json"
    assert RateLimiter.from_settings(Settings.from_env(data_dir=tmp_path))._path == path
    clock = Clock()
    limiter = RateLimiter(path=path, clock=clock)
    assert _allowed(limiter, "a", "X", 5) == 5  # no file yet: no limits
    path.write_text('{"a": {"X": {"rate": 1, "burst": 2}}}')
    clock.t += 1.1
    assert _allowed(limiter, "a", "X", 5) == 2  # created: in force within a second
    path.write_text("{broken")
    import os

    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    clock.t += 1.1
    # A broken edit keeps the previous limits and buckets (1.1 s at 1/s refilled one token).
    assert _allowed(limiter, "a", "X", 5) == 1
    path.write_text('{"a": {"X": {"rate": 1, "burst": 4}}}')
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    clock.t += 1.1
    assert _allowed(limiter, "a", "X", 9) == 4  # fixed: new limits, fresh buckets
    path.unlink()
    clock.t += 1.1
    assert _allowed(limiter, "a", "X", 9) == 9  # removed: limits off


# ---- over the wire, with the official SDK ----------------------------------------------------

LIMITED = f"limited-{uuid.uuid4().hex[:6]}"
# Refusal tests must not see a token come back mid-test: on a loaded machine a handful of calls
# can take over a second, which at 1 request/s refilled the bucket (a red CI run). Their
# buckets refill once in 100 s; the retry tests keep 1/s because a retry needs the refill.
SLOW = f"{LIMITED}-slow"


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("srv-ratelimit")
    limits = data / "limits.json"
    limits.write_text(json.dumps({
        LIMITED: {"GetGroupList": {"rate": 1, "burst": 2}, "*": None},
        SLOW: {"GetGroupList": {"rate": 0.01, "burst": 2}, "*": None},
        "*": {"GetGroupList": {"rate": 0.01, "burst": 3}},
    }))
    srv = Server(data, extra_env={"OPENIAI_RATE_LIMITS": str(limits)})
    srv.start()
    yield srv
    srv.stop()


def _rate_limited_count(server, action: str) -> float:
    text = httpx.get(f"http://{server.endpoint}/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "openiai_requests_total" and s.labels == {
                    "action": action, "code": "RequestLimitExceeded"}:
                return s.value
    return 0.0


def test_request_limit_exceeded_over_the_sdk(limited_server):
    sid, skey = limited_server.create_key(SLOW)
    api = Api(limited_server, sid, skey)
    before = _rate_limited_count(limited_server, "GetGroupList")
    api.call("GetGroupList")
    api.call("GetGroupList")
    exc = api.error("GetGroupList")
    assert exc.code == "RequestLimitExceeded", exc
    assert "frequency limit" in exc.message and exc.requestId
    # Other actions of the same account have no limit ("*": null); other signature styles
    # and API versions share the account's bucket for the action.
    for _ in range(5):
        assert api.code("GetGroupInfo", GroupId="nope") == "InvalidParameterValue.GroupIdNotExist"
    assert api.variant(sign="HmacSHA256", method="GET").code("GetGroupList") == \
        "RequestLimitExceeded"
    assert api.variant(version="2018-03-01").code("GetGroupList") == "RequestLimitExceeded"
    # Another account has its own bucket (and the "*" rule: burst 3).
    other = Api(limited_server, *limited_server.create_key(f"other-{uuid.uuid4().hex[:6]}"))
    for _ in range(3):
        other.call("GetGroupList")
    assert other.code("GetGroupList") == "RequestLimitExceeded"
    assert _rate_limited_count(limited_server, "GetGroupList") >= before + 4


def test_authentication_comes_first(limited_server):
    """A request that fails authentication is refused as such and spends no token."""
    sid, skey = limited_server.create_key(LIMITED + "-auth")
    good = Api(limited_server, sid, skey)
    bad = Api(limited_server, sid, "wrong" + skey[5:])
    for _ in range(5):
        assert bad.code("GetGroupList") == "AuthFailure.SignatureFailure"
    for _ in range(3):  # the "*" rule's burst is untouched
        good.call("GetGroupList")


class ResettingRetryer(StandardRetryer):
    """StandardRetryer with its one defect fixed: it forgets an attempt's error before the next.

    tencentcloud-sdk-python-common 3.1.195's ``send_request`` keeps ``err`` from a failed
    attempt, so once one attempt has failed, a later success is still judged retryable and the
    first error is raised in the end. Policy (codes, back-off, attempts) is the SDK's own."""

    def send_request(self, fn):
        for n in range(self._max_attempts):
            try:
                return fn()
            except TencentCloudSDKException as err:
                if n + 1 >= self._max_attempts or not self.should_retry(None, err):
                    raise
                sleep = self._backoff_fn(n)
                self.on_retry(n, sleep, None, err)
                time.sleep(sleep)


def _sdk_retryer_keeps_first_error() -> bool:
    """Whether the installed StandardRetryer has the defect (checked without a server)."""
    calls = []

    def once_then_ok():
        calls.append(1)
        if len(calls) == 1:
            raise TencentCloudSDKException("RequestLimitExceeded", "limit", "rid")
        return "ok"

    try:
        StandardRetryer(max_attempts=3, backoff_fn=lambda n: 0).send_request(once_then_ok)
    except TencentCloudSDKException:
        return True
    return False


def _ok_count(server, action: str) -> float:
    text = httpx.get(f"http://{server.endpoint}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "openiai_requests_total"
               and s.labels == {"action": action, "code": "OK"})


def _exhausted(server) -> Api:
    """A client of the limited account whose GetGroupList bucket is empty."""
    api = Api(server, *server.create_key(LIMITED))
    api.spent = 0  # calls that got through before the bucket ran dry
    for _ in range(10):
        try:
            api.call("GetGroupList")
            api.spent += 1
        except TencentCloudSDKException as exc:
            assert exc.code == "RequestLimitExceeded"
            return api
    raise AssertionError("the limit never applied")


def _collecting_logger() -> tuple[logging.Logger, list[str]]:
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger = logging.getLogger(f"retry-{uuid.uuid4().hex[:6]}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Collect())
    return logger, messages


def test_sdk_standard_retryer_retries_request_limit_exceeded(limited_server):
    """The SDK's StandardRetryer, configured on ClientProfile.retryer, treats our
    RequestLimitExceeded as retryable and its retries succeed on the server; whether the call
    then returns depends on the SDK defect described in ResettingRetryer."""
    # Counted before the bucket is emptied: a /metrics scrape between emptying it and the
    # retried call can take longer than the 1 s refill on a loaded machine.
    ok_before = _ok_count(limited_server, "GetGroupList")
    api = _exhausted(limited_server)
    ok_before += api.spent
    logger, retries = _collecting_logger()
    # Back-off 1 s per attempt: at 1 request/s each retry finds a token again.
    api.client.profile.retryer = StandardRetryer(max_attempts=3, backoff_fn=lambda n: 1.0,
                                                 logger=logger)
    if _sdk_retryer_keeps_first_error():
        exc = api.error("GetGroupList")
        assert exc.code == "RequestLimitExceeded"
    else:
        assert "GroupNum" in api.call("GetGroupList")
    assert retries and "RequestLimitExceeded" in retries[0], retries
    assert _ok_count(limited_server, "GetGroupList") >= ok_before + 1  # a retry got through


def test_retryer_recovers_from_request_limit_exceeded(limited_server):
    api = _exhausted(limited_server)
    logger, retries = _collecting_logger()
    # The SDK's default policy (2^n s back-off: 1 s, then 2 s), with the state reset fixed.
    api.client.profile.retryer = ResettingRetryer(max_attempts=3, logger=logger)
    started = time.monotonic()
    out = api.call("GetGroupList")
    assert "GroupNum" in out
    assert len(retries) == 1 and "RequestLimitExceeded" in retries[0], retries
    assert 0.9 <= time.monotonic() - started < 10
