#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Write an nftables ruleset file and load it when the kernel's table differs (ADR-032)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: anklume_nftables
short_description: Write a rendered nftables table file, check it and load it only when needed
description:
  - Writes O(content) to O(path) (atomically, mode 0644) when it differs.
  - With O(load=true) the ruleset must also be in the kernel. The canonical listing of
    O(content) (loaded into a throwaway network namespace with C(unshare --net) and listed
    back with C(nft -s)) is cached next to the file (C(.NAME.loaded), keyed by the content's
    sha256). When the file is unchanged and C(nft -s list table inet TABLE) equals the cached
    listing, nothing else runs. Otherwise the content is checked with C(nft -c), loaded in
    the scratch namespace, compared with the kernel's table and, when they differ, loaded
    with C(nft -f PATH) (one atomic transaction); the kernel must then hold exactly that listing.
  - Any nft error fails the task with nft's message; the file is not replaced when C(nft -c)
    or the scratch load rejects the content, and the kernel is not touched.
  - Check mode writes and loads nothing and reports the lines it would add and remove;
    diff shows the file and the kernel table.
  - With O(load=false) and a remote Incus host (O(remote) other than C(local)), the rules
    belong to that host's kernel, which the Incus API cannot reach. C(deploy-nftables.sh),
    run there, records the sha256 of the ruleset it loaded in that server's configuration
    (C(user.anklume.nftables.TABLE.sha256)). The module reads that record and returns a
    C(deploy) plan entry when it is missing or differs from the rendered content (stale),
    with the command to run on that host; nothing when the host holds this ruleset.
  - On a cluster each member has its own kernel and the server configuration is shared, so
    each member records under its own key (C(user.anklume.nftables.TABLE.MEMBER.sha256)) and
    the entry names the members that are missing or stale.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.change
