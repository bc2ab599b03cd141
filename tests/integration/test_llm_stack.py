"""The local LLM stack (Phases 5 and 10, ADR-067): Ollama and Open WebUI, in two domains,
through `make apply` on the real Incus, with the isolation rules loaded.

A throw-away AnKLuMe tree (owner ``t11llm``; domains ``t11ai`` 10.156.1.0/24 and ``t11web``
10.156.2.0/24, nftables table ``anklumet11``) links the repository's Makefile, roles and
plugins. The containers have no internet, as the roles expect:
- Ollama comes from a test archive with the official layout (bin/ollama, lib/ollama/) whose
  ``ollama`` is the stand-in in tests/fixtures/ollama_standin (the only stand-in here: no
  Ollama binary can be fetched on this machine; its docstring says what it speaks);
- Open WebUI is the real ``open-webui`` from PyPI, installed from the wheelhouse the
  controller builds (cached in the repository's .cache/open_webui, shared with `make`).
Open WebUI (domain t11web) must list the stand-in's model through its own API, which it can
only reach through the declared network policy; the reverse direction stays blocked. Open
WebUI finds Ollama's address by itself (the machine with the ollama_server role).

Own lab: it is the only lab that provisions the ollama_server and open_webui roles (an Ollama
stand-in archive, the Open WebUI wheelhouse) with a policy from t11web to t11ai, and its tests
read the output of its own first and second apply and of apply-llm.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.ollama_standin.archive import build
from tests.incus_helpers import (
    REPO,
    delete_by_prefix,
    exec_read,
    lab_make,
    lab_tree,
    query,
    recap,
    run,
)

OWNER = "t11llm"
AI, WEB = "t11ai", "t11web"
OLLAMA, WEBUI = "t11-ollama", "t11-webui"
OLLAMA_IP, WEBUI_IP = "10.156.1.10", "10.156.2.10"
PLAIN = "t11-plain"  # no LLM role: `make apply-llm` leaves it out
NFT_TABLE = "anklumet11"
MODEL = "t11-tiny"

INFRA = {
    "project_name": OWNER,
    "global": {"base_subnet": "10.156", "default_os_image": "anklume/debian-12",
               "admin_domain": ""},
    "domains": {
        AI: {"description": "LLM inference", "subnet_id": 1, "ephemeral": True,
             "machines": {OLLAMA: {"type": "lxc", "ip": OLLAMA_IP, "roles": ["ollama_server"]}}},
        WEB: {"description": "LLM web front", "subnet_id": 2, "ephemeral": True,
              "machines": {WEBUI: {"type": "lxc", "ip": WEBUI_IP, "roles": ["open_webui"]},
                           PLAIN: {"type": "lxc", "ip": "10.156.2.11"}}},
    },
    "network_policies": [{"from": WEBUI, "to": OLLAMA, "protocol": "tcp", "ports": [11434],
                          "description": "Open WebUI reaches Ollama"}],
}

# Sign up the first user (Open WebUI makes it the admin), then list the models Open WebUI
# sees through its Ollama connection. Runs inside the Open WebUI instance.
LIST_MODELS = """
import json, urllib.request
def call(path, data=None, token=None):
    req = urllib.request.Request("http://127.0.0.1:8080" + path,
        data=json.dumps(data).encode() if data is not None else None,
        headers={"Content-Type": "application/json",
                 **({"Authorization": "Bearer " + token} if token else {})})
    return json.load(urllib.request.urlopen(req, timeout=60))
user = call("/api/v1/auths/signup",
            {"name": "t11", "email": "t11@example.invalid", "password": "t11-Passw0rd!"})
