"""The variables the user gave make on its command line, and the one reading of flags.

GNU make hands its command-line assignments to every recipe in MAKEFLAGS, after `` -- ``,
with spaces, tabs and backslashes escaped by a backslash and each ``$`` doubled. Reading
them there (not make's expansion) tells a variable the user typed from one the Makefile
defaults, so a variable a target does not use is refused instead of ignored, and CMD='$X'
reaches the instance as typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from anklume.ops.problems import refuse

_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:::=|:::=|:=|\+=|\?=|!=|=)(.*)$", re.S)

TRUE = ("1", "true", "yes")
FALSE = ("0", "false", "no", "")


def _words(text: str) -> list[str]:
    """Split on unescaped spaces, undoing make's backslash escapes."""
    words: list[str] = []
    cur: list[str] = []
    i = 0
    started = False
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i + 1])
            started = True
            i += 2
            continue
        if c == " ":
            if started:
                words.append("".join(cur))
                cur, started = [], False
        else:
            cur.append(c)
            started = True
        i += 1
    if started:
        words.append("".join(cur))
    return words


def command_line(makeflags: str) -> dict[str, str]:
    """The VAR=value assignments of a MAKEFLAGS value, as the user typed them."""
    _, sep, tail = makeflags.partition(" -- ")
    if not sep:
        if not makeflags.startswith("-- "):
            return {}
        tail = makeflags[3:]
    found: dict[str, str] = {}
    for word in _words(tail):
        m = _ASSIGN.match(word)
        if m:
            found[m.group(1)] = m.group(2).replace("$$", "$")
    return found


def flag(name: str, value: str) -> bool:
    """FORCE=1|true|yes is on, 0|false|no or empty is off; anything else is refused."""
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise refuse(f"{name}={value} is not a yes or a no",
                 f"write {name}=1 (or true, yes) or {name}=0 (or false, no)")


def given(makeflags: str | None, environ: Mapping[str, str], accepted: tuple[str, ...]
          ) -> tuple[dict[str, str], dict[str, str]]:
    """(the command line's assignments, the values a target reads): the command line wins;
    an accepted variable set only in the environment is read too (DOMAIN=pro make destroy)."""
    typed = command_line(makeflags or "")
    values = {k: environ[k] for k in accepted if k in environ and k not in typed}
    values.update(typed)
    return typed, values
