"""A module's DOCUMENTATION with the collection's doc fragments merged in, as Ansible does.

Ansible merges each fragment named in ``extends_documentation_fragment`` under the
module's own text: an option or attribute both define is one mapping, the module's keys
winning (a module may override just a description); a list (notes) is added after the
module's own. Fragments of other collections
(``ansible.builtin.action_common_attributes``) add no option and are skipped here.
"""

from __future__ import annotations

import importlib
from typing import Any

import yaml

FRAGMENTS = "ansible_collections.anklume.incus.plugins.doc_fragments."
OURS = "anklume.incus."


def fragment(name: str) -> dict[str, Any]:
    text = importlib.import_module(FRAGMENTS + name).ModuleDocFragment.DOCUMENTATION
    return yaml.safe_load(text)


def resolved(documentation: str) -> dict[str, Any]:
    doc = yaml.safe_load(documentation)
    for slug in doc.get("extends_documentation_fragment") or []:
        if not slug.startswith(OURS):
            continue
        for section, entries in fragment(slug.removeprefix(OURS)).items():
            if isinstance(entries, list):  # notes: added after the module's own
                doc[section] = [*(doc.get(section) or []), *entries]
                continue
            mine = doc.setdefault(section, {})
            for key, value in entries.items():
                mine[key] = {**value, **(mine.get(key) or {})}
    return doc
