"""Fuzz: random and mutated YAML never crash the generator (exit 0 or 2, no traceback)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.gen_support import VALID, run

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check(text: str | bytes, *extra: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "infra.yml"
        if isinstance(text, str):
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
        else:
            path.write_bytes(text)
        result = run(str(path), *extra)
    assert result.code in (0, 2), result
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    if result.code == 2:
        assert result.err and all(line.startswith(str(path))
                                  for line in result.err.splitlines()), result.err


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["lxc", "vm", "10.100.2.10", "pro"]))
keys = st.sampled_from(["project_name", "global", "domains", "machines", "profiles", "ip",
                        "subnet_id", "type", "config", "devices", "roles", "gpu", "ephemeral",
                        "network_policies", "from", "to", "ports", "base_subnet", "pro",
                        "pro-dev", "admin", "protocol", "gpu_policy", "snapshots_expiry"])
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


@FUZZ
@given(data=values)
def test_random_yaml_documents(data: object) -> None:
    _check(yaml.safe_dump(data))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list(":-{}[]&*!|>'\"\n #?%@`,\t\r\\a1.\x00\x85")),
                    max_size=80))
def test_random_yaml_syntax(text: str) -> None:
    _check(text, "--dry-run")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = VALID.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate",
                                   "indent"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            pos = draw(st.integers(0, len(lines[i])))
            piece = draw(st.sampled_from([":", "- ", "{", "]", "&a ", "*a", "!!int ", "'", "9",
                                          "\t", "<<: *a", "x"]))
            lines[i] = lines[i][:pos] + piece + lines[i][pos:]
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] = "  " + lines[i]
        if not lines:
            lines = [""]
    return "\n".join(lines)


@FUZZ
@given(text=mutated())
def test_mutated_valid_files(text: str) -> None:
    _check(text, "--dry-run")


@pytest.mark.parametrize("text", [
    "a: &a [*a]\n",
    "a: &a {b: *a}\n",
    "[" * 5000 + "]" * 5000 + "\n",
    "domains: !!binary aGVsbG8=\n",
    "domains: {? [a, b] : c}\n",
    "domains:\n  pro: {subnet_id: 2020-01-01}\n",
    "--- a\n--- b\n",
    "domains: {pro: {subnet_id: 99999999999999999999999}}\n",
    "x: &x\n  <<: *x\n",
    "global: {<<: [1, 2]}\ndomains: {}\n",
    "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 12))
    .replace("*l0", "x"),
])
def test_nasty_inputs(text: str) -> None:
    _check(text)


@pytest.mark.parametrize("name", ["\x1e", "a\nb", "pro\u2028x"])
def test_a_control_character_in_a_name_is_escaped_in_its_one_line(name: str) -> None:
    """Found by the fuzzer: a project_name holding a record separator split the message."""
    _check(yaml.safe_dump({"project_name": name, "domains": {name: {"subnet_id": 1}}}))
