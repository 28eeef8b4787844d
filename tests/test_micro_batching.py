"""Micro-batching (OPENIAI_MICRO_BATCH_MS, issue 15 item 2): faces of concurrent requests go
into one recognizer call and each request gets its own rows back, equal to its own run."""

import threading

import numpy as np
import pytest

from conftest import TESTDATA

from openiai.core.settings import Settings
from openiai.services.batching import MicroBatcher


def test_batcher_gathers_concurrent_calls_and_returns_each_callers_rows():
    calls = []

    def run(crops):
        calls.append(len(crops))
        return np.stack([np.full(4, float(c[0, 0, 0])) for c in crops])

    batcher = MicroBatcher(run, threading.Lock(), max_wait_s=0.2, max_batch=64)
    results = {}
    start = threading.Barrier(6)

    def request(i):
        crops = [np.full((2, 2, 3), 10 * i + k, np.uint8) for k in range(i % 3 + 1)]
        start.wait()
        results[i] = batcher.embed(crops)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, rows in results.items():
        assert [row[0] for row in rows] == [10 * i + k for k in range(i % 3 + 1)]
    assert sum(calls) == sum(i % 3 + 1 for i in range(6))
    assert len(calls) < 6, "concurrent requests share model calls"


def test_batcher_passes_errors_to_every_waiting_request():
    def run(crops):
        raise RuntimeError("model failed")

    batcher = MicroBatcher(run, threading.Lock(), max_wait_s=0.001)
    with pytest.raises(RuntimeError):
        batcher.embed([np.zeros((2, 2, 3), np.uint8)])


def test_setting_and_pipeline_features_equal_unbatched():
    from openiai.services.faces import FacePipeline
    from openiai.vision.image import decode_bytes
    from openiai.vision.models import ModelZoo

    assert Settings.from_env({}).micro_batch_ms == 0  # off by default
    settings = Settings.from_env({"OPENIAI_MICRO_BATCH_MS": "2"})
    assert settings.micro_batch_ms == 2
    zoo = ModelZoo(settings.model_dir, 1, inference="float")
    plain = FacePipeline(zoo, slots=2)
    batched = FacePipeline(zoo, slots=2, micro_batch_ms=50)
    paths = sorted((TESTDATA / "lfw" / "images").glob("A*/*_0001.jpg"))[:4]
    items = []
    for p in paths:
        image = decode_bytes(p.read_bytes())
        items.append((image.pixels, plain.detect(image)[0]))
    expected = [plain.features_of([it], "3.0")[0] for it in items]
    got = [None] * len(items)

    def request(i):
        got[i] = batched.features_of([items[i]], "3.0")[0]

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(expected, got):
        assert float(a @ b) > 0.9999
    batcher = batched._batchers["sface"]
    assert batcher.crops == len(items) and batcher.calls < len(items)
