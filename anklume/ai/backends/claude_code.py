"""``claude-code``: the Claude Code CLI in print mode (``claude -p``), prompt on stdin.

It runs in a throwaway copy. Dry run: its tools are limited to reading (Read, Grep,
Glob) and it answers with a diff. Otherwise it may also edit the copy; its edits come
back as a diff. Never a shell or the network: those tools are always denied.
"""

from __future__ import annotations

from anklume.ai.backends.base import Request
from anklume.ai.backends.workcopy import changes, reply_with_changes, run_tool, work_copy

READ_TOOLS = "Read,Grep,Glob"
EDIT_TOOLS = "Read,Grep,Glob,Edit,MultiEdit,Write"
DENIED_TOOLS = "Bash,WebFetch,WebSearch,NotebookEdit"


class ClaudeCodeBackend:
    """``claude -p`` with its tools chosen by dry_run."""

    name = "claude-code"

    def __init__(self, model: str) -> None:
        self.model = model

    def argv(self, dry_run: bool) -> list[str]:
        """The command line (the prompt goes on stdin)."""
        argv = ["claude", "-p", "--output-format", "text"]
        if dry_run:
            argv += ["--allowedTools", READ_TOOLS,
                     "--disallowedTools", f"Edit,MultiEdit,Write,{DENIED_TOOLS}"]
        else:
            argv += ["--allowedTools", EDIT_TOOLS, "--disallowedTools", DENIED_TOOLS,
                     "--permission-mode", "acceptEdits"]
        if self.model:
            argv += ["--model", self.model]
        return argv

    def propose(self, request: Request) -> str:
        with work_copy(request.repo, request.env) as copy:
            output = run_tool(self.argv(request.dry_run), copy, request.env,
                              request.timeout, stdin=request.prompt)
            return reply_with_changes(changes(copy, request.env), output)
