"""`lab down` and `lab clean` on every libvirt host a Vagrant lab used (lab.backends.vagrant.clean),
against a fake virsh: this machine's domains and another host's, reached through its URI; a host that
cannot be reached is said and remembered for the next `lab clean`."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest

from lab.backends.vagrant.placement import LOCAL_URI

clean = importlib.import_module("lab.backends.vagrant.clean")  # the package exports its function `clean`

FAR = "qemu+ssh://lab@10.0.0.2/system"


class FakeLibvirt:
    def __init__(self) -> None:
        self.domains = {LOCAL_URI: {"pn-abc-node1", "other-vm"}, FAR: {"pn-abc-node2", "pn-old-leaf2"}}
        self.networks: dict[str, set[str]] = {LOCAL_URI: {"pn-abc-mgmt", "default"}, FAR: {"pn-abc-mgmt"}}
        self.down: set[str] = set()
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def virsh(self, *args: str, uri: str = LOCAL_URI) -> subprocess.CompletedProcess[str]:
        self.calls.append((uri, args))
        if uri in self.down:
            return subprocess.CompletedProcess(args, 1, "", f"failed to connect to the hypervisor {uri}")
        if args[0] == "list":
            return subprocess.CompletedProcess(args, 0, "\n".join(sorted(self.domains[uri])), "")
        if args[0] == "net-list":
            return subprocess.CompletedProcess(args, 0, "\n".join(sorted(self.networks[uri])), "")
        if args[0] == "undefine":
            self.domains[uri].discard(args[1])
        if args[0] == "net-undefine":
            self.networks[uri].discard(args[1])
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def libvirt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeLibvirt:
    fake = FakeLibvirt()
    monkeypatch.setattr(clean, "_virsh", fake.virsh)
    monkeypatch.setattr(clean, "REMOTE_HOSTS", tmp_path / "hosts.json")
    monkeypatch.setattr(clean.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(clean, "QEMU_DEFINITIONS", tmp_path / "qemu")
    monkeypatch.setattr(clean.paths, "repo", lambda: tmp_path)
    return fake


def test_lab_down_removes_only_its_own_run_on_a_host(libvirt: FakeLibvirt) -> None:
    assert clean.clean_host(FAR, prefix="pn-abc-") == (["pn-abc-node2"], ["pn-abc-mgmt"])
    assert libvirt.domains[FAR] == {"pn-old-leaf2"}  # another run's: lab clean's
    assert (FAR, ("undefine", "pn-abc-node2", "--remove-all-storage", "--nvram")) in libvirt.calls


def test_an_unreachable_host_is_an_error_naming_it(libvirt: FakeLibvirt) -> None:
    libvirt.down.add(FAR)
    with pytest.raises(clean.LabError, match=r"libvirt at qemu\+ssh://lab@10\.0\.0\.2/system cannot be reached"):
        clean.clean_host(FAR)


def test_lab_clean_looks_at_every_remembered_host_and_forgets_those_found_clean(libvirt: FakeLibvirt) -> None:
    clean.remember_hosts([LOCAL_URI, FAR])  # as `lab up` does before placing VMs there
    assert clean.remembered_hosts() == [FAR]  # this machine is always looked at
    libvirt.down.add(FAR)
    removed: dict[str, list[str]] = {}
    clean.clean(removed)
    assert removed["VMs"] == ["pn-abc-node1"] and removed["VM networks"] == ["pn-abc-mgmt"]
    (why,) = removed["unreachable libvirt hosts (run lab clean again)"]
    assert FAR in why and clean.remembered_hosts() == [FAR]  # still to be cleaned
    libvirt.down.clear()
    removed = {}
    clean.clean(removed)
    assert removed["VMs"] == [f"pn-abc-node2 ({FAR})", f"pn-old-leaf2 ({FAR})"]
    assert removed["VM networks"] == [f"pn-abc-mgmt ({FAR})"]
    assert clean.remembered_hosts() == [] and not clean.REMOTE_HOSTS.exists()
    assert libvirt.domains == {LOCAL_URI: {"other-vm"}, FAR: set()}


def test_lab_up_starts_this_machines_libvirtd_but_names_another_host_it_cannot_reach(
    libvirt: FakeLibvirt, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bool] = []

    def start() -> None:
        started.append(True)
        libvirt.down.discard(LOCAL_URI)

    monkeypatch.setattr(clean, "_start_libvirtd", start)
    libvirt.down.add(LOCAL_URI)
    clean.reach_hosts([LOCAL_URI])
    assert started == [True]  # as ci/libvirtd: the local daemon is the lab's to start
    libvirt.down.add(FAR)
    with pytest.raises(
        clean.LabError,
        match=r"libvirt at qemu\+ssh://lab@10\.0\.0\.2/system cannot be reached.*"
        r"that host's libvirtd",
    ):
        clean.reach_hosts([LOCAL_URI, FAR])
    assert started == [True]  # another host's daemon is not started from here


def test_lab_up_says_when_this_machines_libvirtd_will_not_start(
    libvirt: FakeLibvirt, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clean, "_start_libvirtd", lambda: None)
    libvirt.down.add(LOCAL_URI)
    with pytest.raises(
        clean.LabError, match=r"libvirt at qemu:///system cannot be reached: failed to connect.*ci/libvirtd"
    ):
        clean.reach_hosts([LOCAL_URI])
