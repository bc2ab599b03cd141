"""Which socket the local remote is asked on (module_utils/incus_socket.py, ADR-096): the
one the incus client's `local` remote uses, found the same way. The answers over it are
compared with the client's on the real daemon in tests/integration/test_incus_socket.py."""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path

import pytest

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)

pytestmark = pytest.mark.unit

IS = importlib.import_module("ansible_collections.anklume.incus.plugins.module_utils.incus_socket")
IC = importlib.import_module("ansible_collections.anklume.incus.plugins.module_utils.incus_client")


def test_incus_socket_wins_then_incus_dir(tmp_path: Path) -> None:
    assert IS.socket_path({"INCUS_SOCKET": "/x/s", "INCUS_DIR": str(tmp_path)}) == "/x/s"
    assert IS.socket_path({"INCUS_DIR": str(tmp_path)}) == str(tmp_path / "unix.socket")


def test_default_is_the_system_daemon() -> None:
    want = "/run/incus/unix.socket" if os.path.lexists("/run/incus/unix.socket") \
        else "/var/lib/incus/unix.socket"
    assert IS.socket_path({}) == want


def test_the_user_socket_when_only_it_is_writable(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A user outside incus-admin may write only unix.socket.user. This suite runs as root,
    who may write both: os.access answers as it would for that user."""
    (tmp_path / "unix.socket").touch(mode=0o400)
    (tmp_path / "unix.socket.user").touch(mode=0o600)
    monkeypatch.setattr(IS.os, "access", lambda path, mode: os.stat(path).st_mode & 0o200 != 0)
    assert IS.socket_path({"INCUS_DIR": str(tmp_path)}) == str(tmp_path / "unix.socket.user")
    (tmp_path / "unix.socket").chmod(0o600)  # both writable: the daemon's own
    assert IS.socket_path({"INCUS_DIR": str(tmp_path)}) == str(tmp_path / "unix.socket")


def test_no_daemon_on_the_socket_is_said_in_one_line(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCUS_DIR", str(tmp_path))
    client = IC.IncusClient()
    assert client.socket == str(tmp_path / "unix.socket")
    with pytest.raises(IC.IncusError) as err:
        client.get("/1.0", what="reading the server")
    assert str(err.value) == ("reading the server: the incus daemon doesn't appear to be "
                              f"started (socket path: {tmp_path}/unix.socket)")
    dead = socket.socket(socket.AF_UNIX)  # a socket file nobody listens on
    dead.bind(str(tmp_path / "unix.socket"))
    dead.close()
    with pytest.raises(IC.IncusError, match="doesn't appear to be started"):
        client.get("/1.0")


def test_a_remote_and_an_empty_socket_go_through_the_client() -> None:
    assert IC.IncusClient("far").socket == ""
    assert IC.IncusClient(socket="").socket == ""
