"""``aider``: ``aider --message`` on a throwaway copy, no auto-commits; its edits are the diff.

Models are named the Aider way: ``ollama_chat/<model>`` for Ollama (reached at
``ollama_url`` through OLLAMA_API_BASE), or any model Aider knows (``ai.aider_model``).
"""

from __future__ import annotations

from anklume.ai.backends.base import Request
from anklume.ai.backends.workcopy import changes, reply_with_changes, run_tool, work_copy


class AiderBackend:
    """Aider editing the files involved, answering once and exiting."""

    name = "aider"

    def __init__(self, model: str, ollama_url: str) -> None:
        self.model = model
        self.ollama_url = ollama_url

    def argv(self, prompt: str, files: tuple[str, ...]) -> list[str]:
        """The command line: one message, no commits, no prompts, no .gitignore edit."""
        return ["aider", "--model", self.model, "--message", prompt, "--no-auto-commits",
                "--yes-always", "--no-gitignore", "--no-check-update", "--no-analytics",
                "--no-pretty", "--no-stream", *files]

    def propose(self, request: Request) -> str:
        env = dict(request.env)
        if self.model.startswith("ollama"):
            env["OLLAMA_API_BASE"] = self.ollama_url
        with work_copy(request.repo, env) as copy:
            output = run_tool(self.argv(request.prompt, request.files), copy, env,
                              request.timeout)
            return reply_with_changes(changes(copy, env), output)
