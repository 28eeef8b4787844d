"""Every action the product docs or any SDK release name answers its result or
UnsupportedOperation, never InvalidAction (InvalidAction is for names that never existed)."""

from __future__ import annotations

import json

import pytest

from conftest import needs_dir
from harness import REPO

SPEC = REPO.parent / "shared" / "spec" / "iai_sdk_spec.json"


@needs_dir(SPEC, "the wire spec")
def test_no_documented_action_is_an_invalid_action():
    import openiai.api.app  # noqa: F401  (registers the handlers, as the server does)
    from openiai.api.dispatch import resolve_action
    from openiai.core.errors import ApiError

    spec = json.loads(SPEC.read_text())
    answers = {}
    for version in ("2020-03-03", "2018-03-01"):
        names = set(spec[version]) | set(spec["legacy_actions"].get(version, {}))
        for action in sorted(names):
            try:
                resolve_action(version, action)
                answers[version, action] = "served"
            except ApiError as exc:
                answers[version, action] = exc.code
    assert {k: v for k, v in answers.items() if v not in ("served", "UnsupportedOperation")} == {}
    assert answers["2020-03-03", "DetectLiveFace"] == "served"
    assert answers["2018-03-01", "CheckSimilarPerson"] == "served"
    with pytest.raises(ApiError) as err:
        resolve_action("2020-03-03", "NoSuchActionEver")
    assert err.value.code == "InvalidAction"
