"""The netns backend's part of `lab clean`: what crashed runs left on this machine, whatever their run id.

Lab objects are recognisable by name: namespaces `pn-*`, cgroups `pn-*` in
every mounted hierarchy, BPF pins `/sys/fs/bpf/podnet/pn-*`, directories
under /var/tmp/podnet-lab and /tmp/podnet-*-<run>, connection probes' files
/tmp/pn-probe-<run>-*, and processes whose
network namespace is a lab namespace, whose cgroup is a lab cgroup, or
which run from a lab's files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lab.backends.base import CURRENT, LABS
from lab.backends.netns.host import (
    BPF_PINS,
    NETNS_DIR,
    lab_cgroups,
    lab_namespaces,
    processes_running_from,
    remove_cgroup,
    remove_pins,
    remove_tree,
)


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
            found[pid] = f"in cgroup {cgroup.strip().splitlines()[0].split(':')[-1]}"
    # e.g. a node's bird (it outlives a killed agent on purpose) whose namespace is gone
    for pid, cmdline in processes_running_from(LABS).items():
        found.setdefault(pid, f"runs from the lab's files: {cmdline[:80]}")
    return found


def clean(removed: dict[str, list[str]]) -> None:
    for kind in ("processes", "namespaces", "bpf pins", "cgroups", "directories", "files"):
        removed.setdefault(kind, [])
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, why in lab_processes().items():
            try:
                os.kill(pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
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
    for cg in lab_cgroups():
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
    for f in Path("/tmp").glob("pn-probe-??????-*.json*"):  # connection probes' stats (lab.scenario.probe)
        f.unlink(missing_ok=True)
        removed["files"].append(str(f))
