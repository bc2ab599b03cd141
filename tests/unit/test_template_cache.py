"""Compiled templates kept between runs (plugins/plugin_utils/template_cache.py, ADR-100).

Each case runs Ansible's own Templar in a fresh Python process (as each playbook run is),
with the cache installed in a folder of the test's: the first process compiles and keeps,
the next loads. To show that a text was loaded and not compiled again, the second process
makes Jinja's code generation fail: only a kept code can then render the template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
RENDER = """
import json, sys
sys.path.insert(0, {collections!r})
from ansible.template import Templar, trust_as_template
from ansible_collections.anklume.incus.plugins.plugin_utils import template_cache
template_cache.install({folder!r})
if {no_compile!r}:
    import jinja2.environment
    def refuse(*args, **kwargs):
        raise RuntimeError("compiled again")
    jinja2.environment.Environment._generate = refuse
answers = {{}}
for text, variables in {cases!r}:
    try:
        answers[text] = Templar(variables=variables).template(trust_as_template(text))
    except Exception as exc:
        answers[text] = "error: " + str(exc)[:200]
print(json.dumps(answers, default=str))
"""
CASES = [("{{ [1, 2, 3] | length }}", {}),
         ("{{ who | upper }} is {{ n + 1 }}", {"who": "ada", "n": 41}),
         ("{% for x in xs %}{{ x }},{% endfor %}", {"xs": [1, 2]}),
         ("{{ 'c:\\\\new' }}", {}), ("{{ item is defined }}", {})]


def render(folder: Path, cases: list[tuple[str, dict[str, object]]],
           no_compile: bool = False) -> dict[str, object]:
    code = RENDER.format(collections=str(REPO / "collections"), folder=str(folder),
                         no_compile=no_compile, cases=cases)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    answers: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answers


def test_a_kept_text_renders_the_same_without_being_compiled_again(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    first = render(folder, CASES)
    assert first["{{ [1, 2, 3] | length }}"] in (3, "3")
    assert first["{{ who | upper }} is {{ n + 1 }}"] == "ADA is 42"
    assert len(list(folder.iterdir())) == len(CASES)
    # The control: with code generation refused and nothing kept, a text cannot render.
    assert str(render(tmp_path / "empty", CASES[:1], no_compile=True)[CASES[0][0]]) \
        .startswith("error: ")
    assert render(folder, CASES, no_compile=True) == first
    # Other values, the same texts: the code holds no value.
    other = render(folder, [("{{ who | upper }} is {{ n + 1 }}", {"who": "bo", "n": 1})],
                   no_compile=True)
    assert other == {"{{ who | upper }} is {{ n + 1 }}": "BO is 2"}


def test_a_text_whose_filter_is_called_otherwise_is_compiled_again(tmp_path: Path) -> None:
    """The kept entry names how Jinja calls each filter of the text; an entry that says
    otherwise (a plugin that changed since) is not used."""
    import marshal
    folder = tmp_path / "templates"
    text = "{{ [3, 1] | sort }}"
    first = render(folder, [(text, {})])
    (entry,) = folder.iterdir()
    named, code = marshal.loads(entry.read_bytes())
    from jinja2.utils import _PassArg
    assert named == (("filter", "sort", repr(_PassArg.environment)),), named
    entry.write_bytes(marshal.dumps(((("filter", "sort", "changed"),), code)))
    assert str(render(folder, [(text, {})], no_compile=True)[text]).startswith("error: ")
    assert render(folder, [(text, {})]) == first


def test_a_damaged_entry_is_compiled_again(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    first = render(folder, CASES[:1])
    for entry in folder.iterdir():
        entry.write_bytes(b"\x00 not marshal")
    assert render(folder, CASES[:1]) == first
    assert render(folder, CASES[:1], no_compile=True) == first  # kept again, whole


def test_the_folder_is_emptied_past_its_limit(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.anklume.incus.plugins.plugin_utils import template_cache
    folder = tmp_path / "templates"
    folder.mkdir()
    for n in range(template_cache.MAX_ENTRIES + 1):
        (folder / f"{n}.code").write_bytes(b"")
    render(folder, CASES[:1])
    assert len(list(folder.iterdir())) == 1
