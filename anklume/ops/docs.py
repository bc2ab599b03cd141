"""The target x variable table of docs/make-targets.md, from the one table in targets.py.

``python -m anklume.ops.docs`` prints it; tests/unit/test_make_targets.py checks that the
doc holds it as printed.
"""

from __future__ import annotations

from anklume.ops.targets import GROUPS, TARGETS, VARIABLES


def table() -> str:
    lines = ["| target | group | variables it reads (**required**) | lock | root |",
             "| --- | --- | --- | --- | --- |"]
    for group in GROUPS:
        for t in (t for t in TARGETS.values() if t.group == group):
            reads = ", ".join(f"**{v}**" if v in t.required else v for v in t.variables)
            if t.prefixes:
                reads += (", " if reads else "") + ", ".join(f"{p}*" for p in t.prefixes)
            lines.append(f"| `{t.name}` | {group} | {reads or '-'} | "
                         f"{'yes' if t.locks else '-'} | {'yes' if t.root else '-'} |")
    lines += ["", "| variable | meaning |", "| --- | --- |"]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in VARIABLES.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
