"""``local``: Ollama's HTTP API, ``POST /api/generate`` without streaming."""

from __future__ import annotations

from anklume.ai.backends.base import Request
from anklume.ai.backends.httpjson import field, post_json


class OllamaBackend:
    """A model served by Ollama (default: the homelab LLM instance)."""

    name = "local"

    def __init__(self, url: str, model: str) -> None:
        self.url = url.rstrip("/") + "/api/generate"
        self.model = model

    def propose(self, request: Request) -> str:
        body = {"model": self.model, "prompt": request.prompt, "stream": False,
                "options": {"temperature": 0}}
        return field(post_json(self.url, {}, body, request.timeout), "response")
