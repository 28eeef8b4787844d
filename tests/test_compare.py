"""CompareFace: calibrated scores that separate people.

The LFW accuracy run and the two API versions go through the official SDK over HTTP; the
error table and the matching strategy run in-process (``engine_inproc``).
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import TESTDATA
from images import b64, lfw


def _dev_test_pairs():
    lines = (TESTDATA / "lfw" / "pairsDevTest.txt").read_text().splitlines()[1:]
    pairs = []
    for line in lines:
        f = line.split()
        if len(f) == 3:
            pairs.append(((f[0], int(f[1])), (f[0], int(f[2])), True))
        elif len(f) == 4:
            pairs.append(((f[0], int(f[1])), (f[2], int(f[3])), False))
    return pairs


def test_compare_face_separates_lfw_dev_test_pairs(engine_api):
    pairs = _dev_test_pairs()
    assert len(pairs) == 1000  # 500 same-person + 500 different-person pairs

    def score(pair):
        (a, i), (b, j), _ = pair
        return engine_api.call("CompareFace", ImageA=lfw(a, i), ImageB=lfw(b, j))["Score"]

    with ThreadPoolExecutor(2) as pool:
        scores = list(pool.map(score, pairs))
    def accuracy(threshold):
        return sum((s >= threshold) == same for s, (_, _, same) in zip(scores, pairs)) / len(pairs)

    for t in (30, 35, 40, 45, 50):
        print(f"\nCompareFace on LFW pairsDevTest: accuracy at score {t} = {accuracy(t):.4f}")
    assert accuracy(40) >= 0.98
    assert all(0 <= s <= 100 for s in scores)


AARON_1, AARON_2 = lfw("Aaron_Peirsol", 1), lfw("Aaron_Peirsol", 2)


def test_compare_face_in_both_versions(engine_api):
    out = engine_api.call("CompareFace", ImageA=AARON_1, ImageB=AARON_2)
    assert out["FaceModelVersion"] == "3.0" and out["Score"] > 60
    old = engine_api.variant(version="2018-03-01").call("CompareFace", ImageA=AARON_1,
                                                        ImageB=AARON_2)
    assert abs(old["Score"] - out["Score"]) < 1e-6


def test_compare_face_errors(engine_inproc):
    a, b = AARON_1, AARON_2
    assert engine_inproc.code("CompareFace", ImageA=a) == "InvalidParameterValue.ImageEmpty"
    assert engine_inproc.code("CompareFace", ImageA=a, ImageB=b64(
        "insightface/inspireface_test_res/data/bulk/view.jpg")) == \
        "InvalidParameterValue.NoFaceInPhoto"
    assert engine_inproc.code("CompareFace", ImageA=a, ImageB=b, QualityControl=5) == \
        "InvalidParameterValue.QualityControlIllegal"
    assert engine_inproc.code("CompareFace", ImageA=a, ImageB=b, FaceModelVersion="1.0") == \
        "InvalidParameterValue.FaceModelVersionIllegal"


@pytest.mark.parametrize("strategy", [0, 1])
def test_compare_face_matching_strategy_on_group_photo(engine_inproc, strategy):
    group = b64("compreface/sample_images/010_2.jpg")
    out = engine_inproc.call("CompareFace", ImageA=group, ImageB=group,
                             FaceMatchingStrategy=strategy)
    assert out["Score"] > 90  # the same face is chosen on both sides
