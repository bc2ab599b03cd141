"""The backends, one interface (:class:`~anklume.ai.backends.base.Backend`), chosen by mode."""

from __future__ import annotations

from anklume.ai.backends.aider import AiderBackend
from anklume.ai.backends.base import Backend
from anklume.ai.backends.claude_code import ClaudeCodeBackend
from anklume.ai.backends.ollama import OllamaBackend
from anklume.ai.backends.remote import AnthropicBackend, OpenAIBackend
from anklume.ai.config import AiConfig


def for_config(cfg: AiConfig) -> Backend:
    """The backend of ``cfg.mode`` (never called for mode none)."""
    if cfg.mode == "local":
        return OllamaBackend(cfg.ollama_url, cfg.model)
    if cfg.mode == "remote":
        if cfg.remote_provider == "openai":
            return OpenAIBackend(cfg.remote_url, cfg.model)
        return AnthropicBackend(cfg.remote_url, cfg.model)
    if cfg.mode == "claude-code":
        return ClaudeCodeBackend(cfg.model)
    if cfg.mode == "aider":
        return AiderBackend(cfg.model, cfg.ollama_url)
    raise ValueError(f"no backend for mode {cfg.mode!r}")
