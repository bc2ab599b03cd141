"""`make doctor [FIX=1] [JSON=1]`: what is wrong with this host for the tree, with each fix.

Every check is a small function of the host (doctor_checks.py: the machine; doctor_tree.py:
what the tree declares) that returns findings: what is wrong, why it matters, the command
that fixes it. The healthy path prints one line per check. FIX=1 runs the repairs that are
safe to run unasked (start the daemon or lxcfs, load the rendered rules, build the image),
says what it did and checks those again. Exit 0 when healthy, 1 with findings; JSON=1 prints
the findings as a list of {check, ok, what, why, fix, fixed}. docs/doctor.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import TextIO

from anklume.errors import AnklumeError
from anklume.ops import doctor_checks as machine
from anklume.ops import doctor_tree as declared
from anklume.ops import lock
from anklume.ops.context import Context
from anklume.ops.doctor_host import Finding, Host, Repair
from anklume.ops.problems import refuse

Check = Callable[[Host], list[Finding]]

# In this order: a check comes after those it needs; the plan (the slow one) last.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("root", machine.root), ("tree", machine.tree), ("daemon", machine.daemon),
    ("lxcfs", machine.lxcfs), ("storage", machine.storage), ("subids", machine.subids),
    ("images", declared.images), ("nftables", declared.nftables), ("vm", declared.vm),
    ("gpu", declared.gpu), ("remotes", declared.remotes), ("disk", machine.disk),
    ("drift", declared.drift),
)
WIDTH = max(len(name) for name, _ in CHECKS)
INDENT = " " * (6 + WIDTH + 1)

Results = dict[str, list[Finding]]


def refusal(fix: bool, euid: int) -> AnklumeError | None:
    """The one line FIX=1 gets when it cannot repair anything (exit 2, nothing done)."""
    if fix and euid != 0:
        return refuse("FIX=1 repairs as root (it starts daemons, loads nftables rules, "
                      "builds images)",
                      "run sudo make doctor FIX=1, or make doctor alone to see the findings")
    return None


def host_of(ctx: Context) -> Host:
    try:
        tree, problem = ctx.tree(), ""
    except AnklumeError as exc:
        tree, problem = None, exc.problems[0].what
    env = ctx.env()
    env["ANSIBLE_NOCOLOR"] = "1"
    return Host(root=ctx.root, env=env, python=ctx.python, tree=tree, tree_problem=problem,
                infra=ctx.infra)


def examine(h: Host, only: Iterable[str] | None = None) -> Results:
    wanted = set(only) if only is not None else None
    results: Results = {}
    for name, check in CHECKS:
        if wanted is not None and name not in wanted:
            continue
        try:
            results[name] = check(h) or [Finding(name, True, "nothing to check")]
        except Exception as exc:  # one broken check must not hide the others' findings
            results[name] = [Finding(name, False, f"the check itself failed: "
                                     f"{type(exc).__name__}: {exc}", fix="please report it")]
    return results


def label(f: Finding) -> str:
    if f.skipped:
        return "--"
    if f.ok:
        return "fixed" if f.fixed else "ok"
    return "FAIL"


def lines(f: Finding) -> list[str]:
    """The text of one finding: one line when ok, then why and fix when not."""
    out = [f"{label(f):<5} {f.check:<{WIDTH}} {f.what}"]
    if not f.ok and not f.skipped:
        if f.why:
            out.append(f"{INDENT}why: {f.why}")
        if f.fix:
            out.append(f"{INDENT}fix: {f.fix}" + ("   (FIX=1 does it)" if f.repair else ""))
    return out


def summary(findings: list[Finding], seconds: float) -> str:
    problems = [f for f in findings if not f.ok and not f.skipped]
    unrun = [f for f in findings if f.skipped]
    fixed = sorted({f.check for f in findings if f.fixed})
    done = f"; FIX=1 repaired {', '.join(fixed)}" if fixed else ""
    if not problems and not unrun:
        return f"doctor: healthy ({len(findings)} lines, {seconds:.1f} s){done}"
    text = (f"doctor: {len(problems)} finding{'' if len(problems) == 1 else 's'}"
            f" ({', '.join(dict.fromkeys(f.check for f in problems))})" if problems else
            "doctor: 0 findings")
    if unrun:
        text += f", {len(unrun)} check{'' if len(unrun) == 1 else 's'} not run"
    repairable = list(dict.fromkeys(f.check for f in problems if f.repair))
    if repairable and not fixed:
        text += f"; FIX=1 repairs {', '.join(repairable)}"
    return f"{text}{done} ({seconds:.1f} s)"


def as_json(findings: list[Finding]) -> str:
    return json.dumps([f.as_json() for f in findings], indent=2)


def repairs(results: Results) -> list[tuple[str, Repair]]:
    """Each repair to run once, in the checks' order (make host fixes two findings)."""
    seen: dict[tuple[str, ...], tuple[str, Repair]] = {}
    for name, findings in results.items():
        for f in findings:
            if not f.ok and f.repair is not None and f.repair.argv not in seen:
                seen[f.repair.argv] = (name, f.repair)
    return list(seen.values())


def repair(h: Host, results: Results, log: TextIO, to_stderr: bool) -> Results:
    """Run the safe repairs under the lock, then check again what they touched and what was
    not checked; the findings that are gone are marked fixed."""
    todo = repairs(results)
    if not todo:
        print("doctor: FIX=1: nothing here is safe to repair unasked", file=log)
        return results
    owner = h.tree.owner if h.tree else "anklume"
    tried = set()
    with lock.held(h.remote, owner, "make doctor FIX=1"):
        for name, rep in todo:
            print(f"doctor: FIX=1: {name}: {' '.join(rep.argv)}", file=log, flush=True)
            sys.stdout.flush()
            rc = subprocess.run(list(rep.argv), cwd=h.root, env=h.env, check=False,
                                stdout=sys.stderr if to_stderr else None).returncode
            tried.add(name)
            print(f"doctor: FIX=1: {name}: " + (rep.says if rc == 0 else f"failed (exit {rc})"),
                  file=log, flush=True)
    h.forget()
    again = {name for name, fs in results.items()
             if any(not f.ok and (f.repair or f.skipped) for f in fs)}
    fresh = examine(h, again)
    for name, findings in fresh.items():
        for f in findings:
            f.fixed = f.ok and name in tried
    return {name: fresh.get(name, findings) for name, findings in results.items()}


def run(ctx: Context) -> int:
    fix, json_out = ctx.flag("FIX"), ctx.flag("JSON")
    h = host_of(ctx)
    refused = refusal(fix, h.euid)
    if refused is not None:
        raise refused
    start = time.monotonic()
    results = examine(h)
    if not json_out:
        for findings in results.values():
            for f in findings:
                print("\n".join(lines(f)), file=ctx.out)
    if fix:
        before = results
        results = repair(h, results, ctx.err if json_out else ctx.out, json_out)
        if not json_out:
            for name, findings in results.items():
                if findings is not before[name]:
                    for f in findings:
                        print("\n".join(lines(f)), file=ctx.out)
    final = [f for findings in results.values() for f in findings]
    if json_out:
        print(as_json(final), file=ctx.out)
    else:
        print(summary(final, time.monotonic() - start), file=ctx.out)
    ctx.out.flush()
    return 0 if all(f.ok for f in final) else 1
