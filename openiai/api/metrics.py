"""Prometheus metrics of one app (``GET /metrics``), in a registry of its own.

Metric names:

* ``openiai_requests_total{action, code}`` - API requests by action and error code (``OK`` for
  success). ``action`` is an IAI action name, or ``-`` when the request did not name a known one.
* ``openiai_request_duration_seconds{action}`` - histogram of request latency.
* ``openiai_stage_seconds{action, stage}`` - histogram of time per stage of a request (decode,
  detect, embed, landmarks, quality, search, serialise); a request adds one observation per
  stage it went through.
* ``openiai_requests_in_progress`` - API requests being handled now.
* ``openiai_persons{account}``, ``openiai_faces{account}`` - gauges per account (by name),
  read at scrape time from the vector index (from the database when the server has no index).
* ``openiai_index_vectors{space}`` - vectors in the in-memory index (``faces`` / ``persons``),
  ``openiai_index_collections`` - its (account, model version) collections,
  ``openiai_index_seq`` - the last change-log sequence number applied to it.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the app)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from ..core.timing import STAGES
from ..store.schema import Account, Face, Person
from .wire_schema import ACTIONS

log = logging.getLogger("openiai.metrics")

KNOWN_ACTIONS = frozenset(a for actions in ACTIONS.values() for a in actions)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0)


def action_label(action: str | None) -> str:
    """Client-chosen strings never become labels (unbounded series): unknown ones are ``-``."""
    return action if action in KNOWN_ACTIONS else "-"


class AccountNames:
    """account id -> name, cached (names never change once an account exists)."""

    def __init__(self, db) -> None:
        self.db = db
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    def __call__(self, account_id: int) -> str:
        name = self._names.get(account_id)
        if name is None:
            self.refresh()
            name = self._names.get(account_id, f"#{account_id}")
        return name

    def refresh(self) -> dict[int, str]:
        with self.db.read() as s:
            rows = dict(s.execute(select(Account.id, Account.name)).all())
        with self._lock:
            self._names.update(rows)
        return rows


class _DataCollector:
    """Per-account and index gauges, computed when Prometheus scrapes."""

    def __init__(self, services, names: AccountNames) -> None:
        self.services = services
        self.names = names

    def describe(self):
        return [GaugeMetricFamily("openiai_persons", ""), GaugeMetricFamily("openiai_faces", ""),
                GaugeMetricFamily("openiai_index_vectors", ""),
                GaugeMetricFamily("openiai_index_collections", ""),
                GaugeMetricFamily("openiai_index_seq", "")]

    def collect(self):
        try:
            yield from self._collect()
        except Exception:  # a broken scrape must not take the endpoint down
            log.exception("collecting account metrics failed")

    def _collect(self):
        names = self.names.refresh()
        index = getattr(self.services, "index", None)
        per_account: dict[int, dict[str, int]] = defaultdict(lambda: {"faces": 0, "persons": 0})
        if index is not None:
            collections = index.collections()
            for account, version in collections:
                for kind, n in index.counts(account, version).items():
                    per_account[account][kind] += n
            totals = {"faces": 0, "persons": 0}
            for counts in per_account.values():
                for kind in totals:
                    totals[kind] += counts[kind]
            vectors = GaugeMetricFamily("openiai_index_vectors",
                                        "Vectors in the in-memory search index.", labels=["space"])
            for kind, n in totals.items():
                vectors.add_metric([kind], n)
            yield vectors
            yield GaugeMetricFamily("openiai_index_collections",
                                    "(account, model version) collections in the index.",
                                    value=len(collections))
            yield GaugeMetricFamily("openiai_index_seq", "Last change-log sequence number "
                                    "applied to the index.", value=getattr(index, "last_seq", 0))
        else:
            per_account.update(self._from_db())
        persons = GaugeMetricFamily("openiai_persons", "Persons per account.", labels=["account"])
        faces = GaugeMetricFamily("openiai_faces", "Faces per account.", labels=["account"])
        for account_id, name in sorted(names.items(), key=lambda kv: kv[1]):
            counts = per_account.get(account_id, {"faces": 0, "persons": 0})
            persons.add_metric([name], counts["persons"])
            faces.add_metric([name], counts["faces"])
        yield persons
        yield faces

    def _from_db(self) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = defaultdict(lambda: {"faces": 0, "persons": 0})
        with self.services.db.read() as s:
            for kind, table in (("persons", Person), ("faces", Face)):
                for account_id, n in s.execute(select(table.account_id, func.count())
                                               .group_by(table.account_id)).all():
                    out[account_id][kind] = n
        return out


class Metrics:
    def __init__(self, services, names: AccountNames | None = None) -> None:
        self.registry = CollectorRegistry()
        self.names = names or AccountNames(services.db)
        self.requests = Counter("openiai_requests", "API requests by action and error code "
                                "(OK: success).", ["action", "code"], registry=self.registry)
        self.latency = Histogram("openiai_request_duration_seconds", "API request latency.",
                                 ["action"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.stages = Histogram("openiai_stage_seconds", "Time per stage of an API request.",
                                ["action", "stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.in_progress = Gauge("openiai_requests_in_progress", "API requests being handled.",
                                 registry=self.registry)
        self.registry.register(_DataCollector(services, self.names))

    def observe(self, action: str | None, code: str | None, seconds: float,
                stages: dict[str, float]) -> None:
        label = action_label(action)
        self.requests.labels(label, code or "OK").inc()
        self.latency.labels(label).observe(seconds)
        for stage, spent in stages.items():
            if stage in STAGES:
                self.stages.labels(label, stage).observe(spent)

    def render(self) -> bytes:
        return generate_latest(self.registry)
