"""Scratch repositories, tree hashes and stand-ins for the tests of anklume/ai.

The real backends (Ollama, the Anthropic and OpenAI APIs, the claude, aider and gh
CLIs) cannot be reached from the test machine: each is replaced here by a loopback HTTP
server or an executable on PATH that records what it was sent. Git, the patch checks
and the test runs are real.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SECRET_ANTHROPIC = "sk-ant-test-0123456789abcdef"
SECRET_OPENAI = "sk-openai-test-fedcba9876543210"

GREETING_TASKS = """\
---
- name: Compose the greeting
  ansible.builtin.set_fact:
    greeting_line: "{{ greeting_word }}, {{ greeting_name }}"
"""
GREETING_PLAYBOOK = """\
---
- name: Test the greeting role
  hosts: localhost
  gather_facts: false
  vars:
    greeting_name: world
  roles:
    - greeting
  post_tasks:
    - name: The greeting is right
      ansible.builtin.assert:
        that: greeting_line == 'Hello, world'
"""
# The role's test: a real ansible-playbook run on localhost (connection local, no Incus).
ROLE_TEST = (f"ANSIBLE_ROLES_PATH=roles {VENV_BIN}/ansible-playbook -i localhost, "
             "-c local tests/greeting.yml")

CALC_TEST = """\
from calc import add

assert add(2, 3) == 5, "add(2, 3) must be 5"
print("calc: ok")
"""
# The module's test: a plain Python script, the fastest real test there is.
MODULE_TEST = f"{sys.executable} -B test_calc.py"


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its stdout (fails the test on error)."""
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


def _commit_all(repo: Path) -> None:
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.name", "Test Author")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "config", "commit.gpgsign", "false")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "initial")


def role_repo(root: Path) -> Path:
    """A repository holding a copy of a small role whose default has a typo (Helo)."""
    repo = root / "role-repo"
    (repo / "roles/greeting/tasks").mkdir(parents=True)
    (repo / "roles/greeting/defaults").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "roles/greeting/tasks/main.yml").write_text(GREETING_TASKS)
    (repo / "roles/greeting/defaults/main.yml").write_text("---\ngreeting_word: Helo\n")
    (repo / "tests/greeting.yml").write_text(GREETING_PLAYBOOK)
    (repo / "CONTRIBUTING.md").write_text("# Contributing\nKeep changes minimal.\n")
    _commit_all(repo)
    return repo


def module_repo(root: Path) -> Path:
    """A repository holding a small module whose add() subtracts, and its test."""
    repo = root / "module-repo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text(CALC_TEST)
    (repo / "CONTRIBUTING.md").write_text("# Contributing\nKeep changes minimal.\n")
    _commit_all(repo)
    return repo


def diff_of(repo: Path, rel: str, old: str, new: str) -> str:
    """The real git diff of replacing ``old`` by ``new`` in ``rel`` (tree left as it was)."""
    path = repo / rel
    before = path.read_text()
    path.write_text(before.replace(old, new))
    try:
        return git(repo, "diff", "--", rel)
    finally:
        path.write_text(before)


def role_fix(repo: Path) -> str:
    return diff_of(repo, "roles/greeting/defaults/main.yml", "Helo", "Hello")


def module_fix(repo: Path) -> str:
    return diff_of(repo, "calc.py", "a - b", "a + b")


def tree_hashes(repo: Path) -> dict[str, str]:
    """sha256 of every file of the working tree (git's own metadata aside)."""
    found = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel == ".git" or rel.startswith(".git/") or path.is_dir():
            continue
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def git_state(repo: Path) -> tuple[str, str, str]:
    """HEAD, the branch list and the status: what a dry run must leave as they were."""
    return (git(repo, "rev-parse", "HEAD"), git(repo, "branch", "--list"),
            git(repo, "status", "--porcelain", "--untracked-files=all"))


def session_files(root: Path) -> dict[str, str]:
    """Every file of every session under ``root``: relative path -> text."""
    return {p.relative_to(root).as_posix(): p.read_text(errors="replace")
            for p in sorted(root.rglob("*")) if p.is_file()}


