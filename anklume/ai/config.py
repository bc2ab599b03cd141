"""The loop's settings: defaults, then ``anklume.conf.yml`` (key ``ai:``), then the environment.

Every key ``k`` of ``ai:`` can be overridden by ``ANKLUME_AI_<K>`` and, above it,
``AI_<K>`` (what ``make ai-test AI_MODE=local`` passes). Secrets are never settings: API
keys are read from the environment by the backend that needs them, and a key written in
the file is refused. Every problem is one :class:`~anklume.errors.Problem` (exit 2),
raised before anything runs or is written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from anklume import yamlload
from anklume.errors import InputError, Problem

CONFIG_FILE = "anklume.conf.yml"
MODES = ("none", "local", "remote", "claude-code", "aider")
PROVIDERS = ("anthropic", "openai")
SANDBOXES = ("none", "runner")
# Each provider's key variable: read from the environment only.
KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class AiConfig:
    """Effective settings of one session (no secret in here: it is logged)."""

    mode: str = "none"
    ollama_url: str = "http://homelab-llm:11434"
    ollama_model: str = "qwen2.5-coder:32b"
    remote_provider: str = "anthropic"
    remote_model: str = ""
    remote_url: str = ""
    claude_model: str = ""
    aider_model: str = ""
    max_retries: int = 3
    auto_pr: bool = False
    dry_run: bool = True
    git_remote: str = "origin"
    guide: str = "CONTRIBUTING.md"
    test_command: str = ""
    session_dir: str = ".ai-sessions"
    timeout: int = 600
    sandbox: str = "none"

    def describe(self) -> str:
        """One ``key: value`` line per setting, for the session log."""
        return "".join(f"{f.name}: {getattr(self, f.name)}\n" for f in fields(self))

    @property
    def model(self) -> str:
        """The model the chosen backend asks for."""
        if self.mode == "remote":
            defaults = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o"}
            return self.remote_model or defaults[self.remote_provider]
        if self.mode == "aider":
            return self.aider_model or f"ollama_chat/{self.ollama_model}"
        if self.mode == "claude-code":
            return self.claude_model
        return self.ollama_model


_KEYS = {f.name: f for f in fields(AiConfig)}
# Written as in the roadmap's sample; accepted only empty, to say where keys belong.
_SECRET_KEYS = {"anthropic_api_key": "ANTHROPIC_API_KEY", "openai_api_key": "OPENAI_API_KEY"}


def _problem(where: str, line: int | None, path: str, what: str, fix: str) -> InputError:
    return InputError([Problem(where, line, path, what, fix)])


def _convert(name: str, value: Any, where: str, line: int | None, path: str) -> Any:
    """Turn a file or environment value into the field's type, or say what is wrong."""
    kind = _KEYS[name].type
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _problem(where, line, path, f"{value!r} is not a boolean", "write true or false")
    if kind in (int, "int"):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise _problem(where, line, path, f"{value!r} is not a whole number of at least 1",
                       "write a number such as 3")
    if isinstance(value, str):
        return value
    raise _problem(where, line, path, f"{value!r} is not a string", "quote the value")


def _from_file(repo: str, env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("ANKLUME_AI_CONFIG") or os.path.join(repo, CONFIG_FILE)
    display = os.path.relpath(path, repo) if os.path.isabs(path) else path
    if not os.path.exists(path):
        return {}
    doc = yamlload.load_text(yamlload.read_text(path, display), display)
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise _problem(display, doc.line(()), "", "is not a mapping",
                       "write `ai:` followed by its keys (see docs/ai-testing.md)")
    section = doc.data.get("ai")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise _problem(display, doc.line(("ai",)), "ai", "is not a mapping",
                       "indent the settings under `ai:` (see docs/ai-testing.md)")
    values: dict[str, Any] = {}
    for key, value in section.items():
        line = doc.line(("ai", key))
        if key in _SECRET_KEYS:
            if value:
                raise _problem(display, line, f"ai.{key}", "secrets are never read from a file",
                               f"delete it and export {_SECRET_KEYS[key]} instead")
            continue
        if key not in _KEYS:
            raise _problem(display, line, f"ai.{key}", "unknown setting",
                           "see docs/ai-testing.md for the keys of `ai:`")
        values[key] = _convert(key, value, display, line, f"ai.{key}")
    return values


# Short make variables for the keys typed most.
_ALIASES = {"test_command": ("AI_TEST_CMD",)}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in _KEYS:
        # AI_<KEY> (a make variable) wins over ANKLUME_AI_<KEY> (a shell export).
        names = (f"ANKLUME_AI_{key.upper()}", f"AI_{key.upper()}", *_ALIASES.get(key, ()))
        for var in names:
            raw = env.get(var)
            if raw is not None and raw != "":
                values[key] = _convert(key, raw, "environment", None, var)
    return values


def _check(cfg: AiConfig, env: Mapping[str, str]) -> None:
    if cfg.mode not in MODES:
        raise _problem("settings", None, "ai.mode", f"unknown mode {cfg.mode!r}",
                       f"use one of {', '.join(MODES)} (AI_MODE= or anklume.conf.yml)")
    if cfg.remote_provider not in PROVIDERS:
        raise _problem("settings", None, "ai.remote_provider",
                       f"unknown provider {cfg.remote_provider!r}",
                       f"use one of {', '.join(PROVIDERS)}")
    if cfg.sandbox not in SANDBOXES:
        raise _problem("settings", None, "ai.sandbox", f"unknown sandbox {cfg.sandbox!r}",
                       "use none or runner (AI_SANDBOX=)")
    if cfg.sandbox == "runner" and cfg.test_command:
        raise _problem("AI_SANDBOX=runner", None, "",
                       "AI_TEST_CMD runs on this machine, the runner runs make test-sandboxed",
                       "unset AI_TEST_CMD or AI_SANDBOX")
    if cfg.mode == "remote":
        var = KEY_VARIABLES[cfg.remote_provider]
        if not env.get(var):
            raise _problem("environment", None, var,
                           f"AI_MODE=remote with provider {cfg.remote_provider} needs an API key",
                           f"export {var}=... (never in anklume.conf.yml)")
    tools = {"claude-code": ("claude", "install Claude Code: npm install -g "
                             "@anthropic-ai/claude-code"),
             "aider": ("aider", "install Aider: python3 -m pip install aider-install "
                       "&& aider-install")}
    needed = [tools[cfg.mode]] if cfg.mode in tools else []
    if cfg.auto_pr and not cfg.dry_run:
        needed.append(("gh", "install the GitHub CLI (apt install gh) and run gh auth login"))
    for program, fix in needed:
        if shutil.which(program, path=env.get("PATH")) is None:
            raise _problem("PATH", None, "", f"`{program}` is not installed", fix)


def load(repo: str, env: Mapping[str, str]) -> AiConfig:
    """Defaults, then the file, then the environment; checked as a whole."""
    values = _from_file(repo, env)
    values.update(_from_env(env))
    cfg = replace(AiConfig(), **values)
    _check(cfg, env)
    return cfg
