"""Arguments checked as Ansible checks them, copied as JSON (plugin_utils/checked_args.py,
ADR-098): the same answer as Ansible's own validator on Ansible's own templated values."""

from __future__ import annotations

import copy
import importlib

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.template import Templar, trust_as_template

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)

pytestmark = pytest.mark.unit

CA = importlib.import_module("ansible_collections.anklume.incus.plugins.plugin_utils.checked_args")

SPEC = {"instances": {"type": "list", "elements": "dict", "default": [], "options": {
            "name": {"type": "str", "required": True},
            "ip": {"type": "str"},
            "devices": {"type": "dict"},
            "target": {"type": "str", "default": ""}}},
        "wait": {"type": "bool", "default": True},
        "timeout": {"type": "int", "default": 120}}


def templated() -> dict:
    """Arguments as an action gets them: Ansible's tagged values, out of a template."""
    variables = {"machines": [{"name": f"m{i}", "ip": f"10.9.0.{i}",
                               "devices": {"eth0": {"type": "nic", "mtu": 1400}}}
                              for i in range(50)]}
    templar = Templar(variables=variables)
    return {"instances": templar.template(trust_as_template("{{ machines }}")),
            "wait": templar.template(trust_as_template("{{ 'yes' }}")), "timeout": "30"}


def test_the_answer_is_ansibles_own() -> None:
    args = templated()
    ours = CA.validate(SPEC, args)
    theirs = ArgumentSpecValidator(SPEC).validate(args)
    assert ours.error_messages == theirs.error_messages == []
    assert ours.validated_parameters == theirs.validated_parameters
    assert ours.validated_parameters["wait"] is True and ours.validated_parameters["timeout"] == 30
    assert ours.validated_parameters["instances"][3]["target"] == ""


def test_a_bad_argument_reads_as_ansible_says_it() -> None:
    args = {**templated(), "timeout": "soon", "nosuch": 1}
    assert CA.validate(SPEC, args).error_messages == \
        ArgumentSpecValidator(SPEC).validate(args).error_messages != []


def test_the_copy_is_plain_json_and_independent() -> None:
    args = CA.as_json(templated())
    copied = copy.deepcopy(args)
    assert copied == args and copied is not args
    assert type(copied["instances"][0]["name"]) is str  # no tag left
    copied["instances"][0]["name"] = "changed"
    assert args["instances"][0]["name"] == "m0"


def test_arguments_json_cannot_carry_are_copied_the_slow_way() -> None:
    args = {"instances": [], "wait": True, "timeout": 1, "when": {1, 2}}
    found = CA.as_json(args)
    assert type(found) is dict and found["when"] == {1, 2}
