# SPDX-License-Identifier: AGPL-3.0-or-later
"""Compiled templates kept between playbook runs, as Python keeps compiled modules (ADR-100).

Ansible compiles every template it renders, in every task's worker and every run: Jinja
parses the text, generates Python from it and compiles that, 1 to 3 ms a template, which
Jinja caches only for templates loaded from files. Half of the templating in a no-op
apply's reconcile and provision checks was that compilation, of the same texts each run.

:func:`install` wraps the compilation of Ansible's template environment so that the code
compiled from a template text is kept in a folder and loaded from it the next time. The
code is used only for the same text under the same compile-time conditions:

* the key holds everything Jinja's and Ansible's code generation read: the text, the
  environment's class and syntax (delimiters, whitespace rules, extensions), the
  embedded-template setting, the backslash handling of Ansible's lexer, and the Jinja,
  Ansible and Python versions;
* the one thing it reads from the plugins, how each filter and test named in the text is
  called (Jinja passes some the context or the environment), is kept beside the code and
  compared before the code is used: a plugin that changed that is compiled again.

Ansible's optimizer is off (no filter runs at compile time), so the code of a text does not
depend on any value. A text that fails to compile is not kept; nor is anything compiled
under Ansible's template debugging. Without the ansible-core it targets (2.19's templating)
nothing is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
from typing import Any

# A folder past this many entries is emptied when a run starts (texts that are built
# anew each run would otherwise pile up).
MAX_ENTRIES = 4000


def _jinja_bits() -> Any:
    try:
        from ansible._internal._templating import _jinja_bits
    except ImportError:  # an ansible-core without 2.19's templating: nothing to wrap
        return None
    return _jinja_bits


def install(folder: str) -> bool:
    """Keep compiled templates in FOLDER from now on, in this process and its forks."""
    bits = _jinja_bits()
    if bits is None or getattr(bits.AnsibleEnvironment.compile, "anklume_folder", None):
        return False
    with contextlib.suppress(OSError):
        os.makedirs(folder, exist_ok=True)
        entries = list(os.scandir(folder))
        if len(entries) > MAX_ENTRIES:
            for entry in entries:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
    compile_now = bits.AnsibleEnvironment.compile

    def compile_kept(env: Any, source: Any, name: str | None = None,
                     filename: str | None = None, raw: bool = False,
                     defer_init: bool = False) -> Any:
        # Ansible's own environment only, not a subclass (whose code generation may differ).
        exact = type(env) is bits.AnsibleEnvironment  # pylint: disable=unidiomatic-typecheck
        if raw or not isinstance(source, str) or not exact or env.overlayed \
                or env._debuggable_template_source:
            return compile_now(env, source, name, filename, raw, defer_init)
        path = os.path.join(folder, key(bits, env, source, name, filename, defer_init))
        code = _load(path, env)
        if code is None:
            code = compile_now(env, source, name, filename, raw, defer_init)
            _keep(path, (plugins_named(env, source), code))
        return code

    compile_kept.anklume_folder = folder  # type: ignore[attr-defined]
    bits.AnsibleEnvironment.compile = compile_kept
    return True


def key(bits: Any, env: Any, source: str, name: str | None, filename: str | None,
        defer_init: bool) -> str:
    """The file name of a text's code: a digest of what its compilation reads."""
    from ansible.release import __version__ as ansible_version
    from jinja2 import __version__ as jinja_version

    context = bits._TemplateCompileContext.current(optional=True)
    syntax = tuple(getattr(env, field) for field in bits._TEMPLATE_OVERRIDE_FIELD_NAMES)
    what = (str(source), name, filename, defer_init, type(env).__qualname__, syntax,
            sorted(env.extensions), env.optimized, env.is_async,
            bool(context and context.escape_backslashes),
            bool(bits._TemplateConfig.allow_embedded_templates),
            jinja_version, ansible_version, sys.version, sys.implementation.cache_tag)
    return hashlib.sha256(repr(what).encode()).hexdigest()[:40] + ".code"


def plugins_named(env: Any, source: str) -> tuple[tuple[str, str, str], ...]:
    """How each filter and test named in SOURCE is called, as the code was generated for
    it: (kind, name, what Jinja passes it first, or "missing")."""
    from jinja2 import nodes

    found = set()
    for kind, node_type, plugins in (("filter", nodes.Filter, env.filters),
                                     ("test", nodes.Test, env.tests)):
        for node in env.parse(source).find_all(node_type):
            found.add((kind, node.name, _passes(plugins, node.name)))
    return tuple(sorted(found))


def _passes(plugins: Any, name: str) -> str:
    from jinja2.utils import _PassArg

    try:
        func = plugins.get(name)
    except Exception:  # a plugin that fails to load is for Jinja to report
        return "missing"
    return "missing" if func is None else repr(_PassArg.from_obj(func))


def _load(path: str, env: Any) -> Any:
    """The code kept at PATH if the plugins it names are still called the same way."""
    try:
        with open(path, "rb") as handle:
            named, code = marshal.loads(handle.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    plugins = {"filter": env.filters, "test": env.tests}
    for kind, name, passes in named:
        if _passes(plugins[kind], name) != passes:
            return None
    return code


def _keep(path: str, entry: Any) -> None:
    """Write ENTRY whole (a reader never sees half of it); a folder that cannot be written
    only costs the next run the compilation."""
    scratch = f"{path}.{os.getpid()}.part"
    try:
        with open(scratch, "wb") as handle:
            handle.write(marshal.dumps(entry))
        os.replace(scratch, path)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(scratch)
