"""``remote``: the Anthropic Messages API or the OpenAI chat-completions API.

The key comes from the environment of the request (ANTHROPIC_API_KEY, OPENAI_API_KEY);
it only ever travels in a request header.
"""

from __future__ import annotations

from anklume.ai.backends.base import Request
from anklume.ai.backends.httpjson import field, post_json

ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
OPENAI_URL = "https://api.openai.com"
MAX_TOKENS = 8192


class AnthropicBackend:
    """Claude through ``POST /v1/messages``."""

    name = "remote"

    def __init__(self, url: str, model: str) -> None:
        self.url = (url or ANTHROPIC_URL).rstrip("/") + "/v1/messages"
        self.model = model

    def propose(self, request: Request) -> str:
        headers = {"x-api-key": request.env.get("ANTHROPIC_API_KEY", ""),
                   "anthropic-version": ANTHROPIC_VERSION}
        body = {"model": self.model, "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": request.prompt}]}
        return field(post_json(self.url, headers, body, request.timeout), "content", 0, "text")


class OpenAIBackend:
    """An OpenAI model through ``POST /v1/chat/completions``."""

    name = "remote"

    def __init__(self, url: str, model: str) -> None:
        self.url = (url or OPENAI_URL).rstrip("/") + "/v1/chat/completions"
        self.model = model

    def propose(self, request: Request) -> str:
        headers = {"authorization": f"Bearer {request.env.get('OPENAI_API_KEY', '')}"}
        body = {"model": self.model,
                "messages": [{"role": "user", "content": request.prompt}]}
        answer = post_json(self.url, headers, body, request.timeout)
        return field(answer, "choices", 0, "message", "content")
