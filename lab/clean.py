"""`lab clean`: remove what crashed lab runs left behind, whatever their run id.

Lab objects are recognisable by name: namespaces `pn-*`, cgroups
`/sys/fs/cgroup/pn-*`, directories under /var/tmp/podnet-lab, processes whose
network namespace is a lab namespace or whose cgroup is a lab cgroup, and the
Vagrant backend's libvirt domains and networks `pn-*` (with their disks, and
vagrant's record of them in .vagrant/machines).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lab.deploy import REPO
from lab.lab import CURRENT, LABS
from lab.netns import BPF_PINS, CGROUP_ROOT, processes_running_from, remove_cgroup, remove_pins, remove_tree

NETNS_DIR = Path("/run/netns")
MACHINES = REPO / ".vagrant" / "machines"


def lab_namespaces() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob("pn-*")) if NETNS_DIR.is_dir() else []


def _netns_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def lab_processes() -> dict[int, str]:
    """pid -> why it belongs to a lab."""
    inodes = {ino: name for name in lab_namespaces() if (ino := _netns_inode(NETNS_DIR / name)) is not None}
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        pid = int(proc.name)
        try:
            ino = os.stat(proc / "ns" / "net").st_ino
            cgroup = (proc / "cgroup").read_text()
        except OSError:
            continue
        if ino in inodes:
            found[pid] = f"in namespace {inodes[ino]}"
        elif "/pn-" in cgroup:
            found[pid] = f"in cgroup {cgroup.strip().split(':')[-1]}"
    # e.g. a node's bird (it outlives a killed agent on purpose) whose namespace is gone
    for pid, cmdline in processes_running_from(LABS).items():
        found.setdefault(pid, f"runs from the lab's files: {cmdline[:80]}")
    return found


def _virsh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-q", *args], capture_output=True, text=True, timeout=120, check=False)


def lab_vms() -> tuple[list[str], list[str]]:
    """(domains, networks) named pn-*; none when libvirt is not installed or not running."""
    if shutil.which("virsh") is None:
        return [], []
    domains = _virsh("list", "--all", "--name")
    networks = _virsh("net-list", "--all", "--name")
    if domains.returncode != 0 or networks.returncode != 0:
        return [], []
    return _lab_names(domains.stdout), _lab_names(networks.stdout)


def _lab_names(listing: str) -> list[str]:
    return sorted(name for name in listing.split() if name.startswith("pn-"))


def clean_vms(removed: dict[str, list[str]]) -> None:
    domains, networks = lab_vms()
    for domain in domains:
        _virsh("destroy", domain)
        _virsh("undefine", domain, "--remove-all-storage", "--nvram")
        removed["VMs"].append(domain)
    for network in networks:
        _virsh("net-destroy", network)
        _virsh("net-undefine", network)
        removed["VM networks"].append(network)
    if domains and MACHINES.is_dir():
        remove_tree(MACHINES)  # vagrant's ids of the domains just removed


def clean(report: bool = True) -> dict[str, list[str]]:
    removed: dict[str, list[str]] = {
        "VMs": [],
        "VM networks": [],
        "processes": [],
        "namespaces": [],
        "bpf pins": [],
        "cgroups": [],
        "directories": [],
    }
    clean_vms(removed)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = lab_processes()
        for pid, why in procs.items():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
            if sig == signal.SIGTERM:
                removed["processes"].append(f"{pid} ({why})")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and lab_processes():
            time.sleep(0.1)
    for name in lab_namespaces():
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        removed["namespaces"].append(name)
    for pins in sorted(BPF_PINS.glob("pn-*")):
        remove_pins(pins)
        removed["bpf pins"].append(str(pins))
    for cg in sorted(CGROUP_ROOT.glob("pn-*")):
        remove_cgroup(cg)
        removed["cgroups"].append(str(cg))
    if LABS.is_dir():
        for d in sorted(LABS.iterdir()):
            if d.is_dir() and not d.is_symlink():
                remove_tree(d)
                removed["directories"].append(str(d))
    if CURRENT.is_symlink():
        CURRENT.unlink()
    for d in Path("/tmp").glob("podnet-*-??????"):
        if d.is_dir():
            remove_tree(d)
            removed["directories"].append(str(d))
    return removed
