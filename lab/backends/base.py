"""What every backend shares: names, errors, waiting, the shape of a process and of a bring-up step.

Backends live in their folders (`lab/backends/<name>/`) and are found through
`lab.backends.registry`; a node is a `lab.backends.node.LabNode`, a lab a
`lab.backends.lab.BaseLab`. Nothing here knows a backend's types.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABS = Path("/var/tmp/podnet-lab")  # one directory per lab: lab.json, the nodes' files
CURRENT = LABS / "current"
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"

# Processes a lab runs, by the names scenarios, `lab process` and `lab logs` use.
PROCESSES = ("dockerd", "podnet-agent", "podnet-docker", "bird", "etcd", "podnet-operator")

# What a backend's labs may be able to do; scenarios `require` these, never a backend by name.
CAPABILITIES: dict[str, str] = {
    "host-cni-runtime": "CNI runtimes (libcni, the plugin exec'd) run on this machine, in a node's namespace",
    "reboot": "a node can be powered off (losing what a reboot loses) and booted again",
    "fabric": "spine-leaf topologies: spines and leaves as routers, dual-homed nodes (topology spines/leaves)",
}

Progress = Callable[[str], None]


class LabError(RuntimeError):
    pass


class NodeError(RuntimeError):
    pass


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, *, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise NodeError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@dataclass(frozen=True)
class ProcessState:
    """One of a node's processes as `lab status` shows it."""

    name: str
    running: bool
    pid: int | None = None
    unit: str | None = None  # the systemd unit, on VMs
    detail: str = ""  # why it is not running (exit status), or e.g. "paused"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "running": self.running, "pid": self.pid, "unit": self.unit, "detail": self.detail}


@dataclass(frozen=True)
class Timing:
    """One step of `lab up`: seconds since the bring-up started, and how long it took."""

    what: str
    start: float
    seconds: float
