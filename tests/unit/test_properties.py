"""Property: content outside the markers survives any sequence of syncs and edits."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anklume import managed
from tests.unit.gen_support import VALID, run, write_infra

pytestmark = pytest.mark.unit

TARGET = "host_vars/pro-dev.yml"
VARIANTS = [
    VALID,
    VALID.replace("10.100.2.10", "10.100.2.11"),
    VALID.replace("ephemeral: true", "ephemeral: false"),
    VALID.replace('        ip: "10.100.2.10"\n',
                  '        ip: "10.100.2.12"\n        roles: [ollama_server]\n'),
]

# Any text, including \r, \x85, NUL, unicode and non-UTF-8 bytes (as surrogates),
# as long as no line of it is itself a marker line.
user_text = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from("\n\r\t #:-{}\x85")),
    max_size=60,
).filter(lambda t: managed.START_PREFIX not in t and managed.END_PREFIX not in t)

actions = st.lists(
    st.one_of(
        st.tuples(st.just("sync"), st.integers(0, len(VARIANTS) - 1)),
        st.tuples(st.just("head"), user_text),
        st.tuples(st.just("tail"), user_text),
    ),
    min_size=1, max_size=6,
)


def _cut(data: bytes) -> tuple[bytes, bytes, bytes]:
    start = data.index(managed.START.encode())
    end = data.index(managed.END.encode() + b"\n") + len(managed.END) + 1
    return data[:start], data[start:end], data[end:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=actions)
def test_user_content_survives_syncs_and_edits(steps: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / TARGET
        run(str(write_infra(root, VALID)))
        head, _, tail = _cut(path.read_bytes())
        for kind, arg in steps:
            if kind == "sync":
                assert isinstance(arg, int)
                write_infra(root, VARIANTS[arg])
                assert run(str(root / "infra.yml")).code == 0
            else:
                assert isinstance(arg, str)
                text = arg.encode("utf-8", "surrogateescape")
                if kind == "head":
                    head = text if not text or text.endswith(b"\n") else text + b"\n"
                else:
                    tail = text
                _, section, _ = _cut(path.read_bytes())
                path.write_bytes(head + section + tail)
            new_head, _, new_tail = _cut(path.read_bytes())
            assert (new_head, new_tail) == (head, tail)


@settings(max_examples=40, deadline=None)
@given(own=user_text, variant=st.integers(0, len(VARIANTS) - 1))
def test_a_file_without_markers_keeps_its_content_as_is(own: str, variant: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "host_vars").mkdir()
        (root / TARGET).write_bytes(own.encode())
        run(str(write_infra(root, VARIANTS[variant])))
        run(str(write_infra(root, VALID)))
        data = (root / TARGET).read_bytes()
        assert data.startswith(own.encode())
        head, _, tail = _cut(data)
        assert head in (own.encode(), own.encode() + b"\n") and tail == b""
