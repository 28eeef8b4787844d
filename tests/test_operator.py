"""The first hour of an operator, the rest of issue 16: where the data lives (every command
says it; a new, empty data directory beside an existing one is pointed out), the accounts
commands and `keys create --create`, and the dead ends of `openiai import`.

Every case runs the real `python -m openiai.cli` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import TESTDATA
from harness import OPENIAI, REPO

LFW = TESTDATA / "lfw" / "images"


def run(*args: str, env: dict | None = None, cwd: Path = REPO,
        timeout: float = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENIAI_")}
    return subprocess.run([*OPENIAI, *args], env={**base, "PYTHONPATH": str(REPO), **(env or {})},
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def where_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("openiai: data directory ")]


# ---- item 4: where the data lives ---------------------------------------------------------

def test_every_data_command_names_its_data_directory_and_database_once(tmp_path):
    data = tmp_path / "d"
    for args in (["keys", "create", "--account", "a", "--create", "--json"],
                 ["keys", "list", "--json"], ["accounts", "list", "--json"]):
        out = run(*args, "--data-dir", str(data))
        assert out.returncode == 0, out.stderr
        json.loads(out.stdout)  # stdout stays clean JSON: the line goes to stderr
        lines = where_lines(out.stderr)
        assert lines == [f"openiai: data directory {data.resolve()}, database "
                         f"sqlite:///{data.resolve()}/openiai.db"], out.stderr


def test_a_new_empty_data_directory_beside_an_existing_one_is_pointed_out(tmp_path):
    home = tmp_path / "srv"
    assert run("keys", "create", "--account", "a", "--create", "--data-dir",
               str(home / "data")).returncode == 0
    # OPENIAI_DATA_DIR names the real one, but --data-dir (or another folder's ./data) is new.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run("keys", "list", "--data-dir", "data", env={"OPENIAI_DATA_DIR": str(home / "data")},
              cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert f"{elsewhere / 'data'} holds no openiai data" in out.stderr
    assert "NEW, empty" in out.stderr and f"--data-dir {home / 'data'}" in out.stderr
    # Once it holds data it is not new any more: no note.
    out = run("keys", "list", "--data-dir", "data", env={"OPENIAI_DATA_DIR": str(home / "data")},
              cwd=elsewhere)
    assert "NEW" not in out.stderr and len(where_lines(out.stderr)) == 1


# ---- item 5: accounts ----------------------------------------------------------------------

def _store_group_and_person(data: Path, account: str) -> None:
    """A group (through the API's dispatch) and a person in it (straight into the store: no
    image pipeline needed to have data)."""
    from openiai.api.dispatch import dispatch
    from openiai.core.clock import now_ms
    from openiai.core.settings import Settings
    from openiai.services import Services
    from openiai.store.schema import Group, Membership, Person

    services = Services(Settings(data_dir=data), with_index=False)
    try:
        services.keys.create_key(account)
        account_id = services.keys.account_id(account)
        dispatch(services, account_id, "2020-03-03", "CreateGroup", {"GroupId": "g",
                                                                      "GroupName": "G"})
        with services.db.write() as s:
            group = s.query(Group).filter_by(account_id=account_id, group_id="g").one()
            person = Person(account_id=account_id, person_id="p", name="P", gender=0,
                            face_model_version=group.face_model_version, created_ms=now_ms())
            s.add(person)
            s.flush()
            s.add(Membership(group_pk=group.pk, person_pk=person.pk, created_ms=now_ms(),
                             ex_descriptions=[]))
    finally:
        services.close()


def _accounts(data: Path) -> dict[str, tuple[int, int, int]]:
    """Account -> (keys, groups, persons), read in this process (cheaper than a command)."""
    from openiai.core.settings import Settings
    from openiai.store.db import Database
    from openiai.store.keys import KeyStore, load_master_key

    settings = Settings(data_dir=data)
    db = Database(settings.db_url)
    try:
        return {a.name: (a.keys, a.groups, a.persons)
                for a in KeyStore(db, load_master_key(settings.master_key_path)).list_accounts()}
    finally:
        db.dispose()


def test_accounts_list_create_rename_delete(tmp_path):
    data = str(tmp_path / "d")
    assert run("accounts", "create", "acme", "--data-dir", data).returncode == 0
    out = run("accounts", "create", "acme", "--data-dir", data)
    assert out.returncode == 1 and "exists already" in out.stderr
    assert run("accounts", "rename", "acme", "acme-corp", "--data-dir", data).returncode == 0
    assert _accounts(tmp_path / "d") == {"acme-corp": (0, 0, 0)}

    _store_group_and_person(tmp_path / "d", "acme-corp")  # and a key
    out = run("accounts", "list", "--json", "--data-dir", data)
    assert [{k: v for k, v in row.items() if k != "Created"} for row in json.loads(out.stdout)] \
        == [{"Account": "acme-corp", "Keys": 1, "Groups": 1, "Persons": 1}]
    out = run("accounts", "delete", "acme-corp", "--data-dir", data)
    assert out.returncode == 1 and "--force" in out.stderr and "1 group(s)" in out.stderr
    assert "acme-corp" in _accounts(tmp_path / "d")
    out = run("accounts", "delete", "acme-corp", "--force", "--data-dir", data)
    assert out.returncode == 0, out.stderr
    assert _accounts(tmp_path / "d") == {}
    # The faces' persons and the group left through the API: the index change log says so.
    from sqlalchemy import select

    from openiai.core.settings import Settings
    from openiai.store.db import Database
    from openiai.store.schema import Group, IndexChange, Person

    from openiai.store.schema import ApiKey

    db = Database(Settings(data_dir=tmp_path / "d").db_url)
    with db.read() as s:
        assert s.scalars(select(Group)).all() == [] and s.scalars(select(Person)).all() == []
        assert s.scalars(select(ApiKey)).all() == [] and s.scalars(select(IndexChange.kind)).all()
    db.dispose()
    out = run("accounts", "delete", "nobody", "--data-dir", data)
    assert out.returncode == 1 and "no account named 'nobody'" in out.stderr


def test_keys_create_on_an_unknown_account_asks_for_create_and_names_must_be_visible(tmp_path):
    data = str(tmp_path / "d")
    run("keys", "create", "--account", "acme", "--create", "--data-dir", data)
    out = run("keys", "create", "--account", "acmee", "--data-dir", data)  # a typo
    assert out.returncode == 1 and "--create" in out.stderr and "acmee" in out.stderr
    assert out.stdout == "" and set(_accounts(tmp_path / "d")) == {"acme"}
    out = run("keys", "create", "--account", "acme", "--json", "--data-dir", data)  # exists
    assert out.returncode == 0 and json.loads(out.stdout)["SecretId"].startswith("AKID")
    for args in (["accounts", "create", ""], ["keys", "create", "--account", " ", "--create"]):
        out = run(*args, "--data-dir", data)
        assert out.returncode == 1 and "account name" in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert set(_accounts(tmp_path / "d")) == {"acme"}


def test_account_names_must_be_visible_text():
    import pytest

    from openiai.store.keys import AccountError, check_account_name

    for bad in ("", "   ", " acme", "acme ", "a\tb", "a\nb", "a\u202eb", "a\u200bb", "x" * 129):
        with pytest.raises(AccountError):
            check_account_name(bad)
    for good in ("acme", "ACME Corp.", "客户-1", "x" * 128):
        assert check_account_name(good) == good


# ---- item 6: import dead ends --------------------------------------------------------------

def _import(src: Path, data: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = run("import", str(src), "--data-dir", str(data), "--no-progress", "--json", *args)
    try:
        summary = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        summary = None
    return out, summary


def _one_person(tmp_path: Path) -> tuple[Path, str]:
    """A folder tree with one LFW person of 2 images: tmp/src/<name>/*.jpg."""
    name = next(d.name for d in sorted(LFW.iterdir()) if len(list(d.glob("*.jpg"))) == 2)
    src = tmp_path / "src"
    (src / name).mkdir(parents=True)
    for img in sorted((LFW / name).glob("*.jpg")):
        os.symlink(img, src / name / img.name)
    return src, name


def test_import_a_folder_of_one_persons_photos_or_of_nothing_is_explained(tmp_path):
    src, name = _one_person(tmp_path)
    out, _ = _import(src / name, tmp_path / "d", "--group", "g")  # the person's own folder
    said = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stderr
    assert "ONE person" in said and "2 image(s) directly" in said
    assert f"openiai import {src.resolve()}" in said
    (tmp_path / "empty").mkdir()
    out, _ = _import(tmp_path / "empty", tmp_path / "d", "--group", "g")
    assert out.returncode == 2 and "nothing to import" in out.stderr


def test_import_of_persons_that_exist_outside_the_group(tmp_path):
    from openiai.api.dispatch import dispatch
    from openiai.core.settings import Settings
    from openiai.services import Services

    src, name = _one_person(tmp_path)
    data = tmp_path / "d"
    out, first = _import(src, data, "--group", "g1")
    assert out.returncode == 0 and first["faces_enrolled"] == 2, out.stderr
    # Same folder into another group: every image refused (PersonId taken), exit 1, and the
    # way out is named.
    out, second = _import(src, data, "--group", "g2")
    assert out.returncode == 1, out.stderr
    assert second["skipped"] == {"person_exists": 2} and second["faces_enrolled"] == 0
    text = " ".join(out.stderr.split())
    assert "CopyPerson" in text and "--copy-existing" in text and "nothing imported" in text
    # --copy-existing: the person joins g2 with the faces they have; nothing enrolled twice.
    out, third = _import(src, data, "--group", "g2", "--copy-existing")
    assert out.returncode == 0, out.stderr
    assert third["persons_copied"] == 1 and third["faces_enrolled"] == 0
    assert third["skipped"] == {"already_imported": 2}
    services = Services(Settings(data_dir=data), with_index=False)
    try:
        account_id = services.keys.account_id("default")
        info = dispatch(services, account_id, "2020-03-03", "GetPersonGroupInfo",
                        {"PersonId": name})
        base = dispatch(services, account_id, "2020-03-03", "GetPersonBaseInfo",
                        {"PersonId": name})
    finally:
        services.close()
    assert {g["GroupId"] for g in info["PersonGroupInfos"]} == {"g1", "g2"}
    assert len(base["FaceIds"]) == 2