def base_env(tmp: Path, mode: str, test_command: str) -> dict[str, str]:
    """The environment of a run: no inherited AI setting, sessions outside the tree."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AI_", "ANKLUME_AI_")) and k not in {"ROLE", "TASK"}}
    env.update({"AI_MODE": mode, "AI_TEST_CMD": test_command,
                "ANKLUME_AI_SESSION_DIR": str(tmp / "sessions"),
                "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
                "PYTHONDONTWRITEBYTECODE": "1"})
    return env


# --- loopback stand-ins for the HTTP APIs ------------------------------------------------

def _answer(kind: str, text: str) -> dict[str, Any]:
    if kind == "ollama":
        return {"model": "m", "response": text, "done": True}
    if kind == "anthropic":
        return {"type": "message", "role": "assistant",
                "content": [{"type": "text", "text": text}]}
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


class ApiStandIn:
    """Stands in for Ollama, the Anthropic API or the OpenAI API (unreachable from the
    tests) on 127.0.0.1: records every request and answers with the next reply."""

    def __init__(self, kind: str, replies: list[str]) -> None:
        self.kind = kind
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                stand_in.requests.append({"path": self.path, "body": body,
                                          "headers": {k.lower(): v
                                                      for k, v in self.headers.items()}})
                text = stand_in.replies[min(len(stand_in.requests), len(stand_in.replies)) - 1]
                data = json.dumps(_answer(stand_in.kind, text)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads self.requests instead."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ApiStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def api_env(stand_in: ApiStandIn) -> dict[str, str]:
    """Settings that point a backend at the loopback stand-in, keys included."""
    if stand_in.kind == "ollama":
        return {"ANKLUME_AI_OLLAMA_URL": stand_in.url, "ANKLUME_AI_OLLAMA_MODEL": "tiny-coder"}
    if stand_in.kind == "anthropic":
        return {"ANKLUME_AI_REMOTE_URL": stand_in.url, "ANTHROPIC_API_KEY": SECRET_ANTHROPIC}
    return {"ANKLUME_AI_REMOTE_URL": stand_in.url, "ANKLUME_AI_REMOTE_PROVIDER": "openai",
            "OPENAI_API_KEY": SECRET_OPENAI}


# --- stand-in executables on PATH ---------------------------------------------------------

_RECORD = '''
import json, os, sys
with open(os.environ["STANDIN_LOG"], "a") as fh:
    fh.write(json.dumps({{"tool": "{name}", "argv": sys.argv[1:], "cwd": os.getcwd(),
                         "stdin": {stdin}}}) + "\\n")
'''

_CLAUDE = '''"""Stands in for the Claude Code CLI, which cannot be reached from the tests:
records its arguments and prompt (stdin), then prints the reply the test prepared."""
''' + _RECORD.format(name="claude", stdin="sys.stdin.read()") + '''
print(open(os.environ["STANDIN_REPLY"]).read())
'''

_AIDER = '''"""Stands in for the Aider CLI, which cannot be reached from the tests: records its
arguments, then edits the tree it runs in with the fix the test prepared, as Aider would."""
import subprocess
''' + _RECORD.format(name="aider", stdin="None") + '''
subprocess.run(["git", "apply", os.environ["STANDIN_PATCH"]], check=True)
print("Applied edit to the files")
'''

_GH = '''"""Stands in for the GitHub CLI, which cannot be reached from the tests: records its
arguments and keeps the repository's labels in a file."""
''' + _RECORD.format(name="gh", stdin="None") + '''
state = os.environ["STANDIN_GH_LABELS"]
labels = json.load(open(state)) if os.path.exists(state) else ["bug"]
args = sys.argv[1:]
if args[:2] == ["label", "list"]:
    print(json.dumps([{"name": n} for n in labels]))
elif args[:2] == ["label", "create"]:
    if args[2] in labels:
        sys.exit("label already exists")
    json.dump(labels + [args[2]], open(state, "w"))
elif args[:2] == ["pr", "create"]:
    print("https://github.invalid/example/pull/7")
else:
    sys.exit("unexpected gh call")
'''

_MAKE = '''"""Stands in for make (the real `make test` needs Incus): records its arguments and
exits with STANDIN_MAKE_STATUS."""
''' + _RECORD.format(name="make", stdin="None") + '''
print("make stand-in: running", " ".join(sys.argv[1:]))
sys.exit(int(os.environ.get("STANDIN_MAKE_STATUS", "0")))
'''

STAND_INS = {"claude": _CLAUDE, "aider": _AIDER, "gh": _GH, "make": _MAKE}


def install_stand_ins(tmp: Path, env: dict[str, str], names: tuple[str, ...]) -> Path:
    """Write the named stand-ins into tmp/bin, first on PATH; returns the call log."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{STAND_INS[name]}")
        path.chmod(0o755)
    log = tmp / "stand-in-calls.jsonl"
    env.update({"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "STANDIN_LOG": str(log), "STANDIN_GH_LABELS": str(tmp / "gh-labels.json")})
    return log


def calls(log: Path, tool: str) -> list[dict[str, Any]]:
    """The recorded calls of one stand-in."""
    if not log.exists():
        return []
    return [c for c in map(json.loads, log.read_text().splitlines()) if c["tool"] == tool]


def iter_texts(root: Path) -> Iterator[str]:
    """The text of every file under ``root``."""
    for path in root.rglob("*"):
        if path.is_file():
            yield path.read_text(errors="replace")
