"""The tries: ask the backend, check its patch, then either show it (dry run) or apply
it on a branch, re-run the tests and keep it only if they pass.

A failed try (no usable patch, a patch the tests still fail with) is reverted and told
to the next prompt; after ``max_retries`` tries the loop reports and stops. Every step
is written to the session log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from anklume.ai import context, github, gitops, patch, testrun
from anklume.ai.backends.base import Backend, BackendError, Request
from anklume.ai.config import AiConfig
from anklume.ai.session import SessionLog

EXIT_FIXED = 0
EXIT_NOT_FIXED = 1


@dataclass(frozen=True)
class Job:
    """What one session asks for: a fix of failing tests or a task."""

    verb: str  # "ai-test" or "ai-develop", for messages
    branch: str  # fix/<slug> or feat/<slug>
    title: str  # the commit's subject line
    files: Callable[[str], list[str]]  # failing log -> files to show
    prompt: Callable[[Sequence[str], str, str], str]  # files, log, history -> prompt
    dry_run_status: int  # exit status once a patch is proposed in dry run


class Loop:
    """One session's tries, against one backend, in one repository."""

    def __init__(self, repo: str, cfg: AiConfig, env: Mapping[str, str], backend: Backend,
                 command: testrun.TestCommand, session: SessionLog,
                 redact: Callable[[str], str], out: TextIO) -> None:
        self.repo, self.cfg, self.env, self.backend = repo, cfg, env, backend
        self.command, self.session, self.redact, self.out = command, session, redact, out
        self.lines: list[str] = []  # the report

    def say(self, line: str) -> None:
        """Print a line (redacted), keep it for the report, log it as a decision."""
        line = self.redact(line)
        print(line, file=self.out, flush=True)
        self.lines.append(line)
        self.session.decide(line)

    def finish(self, status: int) -> int:
        """Write report.txt and return the exit status."""
        self.lines.append(f"exit status: {status}; session log: {self.session.path}")
        print(f"session log: {self.session.path}", file=self.out, flush=True)
        self.session.write("report.txt", "\n".join(self.lines) + "\n")
        return status

    def run(self, job: Job, failing_log: str) -> int:
        """The session's exit status; a git failure midway is reported, not raised."""
        try:
            return self._tries(job, failing_log)
        except (gitops.GitError, patch.PatchRejected) as exc:
            self.say(f"{job.verb}: FAILED: {exc}; check `git status` before going on")
            return self.finish(EXIT_NOT_FIXED)

    def _tries(self, job: Job, failing_log: str) -> int:
        """Up to max_retries tries."""
        history, log, branch = "", failing_log, ""
        base = gitops.current_branch(self.repo, self.env)
        tries = self.cfg.max_retries
        for attempt in range(1, tries + 1):
            files = job.files(log)
            prompt = self.redact(job.prompt(files, log, history))
            self.session.write(f"prompt-{attempt}.txt", prompt)
            self.say(f"{job.verb}: try {attempt} of {tries}: asking {self.backend.name} "
                     f"({self.cfg.model or 'its default model'})")
            try:
                reply = self.backend.propose(Request(prompt, self.repo, tuple(files),
                                                     self.cfg.dry_run, self.env,
                                                     self.cfg.timeout))
            except BackendError as exc:
                self.say(f"{job.verb}: try {attempt}: no reply: {exc}")
                if exc.fatal:
                    return self.give_up(job, branch, base, "the backend cannot answer")
                history += context.history_note(attempt, f"no reply ({exc})", "", "")
                continue
            self.session.write(f"reply-{attempt}.txt", reply)
            try:
                proposed = patch.check(self.repo, reply, self.env)
            except patch.PatchRejected as exc:
                self.say(f"{job.verb}: try {attempt}: patch rejected: {exc}")
                history += context.history_note(attempt, f"patch rejected: {exc}", "", "")
                continue
            self.session.write(f"patch-{attempt}.diff", proposed.text)
            self.say(f"{job.verb}: try {attempt}: patch accepted by the checks "
                     f"({', '.join(proposed.paths)})")
            if self.cfg.dry_run:
                self.out.write(self.redact(proposed.text))
                self.say(f"{job.verb}: dry run: the patch above is proposed, nothing was "
                         "changed (dry_run: false in anklume.conf.yml applies it)")
                return self.finish(job.dry_run_status)
            if not branch:
                branch = gitops.free_branch(self.repo, job.branch, self.env)
                gitops.create_branch(self.repo, branch, self.env)
                self.say(f"{job.verb}: on new branch {branch}")
            patch.apply(self.repo, proposed, self.env)
            self.say(f"{job.verb}: try {attempt}: applied; running {self.command.label}")
            status, log = testrun.run_captured(self.command, self.repo, self.env, self.redact)
            self.session.write(f"test-{attempt}.log", log)
            if status == 0:
                return self.keep(job, attempt, branch, base, proposed)
            self.say(f"{job.verb}: try {attempt}: the tests still fail (exit {status}); "
                     "patch reverted")
            patch.revert(self.repo, proposed, self.env)
            history += context.history_note(attempt, f"the tests still fail (exit {status})",
                                            proposed.text, log)
        return self.give_up(job, branch, base, f"max_retries ({tries}) reached")

    def give_up(self, job: Job, branch: str, base: str, why: str) -> int:
        """Leave the tree as it was (back on ``base``, the empty branch deleted) and report."""
        if branch:
            gitops.leave_branch(self.repo, base, branch, self.env)
            self.say(f"{job.verb}: back on {base}; branch {branch} deleted (it held nothing)")
        self.say(f"{job.verb}: FAILED: {why}; no change was kept")
        return self.finish(EXIT_NOT_FIXED)

    def keep(self, job: Job, attempt: int, branch: str, base: str,
             proposed: patch.Patch) -> int:
        """Commit the patch the tests pass with; push and open a PR when auto_pr."""
        body = (f"Proposed by {self.backend.name} ({self.cfg.model or 'default model'}) "
                f"through make {job.verb}, try {attempt}; {self.command.label} passes with it.\n"
                f"Session log: {os.path.relpath(self.session.path, self.repo)}\n")
        sha = gitops.commit(self.repo, proposed.paths, f"{job.title}\n\n{body}", self.env)
        self.say(f"{job.verb}: the tests pass; committed {sha[:12]} on {branch}")
        if self.cfg.auto_pr:
            try:
                gitops.push(self.repo, self.cfg.git_remote, branch, self.env)
                self.say(f"{job.verb}: pushed {branch} to {self.cfg.git_remote}")
                if github.ensure_label(self.repo, self.env):
                    self.say(f"{job.verb}: created the label {github.LABEL}")
                url = github.open_pr(self.repo, base, branch, job.title, body, self.env)
                self.say(f"{job.verb}: pull request opened: {url}")
            except (gitops.GitError, github.GhError) as exc:
                self.say(f"{job.verb}: FAILED to open the pull request: {exc} "
                         f"(the commit stays on {branch})")
                return self.finish(EXIT_NOT_FIXED)
        return self.finish(EXIT_FIXED)
