"""The shipped appearance heads: they load only with a matching digest, and on held-out
CelebA-HQ faces (identities never trained on) they agree with the labels."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from openiai.bench import celeba
from openiai.core.settings import Settings
from openiai.services.faces import FacePipeline
from openiai.vision.appearance import (BINARY, HAIR_CLASSES, HAIR_COLOR, HEADS_NAME,
                                       appearance_attributes)
from openiai.vision.heads import HEADS_DIR, HeadsIntegrityError, load_heads
from openiai.vision.image import decode_bytes
from openiai.vision.models.sface import SFaceAppearance

PER_CLASS = 5  # first held-out faces of each label, in labels.csv order (no picking)


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline.from_settings(Settings.from_env())


def test_shipped_heads_load_with_their_digest():
    heads = load_heads(HEADS_NAME)
    assert set(heads) == set(BINARY) | {HAIR_COLOR}
    assert heads[HAIR_COLOR].classes == HAIR_CLASSES
    for h in heads.values():
        assert h.mean.shape == h.scale.shape == (SFaceAppearance.DIM,)
        assert h.weights.shape[0] == SFaceAppearance.DIM
        assert h.weights.dtype == np.float32 and np.all(h.scale > 0)


def test_tampered_heads_are_refused(tmp_path):
    for ext in ("npz", "json"):
        shutil.copy(HEADS_DIR / f"{HEADS_NAME}.{ext}", tmp_path)
    load_heads(HEADS_NAME, tmp_path)  # the untouched copy loads
    data = bytearray((tmp_path / f"{HEADS_NAME}.npz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / f"{HEADS_NAME}.npz").write_bytes(bytes(data))
    with pytest.raises(HeadsIntegrityError):
        load_heads(HEADS_NAME, tmp_path)
    (tmp_path / f"{HEADS_NAME}.npz").unlink()
    with pytest.raises(HeadsIntegrityError):
        load_heads(HEADS_NAME, tmp_path)


@pytest.mark.parametrize("head,column", [("eyeglasses", "Eyeglasses"), ("smiling", "Smiling"),
                                         ("male", "Male"), ("hat", "Wearing_Hat")])
def test_held_out_faces_agree_with_labels(testdata, pipeline, head, column):
    """The first PER_CLASS held-out faces with and without the attribute: at least 4 of 5 on
    each side must come out right (a constant or inverted head gets at most 5 of 10)."""
    rows = [r for r in celeba.read_labels(testdata) if celeba.split_of(r["identity"]) == "test"]
    heads = load_heads(HEADS_NAME)
    for label in (1, 0):
        picked = [r for r in rows if int(r[column]) == label][:PER_CLASS]
        ext = celeba.extract(pipeline, [celeba.image_path(testdata, r) for r in picked])
        assert ext.found.all()
        p = np.array([appearance_attributes(heads, a)[head] for a in ext.appearance])
        right = (p > 0.5) == bool(label)
        assert right.sum() >= PER_CLASS - 1, (head, label, p.round(2).tolist())


def test_hair_colour_is_a_distribution_and_evaluation_rows_have_their_shape(testdata, pipeline):
    rows = celeba.evaluate_celeba(testdata, limit=12, pipeline=pipeline)
    by = {r["attribute"]: r for r in rows}
    assert set(BINARY) | {HAIR_COLOR} <= set(by)
    for r in rows:
        assert r["set"] == celeba.SET_NAME and 0.0 <= r["value"] <= 1.0 and r["n"] >= 0
    assert by["eyeglasses"]["floor"] == 0.92 and by["male"]["floor"] is None
    pixels = decode_bytes(celeba.image_path(
        testdata, celeba.read_labels(testdata)[0]).read_bytes()).pixels
    appearance = pipeline.appearance([(pixels, pipeline.detect(pixels)[0])])
    hair = appearance_attributes(load_heads(HEADS_NAME), appearance[0])[HAIR_COLOR]
    assert tuple(hair) == HAIR_CLASSES and abs(sum(hair.values()) - 1) < 1e-5
