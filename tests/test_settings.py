"""Settings are the only reader of the environment, and every setting reaches what it configures:
`--model-dir` / OPENIAI_MODEL_DIR decide which model files a real server loads."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness import OPENIAI, REPO, Server
from openiai.core.settings import ENVIRONMENT, Settings, SettingsError
from openiai.vision.models import ModelZoo

PACKAGE = REPO / "openiai"


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read os.environ / os.getenv (copying the whole environment for a child
    process, ``dict(os.environ, ...)``, is not reading a setting)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("getenv", "getenvb"):
            lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            parent = getattr(node, "parent", None)
            copied = (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                      and parent.func.id == "dict" and parent.args and parent.args[0] is node)
            if not copied:
                lines.append(node.lineno)
    return lines


def test_no_module_but_settings_reads_the_environment():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                child.parent = parent
        rel = path.relative_to(REPO).as_posix()
        if rel != "openiai/core/settings.py":
            offenders += [f"{rel}:{n}" for n in _environment_reads(tree)]
    assert offenders == []


def test_the_guard_sees_environment_reads():
    """The AST check above is not vacuous."""
    sample = "import os\na = os.environ.get('X')\nb = os.getenv('Y')\nc = dict(os.environ, Z='1')\n"
    tree = ast.parse(sample)
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            child.parent = parent
    assert sorted(_environment_reads(tree)) == [2, 3]


def test_every_variable_reaches_its_field_and_flags_win():
    env = {"OPENIAI_PORT": "9001", "OPENIAI_MODEL_DIR": "/models", "OPENIAI_ORT_THREADS": "2",
           "OPENIAI_INFERENCE_SLOTS": "3", "OPENIAI_KEY_CACHE_SECONDS": "0.5",
           "OPENIAI_ALLOW_PRIVATE_URLS": "yes", "OPENIAI_TESTDATA": "/data/faces",
           "OPENIAI_RATE_LIMITS": '{"a": {"*": 1}}', "OPENIAI_INDEX_SNAPSHOT_CHANGES": "7"}
    s = Settings.from_env(env, port=None, model_dir=Path("/flag/models"))
    assert (s.port, s.model_dir, s.ort_threads, s.slots, s.key_cache_seconds) == \
        (9001, Path("/flag/models"), 2, 3, 0.5)
    assert s.allow_private_urls and s.testdata_dir == Path("/data/faces")
    assert s.rate_limits == '{"a": {"*": 1}}' and s.index_snapshot_changes == 7
    assert Settings.from_env({}).model_dir is None  # empty environment: the defaults
    assert Settings.from_env({"OPENIAI_PORT": ""}).port == 8000  # empty means unset


def test_readme_lists_every_variable():
    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"`(OPENIAI_[A-Z_]+)`", readme))
    assert set(ENVIRONMENT) <= listed | {"OPENIAI_INDEX_SNAPSHOT_SECONDS"}  # one row, two names


@pytest.mark.parametrize("var,raw", [("OPENIAI_PORT", "http"), ("OPENIAI_PORT", "70000"),
                                     ("OPENIAI_ORT_THREADS", "0"),
                                     ("OPENIAI_ALLOW_PRIVATE_URLS", "maybe"),
                                     ("OPENIAI_KEY_CACHE_SECONDS", "-1")])
def test_unusable_values_name_their_variable(var, raw):
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({var: raw})


def test_a_bad_variable_stops_the_cli_with_one_line(tmp_path):
    out = subprocess.run([*OPENIAI, "serve", "--data-dir", str(tmp_path)], cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "OPENIAI_PORT": "http"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "openiai: OPENIAI_PORT='http' is not usable: invalid literal for int() with base 10: 'http'"]


# ---- --model-dir reaches the model zoo of a real server ------------------------------------

def _readyz(srv: Server, want_status: int, timeout: float = 90) -> dict:
    deadline = time.time() + timeout
    while True:
        resp = httpx.get(f"http://{srv.endpoint}/readyz", timeout=10)
        models = resp.json()["checks"]["models"]
        settled = all(v != "not loaded" for v in models.values())
        if resp.status_code == want_status and settled:
            return models
        assert time.time() < deadline, resp.text
        time.sleep(0.2)


@pytest.fixture
def tampered_models(tmp_path) -> Path:
    """A model folder whose SFace file has the bundled name but other bytes."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / ModelZoo().path("sface").name).write_bytes(b"not SFace")
    return folder


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_model_dir_decides_which_files_the_server_loads(tmp_path, tampered_models, how):
    extra = {"OPENIAI_MODEL_DIR": str(tampered_models)} if how == "environment" else {}
    srv = Server(tmp_path / "data", extra_env=extra)
    if how == "flag":
        srv.serve_args = ["--model-dir", str(tampered_models)]
    srv.start()
    try:
        models = _readyz(srv, 503)
    finally:
        srv.stop()
    # The tampered file in the folder was chosen over the bundled one and refused; the models
    # the folder does not hold came from the installed packages.
    assert models["sface"].startswith("ModelIntegrityError")
    assert str(tampered_models) in models["sface"]
    assert models["yunet"] == "ok" and models["face_mesh"] == "ok"


def test_model_dir_with_good_copies_serves_from_it(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    zoo = ModelZoo()
    for name in zoo.names():
        shutil.copy(zoo.path(name), folder)
    listed = subprocess.run([*OPENIAI, "models", "--model-dir", str(folder), "--load", "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["name"]: Path(r["file"]).parent for r in rows} == dict.fromkeys(zoo.names(), folder)
    assert {r["state"] for r in rows} == {"ok"}
    srv = Server(tmp_path / "data")
    srv.serve_args = ["--model-dir", str(folder)]
    srv.start()
    try:
        assert _readyz(srv, 200) == dict.fromkeys(zoo.names(), "ok")
    finally:
        srv.stop()
