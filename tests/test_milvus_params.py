"""The Milvus engine's URL options and the index / search parameters they give (no server
needed: these are what :class:`openiai.index.milvus_engine.MilvusIndex` sends to Milvus)."""

from __future__ import annotations

import pytest

from openiai.index.milvus_engine import parse_url, index_params, search_params


def test_a_server_defaults_to_an_exact_index_and_strong_searches():
    # AUTOINDEX, the former default, gave recall@1 0.42 at 100,000 rows (README, Deployment)
    got = parse_url("milvus://db.example:19530")
    assert got["uri"] == "http://db.example:19530"
    assert (got["index"], got["group_filter"], got["consistency"], got["options"]) == ("FLAT", "milvus", "Strong", {})
    assert index_params("FLAT") == {} and search_params("FLAT", 10) == {"metric_type": "IP"}
    build = index_params("HNSW")
    assert build["M"] >= 16 and build["efConstruction"] >= 200


def test_milvus_lite_keeps_flat_and_fetch():
    got = parse_url("milvus-lite:/tmp/x.db")
    want = ("/tmp/x.db", "FLAT", "fetch", "Strong")
    assert (got["uri"], got["index"], got["group_filter"], got["consistency"]) == want
    assert index_params("FLAT") == {}
    assert search_params("FLAT", 50) == {"metric_type": "IP"}


def test_hnsw_ef_is_never_below_the_rows_asked_for():
    small, large = search_params("HNSW", 10), search_params("HNSW", 3000)
    assert small["metric_type"] == "IP"
    assert small["params"]["ef"] > 10  # AUTOINDEX's ef ~ limit gave recall@1 0.42 at 100k rows
    assert large["params"]["ef"] == 3000
    assert search_params("HNSW", 10, {"ef": 40})["params"]["ef"] == 40
    assert search_params("HNSW", 100, {"ef": 40})["params"]["ef"] == 100


def test_url_options_tune_the_index():
    got = parse_url("milvus://h?index=ivf_flat&nlist=256&nprobe=32&consistency=session&prefix=p1")
    assert (got["index"], got["prefix"], got["consistency"]) == ("IVF_FLAT", "p1", "Session")
    assert index_params(got["index"], got["options"]) == {"nlist": 256}
    assert search_params(got["index"], 10, got["options"])["params"] == {"nprobe": 32}
    got = parse_url("milvus://h?index=HNSW&m=32&ef_construction=400&ef=512")
    assert index_params(got["index"], got["options"]) == {"M": 32, "efConstruction": 400}
    assert search_params(got["index"], 10, got["options"])["params"] == {"ef": 512}


@pytest.mark.parametrize("url", ["milvus://h?ef=many", "milvus://h?nprobe=0", "milvus://h?consistency=always",
                                 "milvus://h?filter=both"])
def test_bad_options_are_refused(url):
    with pytest.raises(ValueError):
        parse_url(url)