print(json.dumps(call("/ollama/api/tags", token=user["token"])))
"""

CONNECT = ("import socket,sys; s=socket.socket(); s.settimeout(3); "
           "sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))")


def cleanup() -> None:
    # Instances t11-*, projects t11ai/t11web/t11g, bridges net-t11*: this file's only.
    delete_by_prefix("t11")
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, check=False)


def make(root: Path, *args: str, timeout: float = 1500) -> str:
    rc, out = lab_make(root, *args, timeout=timeout)
    assert rc == 0, f"make {' '.join(args)} failed ({rc}):\n{out[-6000:]}"
    return out


def inside(name: str, project: str, *cmd: str) -> str:
    """A read inside the instance, asked again when Incus loses its answer (ADR-046)."""
    return exec_read(name, project, *cmd)


def can_connect(name: str, project: str, ip: str, port: int) -> bool:
    proc = subprocess.run(["incus", "exec", name, "--project", project, "--", "python3", "-c",
                           CONNECT, ip, str(port)], capture_output=True, timeout=60, check=False)
    return proc.returncode == 0


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("llm")
    (tmp / "tree").mkdir()
    root = lab_tree(tmp / "tree")
    archive = build(tmp / "ollama-linux-amd64.tgz")
    gguf = tmp / f"{MODEL}.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    (root / "infra.yml").write_text(yaml.safe_dump(INFRA, sort_keys=False))
    cleanup()
    try:
        make(root, "sync")
        # What a user writes beside the managed section (docs/gpu-llm.md).
        allvars = root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + yaml.safe_dump({
            "incus_nftables_table": NFT_TABLE,
            "ollama_server_archive_file": str(archive),
            "ollama_server_model_files": [{"name": MODEL, "file": str(gguf)}],
            "ollama_server_models": ["llama3.2"],
            "open_webui_wheelhouse_root": str(REPO / ".cache" / "open_webui"),
        }))
        first = make(root, "apply")
        key = inside(WEBUI, WEB, "cat", "/var/lib/open-webui/secret.env")
        second = make(root, "apply")
        llm_only = make(root, "apply-llm")
        yield {"first": first, "second": second, "llm_only": llm_only, "root": str(root),
               "key": key}
    finally:
        cleanup()


def test_ollama_answers_with_the_imported_model(lab: dict[str, str]) -> None:
    version = json.loads(inside(OLLAMA, AI, "python3", "-c",
                                "import urllib.request;print(urllib.request.urlopen("
                                "'http://127.0.0.1:11434/api/version').read().decode())"))
    assert version["version"].endswith("standin")
    unit = inside(OLLAMA, AI, "systemctl", "show", "ollama", "-p", "Environment", "-p", "User")
    assert "OLLAMA_HOST=0.0.0.0:11434" in unit and "OLLAMA_MODELS=/var/lib/ollama/models" in unit
    assert "User=ollama" in unit
    assert inside(OLLAMA, AI, "systemctl", "is-active", "ollama").strip() == "active"


def test_the_role_reports_cpu_only_and_skips_the_pull_offline(lab: dict[str, str]) -> None:
    assert "CPU only: no NVIDIA GPU visible in this instance" in lab["first"]
    assert "skipped pulling llama3.2: the Ollama registry cannot be reached" in lab["first"]


def test_open_webui_is_the_real_release_and_healthy(lab: dict[str, str]) -> None:
    version = inside(WEBUI, WEB, "/opt/open-webui/bin/python", "-c",
                     "import importlib.metadata as m; print(m.version('open-webui'))").strip()
    defaults = yaml.safe_load((REPO / "roles/open_webui/defaults/main.yml").read_text())
    assert version == defaults["open_webui_version"]
    health = inside(WEBUI, WEB, "python3", "-c", "import urllib.request;print(urllib.request"
                    ".urlopen('http://127.0.0.1:8080/health').read().decode())")
    assert json.loads(health) == {"status": True}


def test_open_webui_lists_the_model_through_the_declared_policy(lab: dict[str, str]) -> None:
    tags = json.loads(inside(WEBUI, WEB, "python3", "-c", LIST_MODELS).strip().splitlines()[-1])
    names = [m["name"] for m in tags["models"]]
    assert f"{MODEL}:latest" in names, tags


def test_only_the_declared_direction_and_port_are_open(lab: dict[str, str]) -> None:
    assert can_connect(WEBUI, WEB, OLLAMA_IP, 11434)
    assert not can_connect(OLLAMA, AI, WEBUI_IP, 8080), "the policy opens web -> ai only"
    run(["incus", "exec", OLLAMA, "--project", AI, "--", "sh", "-c",
         "python3 -m http.server 11435 >/dev/null 2>&1 & sleep 1"], timeout=180)
    assert can_connect(OLLAMA, AI, OLLAMA_IP, 11435), "the control listener must be up"
    assert not can_connect(WEBUI, WEB, OLLAMA_IP, 11435), "only port 11434 is declared"


def test_second_apply_reports_zero_changed_and_keeps_the_secret(lab: dict[str, str]) -> None:
    changed = recap(lab["second"])
    assert changed and set(changed.values()) == {0}, lab["second"][-4000:]
    assert inside(WEBUI, WEB, "cat", "/var/lib/open-webui/secret.env") == lab["key"]
    assert lab["key"].startswith("WEBUI_SECRET_KEY=") and len(lab["key"].strip()) > 40


def test_apply_llm_acts_on_the_llm_machines_only_and_changes_nothing(
        lab: dict[str, str]) -> None:
    changed = recap(lab["llm_only"])
    # Nothing drifted: the run's run-once tasks act on the first of them (ADR-082).
    assert changed and set(changed) <= {OLLAMA, WEBUI} and set(changed.values()) == {0}, \
        lab["llm_only"]


def test_a_gpu_asked_of_this_gpu_less_host_stops_before_any_change(
        incus: str, tmp_path: Path) -> None:
    """This machine has no GPU: plan and apply stop at the GPU check, before any object."""
    root = lab_tree(tmp_path)
    infra = {"project_name": "t11gpu",
             "global": {"base_subnet": "10.157", "admin_domain": ""},
             "domains": {"t11g": {"subnet_id": 1, "ephemeral": True, "machines": {
                 "t11-gpu": {"type": "lxc", "gpu": True,
                             "profiles": ["default", "nvidia-compute"]}}}}}
    (root / "infra.yml").write_text(yaml.safe_dump(infra))
    gpus = query("/1.0/resources")["gpu"]["cards"]  # type: ignore[index]
    assert not [c for c in gpus if c.get("vendor_id") == "10de"], "this test needs a GPU-less host"
    for target in ("plan", "apply"):
        rc, out = lab_make(root, target, timeout=300)
        assert rc != 0, out
        assert ("GPU requested by t11-gpu (project t11g), but the Incus host has no NVIDIA "
                "GPU") in out
    projects = {p["name"] for p in query("/1.0/projects?recursion=1")}  # type: ignore[union-attr]
    networks = {n["name"] for n in query("/1.0/networks?recursion=1")}  # type: ignore[union-attr]
    assert "t11g" not in projects and not any("t11g" in n for n in networks)
