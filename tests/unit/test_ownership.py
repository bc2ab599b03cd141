"""ADR-021: what another owner holds under a declared name is a conflict, never changed.

Pure checks of the helpers every Incus module shares (plugins/module_utils/incus_client.py);
tests/integration/test_ownership.py proves the same on the real daemon.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import pytest

from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit


def _client() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "anklume_test_incus_client", REPO / "plugins" / "module_utils" / "incus_client.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IC = _client()


def obj(owner: str | None, managed: bool = True) -> dict[str, Any]:
    config = {"ipv4.nat": "true"}
    if managed:
        config["user.anklume.managed"] = "true"
    if owner is not None:
        config["user.anklume.owner"] = owner
    return {"config": config}


def test_ours_is_no_problem() -> None:
    assert IC.ownership_problem("network", "net-pro", obj("a"), "a") is None


def test_another_owner_is_a_conflict_with_owner_and_fixes() -> None:
    kind, text = IC.ownership_problem("network", "net-pro", obj("a"), "b")
    assert kind == "conflict"
    assert text.startswith("network net-pro belongs to anklume project 'a', not 'b': ")
    assert "rename the domain in infra.yml" in text
    assert "`incus network delete net-pro`" in text
    assert "`incus network set net-pro user.anklume.owner=b`" in text
    assert "\n" not in text


def test_marker_without_owner_is_not_ours_when_we_have_one() -> None:
    kind, text = IC.ownership_problem("project", "pro", obj(None), "b")
    assert kind == "conflict" and "belongs to anklume project ''" in text


def test_unmarked_object_is_foreign_with_the_adopt_command() -> None:
    kind, text = IC.ownership_problem("network", "net-pro", obj("a", managed=False), "b")
    assert kind == "foreign"
    assert text.startswith("network net-pro exists without the anklume marker")
    assert "`incus network set net-pro user.anklume.managed=true user.anklume.owner=b`" in text


@pytest.mark.parametrize(("kind", "name", "project", "command"), [
    ("project", "pro", None, "incus project set pro user.anklume.owner=b"),
    ("profile", "pro/gpu", "pro", "incus profile set --project pro gpu user.anklume.owner=b"),
    ("instance", "pro-dev", "pro", "incus config set --project pro pro-dev user.anklume.owner=b"),
])
def test_each_kind_names_its_own_hand_over_command(kind: str, name: str, project: str | None,
                                                   command: str) -> None:
    _, text = IC.ownership_problem(kind, name, obj("a"), "b", project)
    assert f"`{command}`" in text, text


def test_owner_conflicts_skips_missing_ours_and_unmarked() -> None:
    objects = [("net-a", None, None), ("net-b", obj("me"), None),
               ("net-c", obj("x", managed=False), None), ("net-d", obj("other"), None)]
    entries = IC.owner_conflicts("network", objects, "me")
    assert [(e["name"], e["action"]) for e in entries] == [("net-d", "conflict")]
    msg = IC.conflict_message("incus_network", entries)
    assert msg.splitlines()[0] == ("incus_network: 1 declared object(s) belong to another "
                                   "owner; nothing was changed:")
    assert msg.splitlines()[1] == entries[0]["reason"]
