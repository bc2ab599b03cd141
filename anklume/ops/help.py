"""`make help`: the targets by group, root-only ones marked, every variable once."""

from __future__ import annotations

from anklume.ops.targets import GROUPS, TARGETS, VARIABLES


def text() -> str:
    lines = ["Usage: make TARGET [VAR=value ...]   (a variable a target does not read is "
             "refused)", ""]
    for group in GROUPS:
        lines.append(f"{group}:")
        for t in (t for t in TARGETS.values() if t.group == group):
            mark = " (root)" if t.root else ""
            reads = " ".join(f"{v}=" if v not in t.required else f"{v}=!"
                             for v in t.variables)
            lines.append(f"  {t.name:<20}{t.help}{mark}")
            if reads:
                lines.append(f"  {'':<20}  reads: {reads}")
        lines.append("")
    lines.append("variables (VAR=! is required; flags take 1/true/yes or 0/false/no):")
    for name, meaning in VARIABLES.items():
        lines.append(f"  {name:<16}{meaning}")
    return "\n".join(lines) + "\n"
