"""A netns node powered off and booted again, as a crash and a reboot would (capability reboot).

Off loses what a reboot loses: every process of the node (the supervised
ones, what they started, its containers), its containers' namespaces and
veths (they go with dockerd's mount namespace and the containers), the links
podnet made, the routes and firewall rules in its namespace, its pinned BPF
objects, its runtime files (sockets, pid files, docker's exec root). It keeps
what a disk keeps: the state directory, docker's data root (so containers
with `--restart always` come back), /etc/docker, its underlay address.
The namespace itself stays (it stands for the machine and its cabling), and
so do its sysctls — a limit of this backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from lab.backends.base import NodeError
from lab.backends.netns.host import lab_cgroups, processes_running_from, remove_node_cgroups, remove_pins
from lab.backends.netns.node import NetnsNode

KEPT_LINKS = ("lo", "uplink")
BOOT_ORDER = ("podnet-agent", "podnet-docker", "dockerd")


def node_processes(node: NetnsNode) -> set[int]:
    """Every process of the node: in its namespace, in its cgroups (containers), running from its files."""
    found: set[int] = set(processes_running_from(node.dir))
    with contextlib.suppress(OSError):
        ino = os.stat(node.netns_path).st_ino
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(proc / "ns" / "net").st_ino == ino:
                        found.add(int(proc.name))
    for cgroup in lab_cgroups(node.cgroup_parent):
        for procs in cgroup.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found |= {int(pid) for pid in procs.read_text().split()}
    found.discard(os.getpid())
    return found


def power_off(node: NetnsNode, gateway: str, *, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pids := node_processes(node):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise NodeError(f"{node.name}: processes survive the power-off: {sorted(pids)}")
        time.sleep(0.05)
    node.supervisor.pids.clear()
    remove_node_cgroups(node.cgroup_parent)
    for link in node.cmd("ip", "-o", "link", "show").stdout.splitlines():
        name = link.split(":")[1].strip().split("@")[0]
        if name not in KEPT_LINKS:
            node.cmd("ip", "link", "del", name, check=False)  # a veth pair goes with either end
    for table in ("filter", "nat", "mangle", "raw"):
        node.cmd("iptables", "-w", "-t", table, "-F", check=False)
        node.cmd("iptables", "-w", "-t", table, "-X", check=False)
    node.cmd("ip", "route", "flush", "table", "main", check=False)
    node.cmd("ip", "link", "set", "uplink", "down", check=False)
    remove_pins(node.bpf_pin_dir)
    for runtime in (node.path("run"), node.path("docker-exec")):
        shutil.rmtree(runtime, ignore_errors=True)
        runtime.mkdir(parents=True, exist_ok=True)
    for sock in node.plugin_dir.glob("*.sock"):
        sock.unlink(missing_ok=True)
    node.docker_sock.unlink(missing_ok=True)
    node.path("docker.pid").unlink(missing_ok=True)  # /run on a real machine: gone with the boot
    node.path("boot-gateway").write_text(gateway)


def boot(node: NetnsNode) -> None:
    """Cabling and boot configuration back (link up, default route), then every process in order."""
    gateway = node.path("boot-gateway").read_text().strip()
    node.cmd("ip", "link", "set", "uplink", "up")
    node.cmd("ip", "route", "replace", "default", "via", gateway)
    # podnet before dockerd, as a real node's units order them: dockerd restores containers with
    # `--restart always` as it starts, and gives up on a network plugin that is not there yet.
    first = [n for n in BOOT_ORDER if n in node.supervisor.specs]
    for name in [*first, *(n for n in node.supervisor.specs if n not in first)]:
        node.start_process(name)
