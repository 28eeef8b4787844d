"""The dashboard's figures, read from the server's own Prometheus registry (api/metrics.py).

Counters only count up, so rates need two readings: every view keeps a reading (at most
``KEEP`` of them, ``WINDOW`` seconds back), and the rate shown is over the oldest one still in
the window; the first view shows the average since the server started.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

WINDOW = 300.0
KEEP = 120


def _quantile(buckets: list[tuple[float, float]], count: float, q: float) -> float | None:
    """Upper bound of the histogram bucket holding quantile ``q`` (None when empty)."""
    if count <= 0:
        return None
    want = q * count
    for bound, cumulative in buckets:
        if cumulative >= want:
            return bound
    return float("inf")


class Dashboard:
    def __init__(self, metrics) -> None:
        self.metrics = metrics
        self.started = time.monotonic()
        self._readings: list[tuple[float, dict[str, float], dict[str, float]]] = []
        self._lock = threading.Lock()

    def _read(self) -> dict:
        """Totals by action and by code, latency histograms by action, gauges."""
        by_action: dict[str, float] = defaultdict(float)
        errors: dict[str, float] = defaultdict(float)
        by_code: dict[str, float] = defaultdict(float)
        hist: dict[str, dict] = defaultdict(lambda: {"buckets": [], "count": 0.0, "sum": 0.0})
        gauges: dict[str, list] = defaultdict(list)
        for family in self.metrics.registry.collect():
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "openiai_requests_total":
                    by_action[labels["action"]] += sample.value
                    by_code[labels["code"]] += sample.value
                    if labels["code"] != "OK":
                        errors[labels["action"]] += sample.value
                elif sample.name == "openiai_request_duration_seconds_bucket":
                    hist[labels["action"]]["buckets"].append((float(labels["le"]), sample.value))
                elif sample.name == "openiai_request_duration_seconds_count":
                    hist[labels["action"]]["count"] = sample.value
                elif sample.name == "openiai_request_duration_seconds_sum":
                    hist[labels["action"]]["sum"] = sample.value
                elif family.type == "gauge":
                    gauges[sample.name].append((dict(labels), sample.value))
        return {"by_action": by_action, "errors": errors, "by_code": by_code, "hist": hist,
                "gauges": gauges}

    def view(self) -> dict:
        if self.metrics is None:
            return {"available": False}
        now = time.monotonic()
        data = self._read()
        with self._lock:
            self._readings = [r for r in self._readings if now - r[0] <= WINDOW][-KEEP:]
            base = self._readings[0] if self._readings else (self.started, {}, {})
            self._readings.append((now, dict(data["by_action"]), dict(data["errors"])))
        span = max(now - base[0], 1e-9)
        rows = []
        for action in sorted(data["by_action"], key=lambda a: -data["by_action"][a]):
            total = data["by_action"][action]
            h = data["hist"].get(action, {"buckets": [], "count": 0.0, "sum": 0.0})
            buckets = sorted(h["buckets"])
            rows.append({
                "action": action, "total": int(total), "errors": int(data["errors"][action]),
                "rate": (total - base[1].get(action, 0.0)) / span,
                "error_rate": (data["errors"][action] - base[2].get(action, 0.0)) / span,
                "mean_ms": 1000 * h["sum"] / h["count"] if h["count"] else None,
                "p50_ms": _ms(_quantile(buckets, h["count"], 0.5)),
                "p95_ms": _ms(_quantile(buckets, h["count"], 0.95)),
            })
        total = sum(data["by_action"].values())
        gauges = data["gauges"]
        return {
            "available": True, "rows": rows, "window_s": span, "total": int(total),
            "errors": int(sum(data["errors"].values())),
            "rate": sum(r["rate"] for r in rows),
            "codes": sorted(((c, int(n)) for c, n in data["by_code"].items()),
                            key=lambda cn: -cn[1]),
            "in_progress": _single(gauges, "openiai_requests_in_progress"),
            "vectors": {labels.get("space", ""): int(v)
                        for labels, v in gauges.get("openiai_index_vectors", [])},
            "accounts": [(labels["account"], int(v))
                         for labels, v in gauges.get("openiai_persons", [])],
            "faces": {labels["account"]: int(v) for labels, v in gauges.get("openiai_faces", [])},
            "uptime_s": now - self.started,
        }


def _ms(seconds: float | None):
    if seconds is None:
        return None
    return "> 30000" if seconds == float("inf") else f"≤ {seconds * 1000:g}"


def _single(gauges: dict, name: str) -> int:
    values = gauges.get(name) or [({}, 0)]
    return int(values[0][1])
