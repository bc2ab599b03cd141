"""Command line: ``python -m anklume.ai test [--role R]`` and ``... develop --task T``.

Like anklume/cli.py: bad input is one line (what, where, how to fix) and exit 2, checked
before anything runs or is written; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TextIO

from anklume.ai import backends, config, context, gitops, testrun
from anklume.ai.loop import EXIT_NOT_FIXED, Job, Loop
from anklume.ai.redact import Redactor
from anklume.ai.session import SessionLog, slugify
from anklume.errors import InputError, Problem, guarded

_FAILED_TEST = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anklume.ai",
                                description="LLM-assisted test and development loop.")
    p.add_argument("--repo", default="", help="the git repository (default: the current one)")
    sub = p.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test", help="run the tests; on failure ask the backend for a fix")
    test.add_argument("--role", default="", help="the role whose Molecule scenario to run")
    develop = sub.add_parser("develop", help="implement a task through the backend")
    develop.add_argument("--task", default="", help="what to implement")
    develop.add_argument("--role", default="", help="test that role's scenario")
    return p


def _bad(where: str, what: str, fix: str) -> InputError:
    return InputError([Problem(where, None, "", what, fix)])


def _repo(given: str, env: Mapping[str, str]) -> str:
    try:
        return gitops.toplevel(given or os.getcwd(), env)
    except (gitops.GitError, OSError):
        raise _bad(given or os.getcwd(), "not inside a git repository",
                   "run from the AnKLuMe checkout") from None


def _check_applicable(repo: str, env: Mapping[str, str]) -> None:
    """dry_run false changes branches: only from a branch with no uncommitted change."""
    if not gitops.current_branch(repo, env):
        raise _bad(repo, "HEAD is detached and dry_run is false", "check out a branch first")
    if gitops.tracked_changes(repo, env):
        raise _bad(repo, "uncommitted changes to tracked files and dry_run is false",
                   "commit or stash them first, so a fix commit holds only the fix")


def _session_root(repo: str, cfg: config.AiConfig) -> str:
    return cfg.session_dir if os.path.isabs(cfg.session_dir) \
        else os.path.join(repo, cfg.session_dir)


def run(argv: Sequence[str] | None, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """Do the work; raise AnklumeError for anything the user must fix."""
    args = _parser().parse_args(argv)
    repo = _repo(args.repo, env)
    cfg = config.load(repo, env)
    command = testrun.resolve(repo, args.role, cfg.test_command, cfg.sandbox)
    verb = f"ai-{args.command}"
    if cfg.mode == "none":
        if args.command == "test":
            return testrun.run_plain(command, repo, env)  # exactly the standard tests
        raise _bad("AI_MODE", "ai-develop needs a backend",
                   "set AI_MODE=local, remote, claude-code or aider")
    if args.command == "develop" and not args.task.strip():
        raise _bad("TASK", "ai-develop needs a task", 'give TASK="what to implement"')
    if not cfg.dry_run:
        _check_applicable(repo, env)
    backend = backends.for_config(cfg)
    redact = Redactor(env)
    log = ""
    if args.command == "test":
        print(f"{verb}: running {command.label}", file=out, flush=True)
        status, log = testrun.run_captured(command, repo, env, redact)
        if status == 0:
            print(f"{verb}: the tests pass; nothing to fix", file=out)
            return 0
        failed = _FAILED_TEST.search(log)
        slug = slugify(args.role or (failed.group(1) if failed else "tests"))
    else:
        slug = slugify(args.task)
    session = SessionLog(_session_root(repo, cfg), slug, redact)
    session.write("settings.txt", f"{verb}\nrepository: {repo}\ntest command: "
                  f"{command.label}\n{cfg.describe()}")
    guide = cfg.guide
    # The files the test command and the role name are always worth showing.
    named = [*context.role_files(repo, args.role), *re.findall(r"\S+", command.label)]
    if args.command == "test":
        session.write("test-0.log", log)
        job = Job(verb, f"fix/{slug}", f"Fix {slug} (make ai-test)",
                  files=partial(context.files_involved, repo, extra=named),
                  prompt=lambda files, log, history: context.fix_prompt(
                      repo, guide, command.label, log, files, history),
                  dry_run_status=EXIT_NOT_FIXED)
        print(f"{verb}: the tests fail (exit {status}); session log: {session.path}", file=out)
    else:
        task = args.task.strip()
        session.write("task.txt", task + "\n")
        job = Job(verb, f"feat/{slug}", task.splitlines()[0][:72],
                  files=lambda log: context.files_involved(repo, log + "\n" + task, named),
                  prompt=lambda files, log, history: context.develop_prompt(
                      repo, guide, task, command.label, files, history),
                  dry_run_status=0)
    return Loop(repo, cfg, env, backend, command, session, redact, out).run(job, log)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point: 0 fixed or passing, 1 not fixed, 2 bad input; never a traceback."""
    return guarded(lambda: run(argv, os.environ if env is None else env, sys.stdout, sys.stderr),
                   "check `git status` and `git branch` before going on")
