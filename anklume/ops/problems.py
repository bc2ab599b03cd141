"""One line for a refused command: what is wrong and how to fix it (exit 2)."""

from __future__ import annotations

from anklume.errors import InputError, Problem


def refuse(what: str, fix: str = "", where: str = "make") -> InputError:
    """An InputError to raise: printed once by errors.guarded, exit 2, nothing done."""
    return InputError([Problem(where, None, "", what, fix)])
