"""Every module validates its list entries through its argument spec (ADR-056).

A bad entry (no name, an unknown key, not a mapping) fails with Ansible's one-line
message, before the module runs: never a KeyError traceback. The documentation's
suboptions are the spec's options, so `ansible-doc` and validate-modules agree.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from tests.incus_helpers import REPO
from tests.unit.fake_incus import module
from tests.unit.module_doc import resolved

pytestmark = pytest.mark.unit

# Each module's list of entries, and an entry it accepts.
ENTRIES = {
    "incus_network": ("networks", {"name": "net-a"}),
    "incus_project": ("projects", {"name": "a"}),
    "incus_profile": ("profiles", {"project": "a", "name": "gpu"}),
    "incus_instance": ("instances", {"project": "a", "name": "a-dev"}),
    "incus_snapshot": ("instances", {"name": "a-dev"}),
    "incus_ready": ("instances", {"host": "a-dev", "project": "a", "name": "a-dev"}),
    "provision_check": ("instances", {"host": "a-dev", "project": "a", "name": "a-dev"}),
}
ALL_MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("[!_]*.py"))


def errors(name: str, params: dict[str, Any]) -> list[str]:
    return list(ArgumentSpecValidator(module(name).ARGUMENT_SPEC).validate(params).error_messages)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_a_good_entry_is_accepted(name: str) -> None:
    option, entry = ENTRIES[name]
    assert errors(name, {option: [entry]}) == []


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_an_entry_without_its_name_fails_with_one_clear_line(name: str) -> None:
    option, entry = ENTRIES[name]
    [msg] = errors(name, {option: [{k: v for k, v in entry.items() if k != "name"}]})
    assert msg == f"missing required arguments: name found in {option}"


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_an_unknown_key_in_an_entry_is_named(name: str) -> None:
    option, entry = ENTRIES[name]
    [msg] = errors(name, {option: [{**entry, "nmae": "typo"}]})
    assert msg.startswith(f"{option}.nmae. Supported parameters include: "), msg


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_an_entry_that_is_not_a_mapping_fails(name: str) -> None:
    option, _entry = ENTRIES[name]
    assert errors(name, {option: [["not", "a", "mapping"]]})


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_defaults_of_the_entries_are_filled_in(name: str) -> None:
    option, entry = ENTRIES[name]
    checked = ArgumentSpecValidator(module(name).ARGUMENT_SPEC).validate({option: [entry]})
    options = module(name).ARGUMENT_SPEC[option]["options"]
    [got] = checked.validated_parameters[option]
    assert set(got) == set(options)
    for key, spec in options.items():
        if "default" in spec and key not in entry:
            assert got[key] == spec["default"]


@pytest.mark.parametrize("name", ALL_MODULES)
def test_every_list_of_entries_declares_its_options(name: str) -> None:
    for option, spec in module(name).ARGUMENT_SPEC.items():
        if spec.get("type") == "list" and spec.get("elements") == "dict":
            assert spec.get("options"), f"{name}: {option} has no options="


def _doc_options(name: str) -> dict[str, Any]:
    options: dict[str, Any] = resolved(module(name).DOCUMENTATION)["options"]
    return options


@pytest.mark.parametrize("name", ALL_MODULES)
def test_documented_suboptions_match_the_spec(name: str) -> None:
    """validate-modules checks this too (make collection); here it costs no tool."""
    doc = _doc_options(name)
    for option, spec in module(name).ARGUMENT_SPEC.items():
        if "options" not in spec:
            continue
        documented = doc[option].get("suboptions") or {}
        assert set(documented) == set(spec["options"]), option
        for key, sub in spec["options"].items():
            assert documented[key].get("type") == sub.get("type"), f"{option}.{key}"
            assert bool(documented[key].get("required")) == bool(sub.get("required"))
            assert documented[key].get("default") == sub.get("default"), f"{option}.{key}"


@pytest.mark.parametrize("name", ALL_MODULES)
def test_documentation_declares_the_attributes(name: str) -> None:
    doc = resolved(module(name).DOCUMENTATION)
    assert {"check_mode", "diff_mode", "platform"} <= set(doc.get("attributes") or {})


def test_a_bad_entry_fails_the_task_without_a_traceback() -> None:
    """End to end through the action plugin (ADR-013): the task fails with the line."""
    proc = subprocess.run(
        # -i: ansible.cfg's inventory/ is the checkout's own infra, not this test's.
        [str(REPO / ".venv" / "bin" / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-m", "anklume.incus.incus_network", "-a", '{"networks": [{"description": "x"}]}'],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "missing required arguments: name found in networks" in out, out
    assert "Traceback" not in out and "KeyError" not in out, out


def test_every_module_but_state_probe_runs_through_the_one_in_process_action() -> None:
    """meta/runtime.yml routes each module to plugins/action/inprocess.py (ADR-013); the
    four that read the controller's role files have their own (ADR-078, ADR-079, ADR-081,
    ADR-082)."""
    import yaml
    routing = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["plugin_routing"]
    modules = ({p.stem for p in (REPO / "plugins" / "modules").glob("*.py")}
               - {"state_probe", "role_arguments", "reconcile_roles", "provision_check"})
    assert {name: entry["action_plugin"] for name, entry in routing["modules"].items()} == \
        dict.fromkeys(modules, "anklume.incus.inprocess")
    assert sorted(p.name for p in (REPO / "plugins" / "action").glob("*.py")) == \
        ["inprocess.py", "provision_check.py", "reconcile_roles.py", "role_arguments.py",
         "state_probe.py"]


def test_provision_check_takes_exactly_incus_readys_arguments_and_its_record() -> None:
    """Its action hands its checked arguments to incus_ready as they are (ADR-082), but for
    the record of its own probes (ADR-099), which it keeps for itself."""
    own = dict(module("provision_check").ARGUMENT_SPEC)
    assert own.pop("probed") == {"type": "str", "default": ""}
    assert own == module("incus_ready").ARGUMENT_SPEC
