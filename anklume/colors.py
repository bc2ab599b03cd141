"""A colour per domain (ADR-090): one of QubesOS's label names or ``#rrggbb``.

The colour marks what belongs to a domain wherever the user sees it (`make graph`, window
borders, `make status` and `make shell`'s prompt). A domain that declares none gets one that
keeps domains apart and never changes when another domain is added: black for the admin
domain, else :data:`CYCLE` by its own subnet_id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from anklume import checks
from anklume.model import Infra

# QubesOS's labels and the colours it draws them with (the Tango palette).
LABELS: dict[str, str] = {
    "red": "#cc0000", "orange": "#f57900", "yellow": "#edd400", "green": "#73d216",
    "gray": "#555753", "blue": "#3465a4", "purple": "#75507b", "black": "#000000",
}
# The admin domain's default: the one that reaches every other domain stands out.
ADMIN = "black"
# Every other domain's default, by subnet_id modulo 7: subnet_ids 1 to 7 all differ, black
# stays the admin domain's, and the shipped perso (1) and pro (2) get QubesOS's personal
# yellow and work blue.
CYCLE = ("gray", "yellow", "blue", "green", "orange", "purple", "red")
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
LABEL_FIX = f"use a QubesOS label ({', '.join(LABELS)}) or a quoted hex colour like \"#3465a4\""


def problem(value: str) -> tuple[str, str] | None:
    """What is wrong with VALUE as a colour and how to fix it, or None (then :func:`normal`
    gives its spelling)."""
    if value in LABELS or _HEX.fullmatch(value):
        return None
    if value.startswith("#"):
        return f"{value!r} is not a hex colour", 'write # and 6 hex digits, e.g. "#3465a4"'
    guess = checks.did_you_mean(value, LABELS)
    hint = f"did you mean '{guess}'? " if guess else ""
    return f"{value!r} is not a colour", hint + LABEL_FIX


def normal(value: str) -> str:
    """A valid colour as it is kept: the label, or the hex in lowercase."""
    return value if value in LABELS else value.lower()


def default(subnet_id: int, admin: bool) -> str:
    """The colour of a domain that declares none."""
    return ADMIN if admin else CYCLE[subnet_id % len(CYCLE)]


def hex_of(color: str) -> str:
    """``#rrggbb`` (lowercase) of a label or a hex colour."""
    if color in LABELS:
        return LABELS[color]
    if not _HEX.fullmatch(color):
        raise ValueError(f"{color!r} is not a colour")
    return color.lower()


def tint(color: str, white: float = 0.85) -> str:
    """COLOR mixed with WHITE parts of white: a background the colour's text still reads on."""
    rgb = [int(hex_of(color)[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * white):02x}" for c in rgb)


def _rgb(color: str) -> tuple[int, int, int]:
    value = hex_of(color)
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def ansi_codes(color: str) -> str:
    """The SGR parameters of a domain's label in a terminal: COLOR as the background (24-bit)
    and black or white text, whichever reads on it (black and yellow domains both show on a
    dark or a light terminal)."""
    red, green, blue = _rgb(color)
    text = "0;0;0" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "255;255;255"
    return f"48;2;{red};{green};{blue};38;2;{text}"


def ansi(color: str, text: str) -> str:
    """TEXT as a label in COLOR for a terminal (`make status`)."""
    return f"\x1b[{ansi_codes(color)}m{text}\x1b[0m"


def wanted(is_tty: bool, env: Mapping[str, str]) -> bool:
    """Whether to colour: a terminal, NO_COLOR unset or empty (no-color.org), TERM not dumb."""
    return is_tty and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def prompt(domain: str, color: str | None) -> str:
    """The `[domain] ` a bash prompt starts with (`make shell`), in COLOR unless None; the
    escapes inside \\[ \\] so that bash counts the prompt's width right."""
    if color is None:
        return f"[{domain}] "
    return f"\\[\\e[{ansi_codes(color)}m\\][{domain}]\\[\\e[0m\\] "


def fill_defaults(infra: Infra) -> None:
    """Give each domain that declares no colour its default (after the admin domain is
    known)."""
    for d in infra.domains:
        if not d.color:
            d.color = default(d.subnet_id, d.name == infra.admin_domain)
