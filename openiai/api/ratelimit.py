"""Per-account request rate limits (token buckets in memory), off unless configured.

Configuration is JSON, from ``OPENIAI_RATE_LIMITS`` (a file path, or the JSON itself when the
value starts with ``{``) or else ``<data dir>/rate_limits.json`` if that file exists::

    {
      "*":    {"*": {"rate": 20, "burst": 40}},
      "acme": {"DetectFace": 5, "*": {"rate": 50, "burst": 100}},
      "ops":  {"*": null}
    }

The outer keys are account names, the inner keys action names; a value is requests per second
(a number, burst = max(1, rate)), ``{"rate": r, "burst": b}``, or ``null`` for no limit. A
request of account A for action X uses the most specific rule of (A, X), (A, "*"), ("*", X),
("*", "*"); none matching means no limit. Buckets are never shared between accounts: ``"*"`` as
the account gives every account its own buckets. An action key names its own bucket; ``"*"`` as
the action is one bucket per account shared by all actions that have no rule of their own.

A request over its limit is answered with ``RequestLimitExceeded`` (the API's documented code,
which the official SDKs' retryers retry). The file is re-read when its mtime changes (checked
at most once a second; the default file is watched even while absent, so creating, editing or
deleting it takes effect without a restart, and resets the buckets). A broken file at start-up
stops the server; a broken edit later is logged and the previous limits stay in force.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import ApiError

log = logging.getLogger("openiai.ratelimit")

ENV = "OPENIAI_RATE_LIMITS"
DEFAULT_FILE = "rate_limits.json"
WILDCARD = "*"
RELOAD_CHECK_SECONDS = 1.0
MAX_BUCKETS = 100_000  # idle full buckets are dropped past this (memory bound)


class RateLimitConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    rate: float  # tokens per second
    burst: float  # bucket size


# account name or "*" -> action or "*" -> Rule, or None for "no limit"
Rules = dict[str, dict[str, Rule | None]]


def parse(config) -> Rules:
    """Validate a decoded JSON config into rules; raises RateLimitConfigError."""
    if not isinstance(config, dict):
        raise RateLimitConfigError("the rate limit configuration must be a JSON object")
    rules: Rules = {}
    for account, actions in config.items():
        if not isinstance(actions, dict):
            raise RateLimitConfigError(
                f"rate limits of account {account!r} must be an object of action -> limit")
        rules[account] = {}
        for action, spec in actions.items():
            where = f"rate limit {account!r}/{action!r}"
            if spec is None:
                rules[account][action] = None
                continue
            if isinstance(spec, bool):
                raise RateLimitConfigError(f"{where}: expected a number, an object or null")
            if isinstance(spec, (int, float)):
                rate, burst = float(spec), max(1.0, float(spec))
            elif isinstance(spec, dict):
                unknown = set(spec) - {"rate", "burst"}
                if unknown:
                    raise RateLimitConfigError(f"{where}: unknown keys {sorted(unknown)}")
                if "rate" not in spec:
                    raise RateLimitConfigError(f"{where}: `rate` (requests per second) is required")
                rate = spec["rate"]
                burst = spec.get("burst", max(1.0, rate) if isinstance(rate, (int, float)) else 1)
                for name, v in (("rate", rate), ("burst", burst)):
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise RateLimitConfigError(f"{where}: `{name}` must be a number")
                rate, burst = float(rate), float(burst)
            else:
                raise RateLimitConfigError(f"{where}: expected a number, an object or null")
            if not (math.isfinite(rate) and rate > 0):
                raise RateLimitConfigError(f"{where}: rate must be > 0 (use null for no limit)")
            if not (math.isfinite(burst) and burst >= 1):
                raise RateLimitConfigError(f"{where}: burst must be >= 1")
            rules[account][action] = Rule(rate, burst)
    return rules


def _source(data_dir: Path, value: str | None) -> tuple[str | None, Path]:
    """(inline JSON or None, file path): where the configuration comes from."""
    if value:
        if value.lstrip().startswith("{"):
            return value, None
        return None, Path(value).expanduser()
    return None, Path(data_dir) / DEFAULT_FILE  # watched even while it does not exist


class RateLimiter:
    """Checks requests against the configured limits; thread-safe."""

    def __init__(self, rules: Rules | None = None, *, path: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rules: Rules = rules or {}
        self._path = path
        self._mtime = None
        self._checked = 0.0
        self._clock = clock
        self._lock = threading.Lock()
        # (account id, rule account key, action key) -> [tokens, last refill time]
        self._buckets: dict[tuple, list[float]] = {}
        if path is not None and path.exists():
            self._rules = self._read(path)

    @classmethod
    def from_settings(cls, settings) -> "RateLimiter":
        value = settings.rate_limits
        if isinstance(value, dict):
            return cls(parse(value))
        inline, path = _source(settings.data_dir, value)
        if inline is not None:
            try:
                return cls(parse(json.loads(inline)))
            except json.JSONDecodeError as exc:
                raise RateLimitConfigError(f"{ENV} is not valid JSON: {exc}") from None
        if value and not path.is_file():
            raise RateLimitConfigError(f"rate limit file {path} ({ENV}) does not exist")
        return cls(path=path)

    @property
    def enabled(self) -> bool:
        return bool(self._rules) or self._path is not None

    def _read(self, path: Path) -> Rules:
        try:
            self._mtime = path.stat().st_mtime_ns
            rules = parse(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise RateLimitConfigError(f"rate limit file {path}: {exc}") from None
        except RateLimitConfigError as exc:
            raise RateLimitConfigError(f"rate limit file {path}: {exc}") from None
        log.info("rate limits loaded", extra={"path": str(path), "accounts": sorted(rules)})
        return rules

    def _maybe_reload(self, now: float) -> None:
        if self._path is None or now - self._checked < RELOAD_CHECK_SECONDS:
            return
        self._checked = now
        try:
            mtime = self._path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime == self._mtime:
            return
        try:
            self._rules = self._read(self._path) if mtime is not None else {}
        except RateLimitConfigError as exc:
            self._mtime = mtime  # do not retry (and log) every second until it changes again
            log.error("rate limit file not reloaded; keeping the previous limits: %s", exc)
            return
        self._buckets.clear()

    def rule_for(self, account: str, action: str) -> tuple[tuple[str, str], Rule] | None:
        for acc_key in (account, WILDCARD):
            actions = self._rules.get(acc_key)
            if actions is None:
                continue
            for act_key in (action, WILDCARD):
                if act_key in actions:
                    rule = actions[act_key]
                    return None if rule is None else ((acc_key, act_key), rule)
        return None

    def check(self, account_id: int, account_name: Callable[[], str], action: str) -> None:
        """Take a token for this request or raise RequestLimitExceeded.

        ``account_name`` is called only when some limit is configured (it may query the DB)."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            self._maybe_reload(now)
            if not self._rules:
                return
        match = self.rule_for(account_name(), action)
        if match is None:
            return
        (acc_key, act_key), rule = match
        key = (account_id, acc_key, act_key)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._evict_full(now)
                bucket = self._buckets[key] = [rule.burst, now]
            tokens = min(rule.burst, bucket[0] + (now - bucket[1]) * rule.rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return
            bucket[0] = tokens
            wait = (1.0 - tokens) / rule.rate
        scope = "" if act_key == WILDCARD else f" for {action}"
        raise ApiError("RequestLimitExceeded",
                       f"The number of requests exceeds the frequency limit{scope} "
                       f"({rule.rate:g} per second, burst {rule.burst:g}); retry in {wait:.2f} s.")

    def _evict_full(self, now: float) -> None:
        """Drop buckets that have refilled completely: they behave exactly like new ones."""
        for key in list(self._buckets):
            acc_key, act_key = key[1], key[2]
            rule = self._rules.get(acc_key, {}).get(act_key)
            tokens, last = self._buckets[key]
            if rule is None or tokens + (now - last) * rule.rate >= rule.burst:
                del self._buckets[key]
