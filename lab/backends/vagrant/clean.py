"""The Vagrant backend's part of `lab clean`: libvirt domains and networks named pn-* (with their
disks) and vagrant's record of them in .vagrant/machines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lab import paths
from lab.backends.base import LabError

QEMU_DEFINITIONS = Path("/etc/libvirt/qemu")


def _virsh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-q", *args], capture_output=True, text=True, timeout=120, check=False)


def lab_vms() -> tuple[list[str], list[str]]:
    """(domains, networks) named pn-*; none when libvirt is not installed or not running."""
    if shutil.which("virsh") is None:
        return [], []
    domains = _virsh("list", "--all", "--name")
    if domains.returncode != 0 and _defined_lab_domains():
        _start_libvirtd()  # lab VMs are defined but libvirtd is down: without it they would stay
        domains = _virsh("list", "--all", "--name")
    networks = _virsh("net-list", "--all", "--name")
    if domains.returncode != 0 or networks.returncode != 0:
        if _defined_lab_domains():
            raise LabError(
                f"lab VMs are defined ({', '.join(_defined_lab_domains())}) but virsh cannot reach libvirtd: "
                f"{domains.stderr.strip()}; start it (ci/libvirtd) and run `lab clean` again"
            )
        return [], []
    return _lab_names(domains.stdout), _lab_names(networks.stdout)


def _defined_lab_domains() -> list[str]:
    return sorted(p.stem for p in QEMU_DEFINITIONS.glob("pn-*.xml"))


def _start_libvirtd() -> None:
    script = paths.repo() / "ci" / "libvirtd"
    if script.is_file():
        subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, check=False)


def _lab_names(listing: str) -> list[str]:
    return sorted(name for name in listing.split() if name.startswith("pn-"))


def clean(removed: dict[str, list[str]]) -> None:
    removed.setdefault("VMs", [])
    removed.setdefault("VM networks", [])
    domains, networks = lab_vms()
    for domain in domains:
        _virsh("destroy", domain)
        _virsh("undefine", domain, "--remove-all-storage", "--nvram")
        removed["VMs"].append(domain)
    for network in networks:
        _virsh("net-destroy", network)
        _virsh("net-undefine", network)
        removed["VM networks"].append(network)
    machines = paths.repo() / ".vagrant" / "machines"
    if domains and machines.is_dir():
        shutil.rmtree(machines, ignore_errors=True)  # vagrant's ids of the domains just removed
