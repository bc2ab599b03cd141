"""scripts/host.sh refuses clearly what it cannot do, before changing anything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit
HOST_SH = str(REPO / "scripts" / "host.sh")


def test_refuses_to_run_without_root() -> None:
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", HOST_SH],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "must run as root" in proc.stderr


def test_refuses_an_unsupported_distribution(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('ID=fedora\nVERSION_ID="40"\nPRETTY_NAME="Fedora Linux 40"\n')
    proc = subprocess.run(
        ["bash", HOST_SH],
        capture_output=True,
        text=True,
        check=False,
        env={"ANKLUME_OS_RELEASE": str(release), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert proc.returncode == 2
    assert "unsupported distribution Fedora Linux 40" in proc.stderr


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _packages_installed(tmp_path: Path, python_has_venv: bool) -> list[str]:
    """The packages host.sh asks apt-get for, on a Debian 13 whose PATH holds only stubs:
    no incus, nftables... yet; `apt-get install` records its arguments and fails, which
    stops host.sh before it touches anything else."""
    release = tmp_path / "os-release"
    release.write_text('ID=debian\nVERSION_ID="13"\nPRETTY_NAME="Debian 13"\n')
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "dirname").symlink_to("/usr/bin/dirname")
    _stub(stubs, "id", "echo 0")
    _stub(stubs, "python3", "exit 0" if python_has_venv else "exit 1")
    log = tmp_path / "apt.log"
    _stub(stubs, "apt-get", f'[ "$1" = install ] || exit 0\necho "$@" > {log}\nexit 1')
    proc = subprocess.run(["/bin/bash", HOST_SH], capture_output=True, text=True, check=False,
                          env={"ANKLUME_OS_RELEASE": str(release), "PATH": str(stubs)})
    assert proc.returncode != 0 and "installing" in proc.stdout, proc
    return log.read_text().split()


def test_installs_python3_venv_for_make_venv_when_ensurepip_is_missing(tmp_path: Path) -> None:
    packages = _packages_installed(tmp_path, python_has_venv=False)
    assert {"incus", "nftables", "debootstrap", "python3-venv", "graphviz"} <= set(packages)


def test_leaves_python3_venv_alone_when_python_can_make_a_venv(tmp_path: Path) -> None:
    packages = _packages_installed(tmp_path, python_has_venv=True)
    assert "incus" in packages and "python3-venv" not in packages


def test_make_rebuilds_a_venv_that_has_no_pip(tmp_path: Path) -> None:
    """A .venv made while python3-venv was missing has no pip: make makes it again (real
    venv, real pip, a project with no dependency)."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "t27venv"\nversion = "0"\n[project.optional-dependencies]\ndev = []\n'
        '[tool.setuptools]\npy-modules = []\n')
    subprocess.run(["python3", "-m", "venv", "--without-pip", ".venv"], cwd=tmp_path, check=True)
    assert not (tmp_path / ".venv/bin/pip").exists()
    proc = subprocess.run(["make", "-s", ".venv/.installed"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / ".venv/bin/pip").exists()
    assert (tmp_path / ".venv/.installed").exists()


def _gui_client_run(tmp_path: Path, infra: str, installed: bool) -> tuple[str, list[str]]:
    """host.sh on a stubbed Debian 13 in a checkout whose infra.yml is INFRA: what it
    printed and the packages of its first `apt-get install` (which fails and stops it)."""
    release = tmp_path / "os-release"
    release.write_text('ID=debian\nVERSION_ID="13"\nPRETTY_NAME="Debian 13"\n')
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for tool in ("dirname", "grep"):
        (stubs / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    _stub(stubs, "id", "echo 0")
    _stub(stubs, "python3", "exit 1")  # python3-venv missing: incus & co are asked after
    _stub(stubs, "dpkg-query", "echo 'install ok installed'" if installed else "exit 1")
    log = tmp_path / "apt.log"
    _stub(stubs, "apt-get", f'[ "$1" = install ] || exit 0\necho "$@" > {log}\nexit 1')
    (tmp_path / "infra.yml").write_text(infra)
    proc = subprocess.run(["/bin/bash", HOST_SH], capture_output=True, text=True, check=False,
                          cwd=tmp_path, env={"ANKLUME_OS_RELEASE": str(release),
                                             "ANKLUME_INFRA": "infra.yml", "PATH": str(stubs)})
    assert proc.returncode != 0, proc
    return proc.stdout, log.read_text().split()


GUI_INFRA = "domains:\n  pro:\n    machines:\n      pro-desk: {type: lxc, gui: true}\n"


def test_installs_the_xpra_client_when_a_machine_declares_gui(tmp_path: Path) -> None:
    out, packages = _gui_client_run(tmp_path, GUI_INFRA, installed=False)
    assert "installing xpra python3-gi-cairo: infra.yml declares a gui machine" in out, out
    assert packages[-2:] == ["xpra", "python3-gi-cairo"], packages


def test_adds_the_sound_plugins_when_a_machine_declares_audio(tmp_path: Path) -> None:
    infra = GUI_INFRA.replace("gui: true}", "gui: true, audio: true}")
    _, packages = _gui_client_run(tmp_path, infra, installed=False)
    assert packages[-5:] == ["xpra", "python3-gi-cairo", "python3-gst-1.0",
                             "gstreamer1.0-plugins-base", "gstreamer1.0-pulseaudio"], packages


def test_says_the_xpra_client_is_there_and_installs_it_once(tmp_path: Path) -> None:
    out, packages = _gui_client_run(tmp_path, GUI_INFRA, installed=True)
    lines = [ln for ln in out.splitlines() if "xpra" in ln]
    assert lines == ["host: xpra client present: make gui shows the gui machines' windows "
                     "here"], out
    assert "xpra" not in packages and "incus" in packages


@pytest.mark.parametrize("infra", [
    "domains:\n  pro:\n    machines:\n      pro-dev: {type: lxc}\n",
    "domains:\n  pro:\n    machines:\n      pro-dev:\n        # gui: true\n        type: lxc\n",
])
def test_leaves_xpra_alone_without_a_gui_machine(tmp_path: Path, infra: str) -> None:
    out, packages = _gui_client_run(tmp_path, infra, installed=False)
    assert "xpra" not in out and "xpra" not in packages, (out, packages)
