"""An instance export made fit for another place (ADR-089): another domain (AS=), another
tree or another Incus (REMOTE=).

`incus import` checks the instance's devices against the daemon it lands on: an eth0 on a
bridge that is not there is refused. So before the import, the two descriptions inside the
export (backup/index.yaml and backup/<kind>/backup.yaml) are edited: eth0 on the target
domain's bridge with the target machine's address, the profiles the target declares, the
owner marker of the target tree; for a copy under a new name (AS=), a fresh identity (uuid
and MAC address made by Incus again, the hostname templates applied on first start).

Only the members before the root filesystem are rewritten; the rest of the tar is copied
byte for byte, so files, owners, modes and extended attributes are untouched.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from anklume.ops.instances import MANAGED, OWNER

DESCRIPTIONS = ("backup/index.yaml", "backup/container/backup.yaml",
                "backup/virtual-machine/backup.yaml")
# Made again by Incus for a copy: two instances never share them.
FRESH = ("volatile.uuid", "volatile.uuid.generation", "volatile.cloud-init.instance-id")


class _Loader(yaml.SafeLoader):
    """Timestamps stay text: Incus reads its own nanosecond form, PyYAML would cut it."""


class _Dumper(yaml.SafeDumper):
    """And are written back unquoted, as Incus wrote them."""


for _cls in (_Loader, _Dumper):
    _cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


@dataclass(frozen=True)
class Placement:
    network: str
    address: str
    owner: str
    profiles: tuple[str, ...]
    copy: bool  # a second life under another name (AS=)


def _instance(doc: Any, place: Placement, current: bool) -> None:
    """One instance (or snapshot) record of a description, edited in place."""
    if not isinstance(doc, dict):
        return
    for key in ("devices", "expanded_devices"):
        eth0 = (doc.get(key) or {}).get("eth0")
        if isinstance(eth0, dict) and eth0.get("type") == "nic" and "network" in eth0:
            eth0["network"] = place.network
            if place.address:
                eth0["ipv4.address"] = place.address
            else:
                eth0.pop("ipv4.address", None)
    for key in ("config", "expanded_config"):
        config = doc.get(key)
        if not isinstance(config, dict):
            continue
        if config.get(MANAGED) == "true":
            config[OWNER] = place.owner
        if place.copy:
            for k in [k for k in config if k in FRESH
                      or (k.startswith("volatile.") and k.endswith(".hwaddr"))]:
                del config[k]
            if current:
                config["volatile.apply_template"] = "copy"  # hostname and hosts again
    if "profiles" in doc:
        doc["profiles"] = list(place.profiles)


def description(name: str, data: bytes, place: Placement) -> bytes:
    """The description member NAME, edited for PLACE."""
    doc = yaml.load(data, Loader=_Loader)  # a SafeLoader subclass
    body = doc.get("config") if name == "backup/index.yaml" else doc
    if isinstance(body, dict):
        _instance(body.get("container"), place, current=True)
        for snap in body.get("snapshots") or []:
            _instance(snap, place, current=False)
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1 << 16,
                     allow_unicode=True).encode()


def _head(plain: tarfile.TarFile, place: Placement) -> tuple[bytes, int]:
    """(the members up to the last description, rewritten as tar bytes; the offset in the
    original of the first member after them)."""
    out = io.BytesIO()
    head = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    seen = 0
    for member in plain:
        if seen == 2:  # index.yaml and the instance's backup.yaml
            return out.getvalue(), member.offset
        data = plain.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
        if member.name in DESCRIPTIONS and data is not None:
            data = description(member.name, data, place)
            member.size = len(data)
            seen += 1
        head.addfile(member, io.BytesIO(data) if data is not None else None)
    raise ValueError("the export holds no instance description")


def rewrite(src: Path, dst: Path, place: Placement) -> None:
    """SRC (an `incus export`, zstd) written to DST for PLACE, zstd again."""
    plain_path = dst.with_suffix(".plain.tar")
    try:
        subprocess.run(["zstd", "-d", "-q", "-f", str(src), "-o", str(plain_path)], check=True,
                       capture_output=True)
        with tarfile.open(plain_path, mode="r:") as plain:
            head, offset = _head(plain, place)
        with open(plain_path, "rb") as original, open(dst, "wb") as target:
            packer = subprocess.Popen(["zstd", "-1", "-T0", "-q", "-c"], stdin=subprocess.PIPE,
                                      stdout=target)
            assert packer.stdin is not None
            packer.stdin.write(head)
            original.seek(offset)
            shutil.copyfileobj(original, packer.stdin, 1 << 20)
            packer.stdin.close()
            if packer.wait():
                raise OSError("zstd failed while packing the edited export")
    finally:
        plain_path.unlink(missing_ok=True)
