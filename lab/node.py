"""What every lab node offers the scenario runner and the checks, whatever the backend.

A node is something you can run a command on (`cmd`), whose dockerd and
podnet agent answer on local unix sockets (`docker_sock`, `agent_sock`: the
node's own on the netns backend, ssh-forwarded ones on the Vagrant backend),
and whose processes have logs. `argv_for` is the host command line that runs
a command on the node; everything else is built on it.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


class NodeError(RuntimeError):
    pass


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, *, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise NodeError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class LabNode(ABC):
    name: str

    # -- what a backend provides ------------------------------------------------------
    @abstractmethod
    def argv_for(self, argv: Sequence[str]) -> list[str]:
        """The command line (on this machine) that runs `argv` on the node, as root."""

    @property
    @abstractmethod
    def docker_sock(self) -> Path: ...

    @property
    @abstractmethod
    def agent_sock(self) -> Path: ...

    @abstractmethod
    def alive(self, name: str) -> bool:
        """Whether the node's process (podnet-agent, podnet-docker, dockerd, bird, etcd, …) runs."""

    @abstractmethod
    def stop(self, name: str) -> None: ...

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the node lives (its namespace, its VM), for people."""

    @abstractmethod
    def process_states(self) -> dict[str, bool]:
        """The node's processes and whether each runs."""

    @abstractmethod
    def log_size(self, name: str) -> int:
        """The size of a process's log now (a mark: `log_text` reads what follows it)."""

    @abstractmethod
    def log_text(self, name: str, start: int = 0) -> str: ...

    @abstractmethod
    def log_where(self, name: str) -> str:
        """Where a person finds the log (shown in failures)."""

    @property
    def pod_netns_prefix(self) -> str:
        """CNI steps' pod namespaces are /run/netns/<prefix>-<pod> on the node's machine."""
        return f"pn-{self.name}"

    # -- built on the above --------------------------------------------------------------
    def cmd(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on the node (`env` adds to its environment)."""
        prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
        proc = subprocess.run(
            self.argv_for([*prefix, *argv]),
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise NodeError(
                f"{self.name}: `{shlex.join(argv)}` exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [DOCKER_CLI, "-H", f"unix://{self.docker_sock}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise NodeError(f"{self.name}: docker {shlex.join(args)}: {proc.stderr.strip()}")
        return proc

    def endpoint_id(self, container: str) -> str:
        """The podnet endpoint of a container (its libnetwork endpoint id); empty if it has none."""
        return self.docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.EndpointID}}{{end}}", container, check=False
        ).stdout.strip()

    def agent_health(self) -> dict[str, Any] | None:
        """The agent's healthz, or None while it does not answer."""
        if not self.alive("podnet-agent"):
            raise NodeError(f"{self.name}: podnet-agent exited; see {self.log_where('podnet-agent')}")
        from podnet.api.client import AgentClient
        from podnet.errors import PodnetError

        try:
            health: dict[str, Any] = AgentClient(str(self.agent_sock), timeout=2).healthz()
        except (PodnetError, ValueError):
            return None
        return health

    def agent_ready(self, require_pod_cidr: bool) -> bool:
        health = self.agent_health()
        return health is not None and (health["state"] != "failure" or not require_pod_cidr)
