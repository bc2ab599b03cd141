"""Secrets never leave the process: every text logged, printed or sent is redacted first.

Secrets come from the environment only (ADR-061). Any variable whose name says it holds
a secret is masked wherever its value appears, so a key echoed by a failing test cannot
reach the session log, the terminal or the backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Names such as ANTHROPIC_API_KEY, OPENAI_API_KEY, GH_TOKEN, DB_PASSWORD.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
# Shorter values (a flag like "1") would mask ordinary text and protect nothing.
_MIN_LENGTH = 6


class Redactor:
    """Replace the value of every secret environment variable by ``[redacted:NAME]``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        found = [(name, value) for name, value in env.items()
                 if _SECRET_NAME.search(name) and len(value) >= _MIN_LENGTH]
        # Longest first: a secret that contains another is masked whole.
        self._secrets = sorted(found, key=lambda item: len(item[1]), reverse=True)

    def __call__(self, text: str) -> str:
        for name, value in self._secrets:
            text = text.replace(value, f"[redacted:{name}]")
        return text
