"""Install anywhere: the Python versions pyproject accepts, what `make serve` installs (the
runtime only) against what `make test` adds, and what make says about a bad interpreter."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from harness import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
TEST_ONLY = ("pytest", "import-linter", "tencentcloud", "tccli")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def test_requires_python_admits_3_11_to_3_13():
    spec = PYPROJECT["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet  # pytest's own dependency: always there

    allowed = SpecifierSet(spec)
    for version in ("3.11.0", "3.12.1", "3.13.0"):
        assert version in allowed, (spec, version)
    assert "3.10.13" not in allowed


def test_runtime_dependencies_leave_the_test_tools_to_the_test_extra():
    runtime = [_name(r) for r in PYPROJECT["project"]["dependencies"]]
    test = [_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
    assert not [r for r in runtime if r.startswith(TEST_ONLY)]
    assert {"pytest", "import-linter", "tccli"} <= set(test)


def test_licence_file_matches_pyproject():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def _make(tmp_path, *args: str) -> subprocess.CompletedProcess:
    # VENV points at an empty place, so the interpreter check runs (and nothing is installed).
    return subprocess.run(["make", "-C", str(REPO), f"VENV={tmp_path}/venv", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_names_a_missing_or_old_interpreter(tmp_path):
    out = _make(tmp_path, "PY=/missing/python3", "serve")
    assert out.returncode != 0
    assert "/missing/python3: not found" in out.stdout + out.stderr
    assert "is not Python 3.11" not in out.stdout + out.stderr
    old = tmp_path / "python-old"  # answers like a Python 3.10
    old.write_text("#!/bin/sh\ncase \"$2\" in *'>='*) echo False;; *) echo 'Python 3.10';; esac\n")
    old.chmod(0o755)
    out = _make(tmp_path, f"PY={old}", "serve")
    assert out.returncode != 0
    assert f"{old} is Python 3.10; openiai needs Python >= 3.11" in out.stdout
    assert not (tmp_path / "venv").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_serve_installs_the_runtime_and_make_test_the_test_extra(tmp_path):
    serve = _make(tmp_path, "-n", "serve").stdout
    assert "pip install --quiet -e .\n" in serve and "[test]" not in serve
    test = _make(tmp_path, "-n", "test").stdout
    assert "pip install --quiet -e '.[test]'" in test
