"""The local daemon asked over its socket answers as `incus query` does (ADR-096), on the
real daemon: the same objects, the same error texts, an operation waited for and its
failure raised, with Incus's own words.

The reconcile's read-ahead (ADR-101) is checked here too: the lists it puts in a run's
shared reads are those a module's client then finds there.

Own lab: none (no AnKLuMe tree: project t33sock and two empty containers, without an image,
created through the client under test in a moment).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)

pytestmark = pytest.mark.incus

IC = importlib.import_module("ansible_collections.anklume.incus.plugins.module_utils.incus_client")
PROJECT = "t33sock"


def remove(client: object) -> None:
    """The project and its containers, whatever an interrupted run left."""
    names = client.get("/1.0/instances", project=PROJECT) if PROJECT in client.projects() \
        else []
    for url in names or []:
        client.query(url.split("?")[0], "DELETE", project=PROJECT)
    if PROJECT in client.projects():
        client.query(f"/1.0/projects/{PROJECT}", "DELETE")


@pytest.fixture(scope="module")
def both() -> Iterator[dict[str, object]]:
    """The two ways to the local daemon: its socket, and the client's `incus query`."""
    clients = {"socket": IC.IncusClient(), "client": IC.IncusClient(socket="")}
    assert clients["socket"].socket and not clients["client"].socket
    remove(clients["socket"])
    clients["socket"].query("/1.0/projects", "POST", data={
        "name": PROJECT, "config": {"features.images": "false", "features.profiles": "false"}})
    yield clients
    remove(clients["socket"])


def test_the_same_objects(both: dict[str, object]) -> None:
    sock, cli = both["socket"].projects()[PROJECT], both["client"].projects()[PROJECT]
    assert sock == cli and sock["config"]["features.images"] == "false"
    assert both["socket"].get("/1.0")["api_version"] == both["client"].get("/1.0")["api_version"]
    # An answer without metadata is None both ways.
    none = [c.query(f"/1.0/projects/{PROJECT}", "PATCH", data={"description": "t33"})
            for c in both.values()]
    assert none == [None, None]


def test_the_same_errors(both: dict[str, object]) -> None:
    texts = []
    for client in both.values():
        with pytest.raises(IC.IncusError) as err:
            client.get("/1.0/instances/t33-none", project=PROJECT, what="reading t33-none")
        texts.append(str(err.value))
    assert texts[0] == texts[1] and texts[0].startswith("reading t33-none: ") \
        and "not found" in texts[0].lower(), texts
    assert [c.find("/1.0/instances/t33-none", project=PROJECT) for c in both.values()] == \
        [None, None]


def test_an_operation_is_waited_for_and_its_failure_raised(both: dict[str, object]) -> None:
    """An empty container (no root file system) is created by an operation that succeeds;
    restoring a snapshot it does not have is an operation that fails: both ways raise its
    error, with Incus's words."""
    texts = []
    for way, client in both.items():
        name = f"t33-{way}"
        done = client.query("/1.0/instances", "POST", project=PROJECT, data={
            "name": name, "type": "container", "source": {"type": "none"},
            "profiles": ["default"]})
        assert done["status"] == "Success", done  # the operation, waited for
        assert client.get(f"/1.0/instances/{name}", project=PROJECT)["status"] == "Stopped"
        with pytest.raises(IC.IncusError) as err:
            client.query(f"/1.0/instances/{name}", "PUT", project=PROJECT,
                         data={"restore": "t33-none"}, what="restoring")
        texts.append(str(err.value).replace(name, "NAME"))
    assert texts[0] == texts[1] and texts[0].startswith("restoring: "), texts
    started = both["socket"].query("/1.0/instances/t33-socket", "PUT", project=PROJECT,
                                   data={"restore": "t33-none"}, wait=False)
    assert started["class"] == "task" and started["id"]  # not waited for: the operation
    with pytest.raises(IC.IncusError, match="restoring: "):
        both["socket"].wait_operation(started["id"], what="restoring")


def test_the_reconcile_reads_ahead_into_the_runs_shared_reads(
        both: dict[str, object], tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """ADR-101: the five bulk lists, asked side by side, are in the run's folder; a module's
    client then reads none of them from Incus."""
    rr = importlib.import_module(
        "ansible_collections.anklume.incus.plugins.action.reconcile_roles")
    shared = importlib.import_module(
        "ansible_collections.anklume.incus.plugins.module_utils.shared_reads")
    assert rr.read_ahead({}) == []  # no run folder: nothing to read ahead into
    monkeypatch.setenv(shared.ENV, str(tmp_path))
    assert rr.read_ahead({"anklume_incus_remote": "{{ later }}"}) == []
    ahead = rr.read_ahead({})
    rr.wait_for(ahead)
    assert all(read.done() for read in ahead) and len(ahead) == 5
    assert len(list(tmp_path.glob("*.json"))) == 5  # type: ignore[attr-defined]
    client = IC.IncusClient()
    lists = (client.get("/1.0"), client.networks(), client.projects(), client.profiles(),
             client.instances(state=False))
    assert client.calls == 0, "a list read ahead was asked of Incus again"
    assert PROJECT in lists[2] and lists[0]["api_version"]
