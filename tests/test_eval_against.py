"""``openiai eval lfw --against CACHE``: pairs scored across two runs' embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openiai.bench import evaluate


def test_impostor_blocks_across_two_embeddings_score_a_rows_against_b_columns():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    ids = np.array([0, 0, 1, 2, 2])
    got = np.concatenate(list(evaluate.impostor_blocks(a, ids, block=2, other=b)))
    want = [a[i] @ b[j] for i in range(5) for j in range(i + 1, 5) if ids[i] != ids[j]]
    assert np.allclose(got, want)
    # without ``other`` it is the one run's pairs, as before
    same_run = np.concatenate(list(evaluate.impostor_blocks(a, ids, block=2)))
    assert np.allclose(same_run, [a[i] @ a[j] for i in range(5) for j in range(i + 1, 5)
                                  if ids[i] != ids[j]])


def test_cached_embeddings_follow_the_asked_order_and_refuse_a_short_cache(tmp_path):
    paths = [tmp_path / f"{k}.jpg" for k in "abc"]
    emb = np.eye(3, dtype=np.float32)
    cache = tmp_path / "run.npz"
    np.savez(cache, paths=np.array([str(Path(p).resolve()) for p in paths]), emb=emb)
    assert np.array_equal(evaluate.cached_embeddings(cache, paths[::-1]), emb[::-1])
    with pytest.raises(SystemExit, match="lacks 1 of the 2 images"):
        evaluate.cached_embeddings(cache, [paths[0], tmp_path / "d.jpg"])


def test_a_cache_is_reused_only_by_the_recognizer_file_that_wrote_it(tmp_path):
    """float and int8 SFace are one FaceModelVersion but two files: an int8 run must not read
    a float run's cache as its own (its figures would be float's)."""
    from openiai.core.settings import Settings
    from openiai.services.faces import FacePipeline

    lfw = Settings.from_env().testdata_dir / "lfw" / "images"
    paths = sorted(lfw.glob("Aaron_*/*_0001.jpg"))[:2]
    cache = tmp_path / "run.npz"

    def run(mode):
        engine = FacePipeline.from_settings(Settings.from_env(inference=mode))
        emb, _status, _s = evaluate.embed_files(paths, 1, cache, engine=engine)
        return emb, str(np.load(cache)["recognizer"])

    float_emb, float_file = run("float")
    int8_emb, int8_file = run("int8")
    assert float_file != int8_file and "int8static" in int8_file
    assert not np.array_equal(float_emb, int8_emb)  # recomputed, not read back
    again, _ = run("int8")
    assert np.array_equal(again, int8_emb)  # the same file's cache is reused