options:
  content: {description: The rendered ruleset., type: str, required: true}
  path: {description: File the ruleset is written to., type: path, required: true}
  table: {description: Name of the C(inet) table the ruleset replaces., type: str, required: true}
  load: {description: Check and load into this host's kernel; false only writes the file., type: bool, default: true}
  nft: {description: Path of the nft binary., type: path, default: /usr/sbin/nft}
  host_step: {description: "With O(load=false): the command that loads the file on the host, named in the returned plan.", type: str, default: ""}
  egress:
    description: >-
      In check mode, one C(info) plan entry per line (C(domain: what it may reach outside),
      ADR-093), so the plan shows each domain's way out and the addresses its DNS names gave.
    type: list
    elements: str
    default: []
  remote:
    description: >-
      The Incus remote whose host the rules are for; with O(load=false) and a remote other
      than C(local), its recorded sha256 decides the plan entry.
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Render, check and load the isolation table
  anklume.incus.anklume_nftables:
    content: "{{ anklume_domains | anklume.incus.nftables_ruleset('anklume') }}"
    path: /srv/anklume/nftables/anklume.nft
    table: anklume
"""

RETURN = r"""
file_changed: {description: The file was (or would be) rewritten., type: bool, returned: always}
reload: {description: The kernel's table differed and was (or would be) reloaded., type: bool, returned: always}
add: {description: Listing lines the reload adds to the kernel's table., type: list, elements: str, returned: always}
remove: {description: Listing lines the reload removes from the kernel's table., type: list, elements: str, returned: always}
plan:
  description: >-
    With O(load=false): one C(deploy) entry saying that the host still has to load the file
    (for a remote: only when its record is missing or stale).
  type: list
  elements: dict
  returned: always
remote_state: {description: "With O(load=false) and a remote: C(current), C(missing) or C(stale); empty otherwise.", type: str, returned: always}
load: {description: "O(load) as given: whether this machine holds the ruleset, for the tasks after this one.", type: bool, returned: always}
"""

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Mapping
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile

ARGUMENT_SPEC = dict(
    content=dict(type="str", required=True),
    path=dict(type="path", required=True),
    table=dict(type="str", required=True),
    load=dict(type="bool", default=True),
    nft=dict(type="path", default="/usr/sbin/nft"),
    host_step=dict(type="str", default=""),
    egress=dict(type="list", elements="str", default=[]),
    **reconcile.REMOTE_OPTION,
)


class NftError(Exception):
    pass


def run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NftError(f"{what}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def without_dynamic_elements(text: str) -> str:
    """A listing without the elements of dynamic sets (the dropped flows a firewall records,
    ADR-066): the packets fill them, the ruleset does not; comparing them would reload."""
    out, in_set, dynamic, skipping = [], [], False, False
    for line in text.splitlines():
        stripped = line.strip()
        if skipping:
            skipping = not stripped.endswith("}")
            continue
        if stripped.startswith("set ") and stripped.endswith("{"):
            in_set, dynamic = [line], False
        elif in_set and stripped.startswith("flags ") and "dynamic" in stripped:
            dynamic = True
        elif in_set and stripped == "}":
            in_set = []
        if in_set and dynamic and stripped.startswith("elements = {"):
            skipping = not stripped.endswith("}")
            continue
        out.append(line)
    return "\n".join(out)


def listing(nft: str, table: str) -> str:
    """The kernel's table, stateless (no counter values); "" when it does not exist."""
    proc = subprocess.run([nft, "-s", "list", "table", "inet", table],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return ""
        raise NftError(f"nft list table inet {table}: {proc.stderr.strip()}")
    return without_dynamic_elements(proc.stdout.strip())


def canonical(nft: str, text: str) -> str:
    """nft -c, then load `text` into a throwaway network namespace and list it back."""
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as tmp:
        tmp.write(text)
        tmp.flush()
        run([nft, "-c", "-f", tmp.name], "nft -c failed to validate the ruleset")
        return run(["unshare", "--net", "--", "sh", "-ec", '"$0" -f "$1"; "$0" -s list ruleset',
                    nft, tmp.name], "loading the ruleset in a scratch network namespace failed").strip()


def record_key(table: str, member: str | None = None) -> str:
    """The Incus server key where deploy-nftables.sh records the sha256 it loaded; on a
    cluster (shared configuration, one kernel per member) one key per member."""
    return f"user.anklume.nftables.{table}.{member + '.' if member else ''}sha256"


def records(client: incus.IncusClient, remote: str, table: str) -> dict[str, str]:
    """{where: recorded sha256}: one entry for a single host (where is ""), one per member
    of a cluster."""
    server = client.get("/1.0", what=f"reading the configuration of remote {remote}") or {}
    config = server.get("config") or {}
    if not (server.get("environment") or {}).get("server_clustered"):
        return {"": str(config.get(record_key(table)) or "")}
    members = client.get("/1.0/cluster/members", params={"recursion": 1},
                         what=f"listing the members of cluster {remote}") or []
    return {m["server_name"]: str(config.get(record_key(table, m["server_name"])) or "")
            for m in members}


def overall_state(found: Mapping[str, str], sha: str) -> str:
    """The worst state of the hosts (one, or each cluster member): missing, then stale, then current."""
    states = {remote_state(record, sha) for record in found.values()}
    for state in ("missing", "stale"):
        if state in states:
            return state
    return "current"


def remote_state(record: str, sha: str) -> str:
    """current, missing (no record) or stale (a record of another ruleset)."""
    if not record:
        return "missing"
    return "current" if record == sha else "stale"


def remote_entry(found: Mapping[str, str], remote: str, table: str, path: str, sha: str,
                 rendered: bool = True) -> dict[str, str]:
    """The plan entry for a remote host (or the cluster members) whose kernel lacks the
    rendered ruleset; FOUND is what records() read. RENDERED is False in a plan whose file
    is not written yet."""
    name = os.path.basename(path)
    hosts = "that host" if list(found) == [""] else "each member named"
    step = (f"{'' if rendered else 'make apply (it renders the file), then '}copy {path} to "
            f"{hosts} and run there, as root: scripts/deploy-nftables.sh {name}")
    why: list[str] = []
    for member, record in sorted(found.items()):
        where = f"{remote} member {member}" if member else remote
        state = remote_state(record, sha)
        if state == "missing":
            why.append(f"missing on {where}: no ruleset recorded there")
        elif state == "stale":
            why.append(f"stale on {where}: it holds sha256 {record[:12]}, infra.yml now "
                       f"renders {sha[:12]}")
    return {"kind": "nftables", "name": f"table inet {table} on {remote}", "action": "deploy",
            "reason": f"{'; '.join(why)}; {step}"}


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(path: str, text: str, mode: int = 0o644) -> None:
    """Replace `path` atomically."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".anklume-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    module = reconcile.ansible_module(module, ARGUMENT_SPEC)
    p = module.params
    text, path, nft, table = p["content"], p["path"], p["nft"], p["table"]
    old = read(path)
    result: dict[str, Any] = dict(changed=old != text, file_changed=old != text, reload=False,
                                  add=[], remove=[], diff=[], plan=[], remote_state="",
                                  load=p["load"])
    if module.check_mode:  # the plan says what each domain may reach outside (ADR-093)
        for line in p["egress"]:
            name, reach = line.split(": ", 1)
            result["plan"].append({"kind": "egress", "name": name, "action": "info",
                                   "reason": reach})
    remote = p["remote"] or "local"
    sha = hashlib.sha256(text.encode()).hexdigest()
    if not p["load"] and remote != "local":
        # A remote host (ADR-069): its kernel is out of reach; its record says what it holds.
        try:
            found = records(client or incus.IncusClient(remote=remote, timeout=60), remote, table)
        except incus.IncusError as exc:
            module.fail_json(msg=str(exc), **result)
        result["remote_state"] = overall_state(found, sha)
        if result["remote_state"] != "current":
            rendered = not (module.check_mode and result["file_changed"])
            result["plan"].append(remote_entry(found, remote, table, path, sha, rendered))
    elif not p["load"]:
        # Rendered where it cannot be loaded (ADR-062): the plan names the host's step.
        state = "changed" if result["file_changed"] else "unchanged"
        result["plan"].append({"kind": "nftables", "name": path, "action": "deploy",
                               "reason": f"{state}, not loaded here: on the host run "
                                         f"{p['host_step'] or 'scripts/deploy-nftables.sh'}"})
    if result["file_changed"]:
        result["diff"].append({"before_header": path, "after_header": path,
                               "before": old or "", "after": text})
    # The cache next to the file: the sha256 of the content, then its canonical listing.
    cache = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".loaded")
    key = "# sha256 " + sha + "\n"
    wanted = None
    try:
        if p["load"]:
            # Fast path: same file, and the kernel holds the listing cached for it.
            cached = read(cache) or ""
            known = None
            if not result["file_changed"] and cached.startswith(key):
                known = cached[len(key):].rstrip("\n")
            live = listing(nft, table) if known is not None else None
            if known is None or live != known:
                wanted = canonical(nft, text)  # fails before anything is written or loaded
                if live is None:
                    live = listing(nft, table)
                if live != wanted:
                    before, after = live.splitlines(), wanted.splitlines()
                    result.update(changed=True, reload=True,
                                  add=[x for x in after if x not in before],
                                  remove=[x for x in before if x not in after])
                    result["diff"].append({"before_header": f"kernel: table inet {table}",
                                           "after_header": f"{path} (canonical listing)",
                                           "before": live + "\n", "after": wanted + "\n"})
        if not module.check_mode:
            if result["file_changed"]:
                write(path, text)
            if wanted is not None:
                write(cache, key + wanted + "\n")
            if result["reload"]:
                run([nft, "-f", path], f"nft -f {path} failed (the previous table is unchanged)")
                if listing(nft, table) != wanted:
                    raise NftError(f"table inet {table} does not hold {path} after loading")
    except (NftError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
