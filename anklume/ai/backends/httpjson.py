"""POST a JSON body and read a JSON answer with the standard library (no new dependency)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from anklume.ai.backends.base import BackendError


def post_json(url: str, headers: Mapping[str, str], body: Mapping[str, Any],
              timeout: int) -> Any:
    """The decoded answer; BackendError naming the URL (never a header: keys live there)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        raise BackendError(f"{url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BackendError(f"cannot reach {url}: {reason}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise BackendError(f"{url} answered something that is not JSON", fatal=False) from None


def field(answer: Any, *path: str | int) -> str:
    """``answer[path...]`` as text, or a non-fatal BackendError (an unusable reply)."""
    value = answer
    try:
        for step in path:
            value = value[step]
    except (KeyError, IndexError, TypeError):
        where = "".join(f"[{step!r}]" for step in path)
        raise BackendError(f"the answer has no {where}", fatal=False) from None
    if not isinstance(value, str):
        raise BackendError("the answer's text is not a string", fatal=False)
    return value
