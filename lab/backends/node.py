"""What a lab node offers the runner and the checks, whatever the backend.

A node is something you can run a command on (`argv_for`, then `cmd`), whose
dockerd and podnet agent answer on local unix sockets (the node's own on the
netns backend, ssh-forwarded ones on the Vagrant backend), whose processes
can be listed, started, stopped and signalled by name, and whose processes
have logs.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from lab.backends.base import DOCKER_CLI, NodeError, ProcessState

# Stops tcpdump with SIGINT (so it flushes) when the runner closes stdin: the
# same on every backend, including over ssh, which forwards no signals.
CAPTURE_SCRIPT = 'tcpdump "$@" & pid=$!; read -r _; kill -INT $pid; wait $pid'


class LabNode(ABC):
    name: str
    # How long one healthz may take: it asks the store and the BGP speaker (two birdc runs), which
    # under TCG on a loaded machine can take seconds.
    health_timeout_s: ClassVar[float] = 2.0
    last_health_error: str = ""  # why the last healthz had no answer (for a timeout's message)

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

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the node lives (its namespace, its VM), for people."""

    @abstractmethod
    def shell(self, command: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """(argv, environment) that `lab exec` replaces itself with: a shell or `command` on the node."""

    @abstractmethod
    def processes(self) -> dict[str, ProcessState]:
        """The node's processes (those the lab started or configured), running or not."""

    @abstractmethod
    def start_process(self, name: str) -> None:
        """Start one of the node's processes and wait until it serves."""

    @abstractmethod
    def stop_process(self, name: str, *, timeout_s: float | None = None) -> None:
        """Stop it gracefully (SIGTERM, then SIGKILL after timeout_s); no-op when not running."""

    @abstractmethod
    def signal_process(self, name: str, signal_number: int) -> None:
        """Send a signal to the process's main PID."""

    @abstractmethod
    def log_names(self) -> list[str]:
        """Processes with a log on this node."""

    @abstractmethod
    def log_size(self, name: str) -> int:
        """The size of a process's log now (a mark: `log_text` reads what follows it)."""

    @abstractmethod
    def log_text(self, name: str, start: int = 0) -> str: ...

    @abstractmethod
    def log_where(self, name: str) -> str:
        """Where a person finds the log (shown in failures)."""

    @abstractmethod
    def plugin_ready(self) -> bool:
        """podnet-docker answers Plugin.Activate as a network driver."""

    @property
    def bird_socket(self) -> list[str]:
        """birdc's arguments that name this node's bird control socket (none: bird's default)."""
        return []

    def birdc(self, *command: str) -> subprocess.CompletedProcess[str]:
        """A command to the node's bird (the ToR's router; a worker's speaker has its own socket)."""
        return self.cmd("birdc", *self.bird_socket, *command)

    @property
    def pod_netns_prefix(self) -> str:
        """CNI steps' pod namespaces are /run/netns/<prefix>-<pod> on the node's machine."""
        return f"pn-{self.name}"

    # -- built on the above --------------------------------------------------------------
    def plugin_process(self) -> str:
        """The process serving the libnetwork plugin (and logging its calls): podnet-docker where the
        node runs one, else podnet-agent (a node's `docker_plugin: agent`)."""
        return "podnet-docker" if "podnet-docker" in self.processes() else "podnet-agent"

    def require_process(self, name: str) -> None:
        """A clear error for a process this node does not run (podnet-docker, when the agent serves the plugin)."""
        if name == "podnet-docker" and name not in self.processes():
            raise NodeError(
                f"{self.name} runs no podnet-docker: its podnet-agent serves the libnetwork plugin "
                "(topology docker_plugin: agent), so the plugin stops and starts with the agent; act on "
                "podnet-agent, or give the node docker_plugin: process"
            )

    def alive(self, name: str) -> bool:
        state = self.processes().get(name)
        return state is not None and state.running

    def run_argv(
        self, argv: list[str], *, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a host command line (the one primitive every command goes through; fakes replace it)."""
        return subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout, check=False)

    def cmd(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on the node (`env` adds to its environment)."""
        prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
        proc = self.run_argv(self.argv_for([*prefix, *argv]), input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise NodeError(
                f"{self.name}: `{shlex.join(argv)}` exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        proc = self.run_argv([DOCKER_CLI, "-H", f"unix://{self.docker_sock}", *args], timeout=timeout)
        if check and proc.returncode != 0:
            raise NodeError(f"{self.name}: docker {shlex.join(args)}: {proc.stderr.strip()}")
        return proc

    def agent(self, timeout: float = 10.0) -> Any:
        """A client of the node's podnet agent (podnet.api.client.AgentClient)."""
        from podnet.api.client import AgentClient

        return AgentClient(str(self.agent_sock), timeout=timeout)

    def endpoint_id(self, container: str) -> str:
        """The podnet endpoint of a container (its libnetwork endpoint id); empty if it has none."""
        return self.docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.EndpointID}}{{end}}", container, check=False
        ).stdout.strip()

    def agent_health(self) -> dict[str, Any] | None:
        """The agent's healthz, or None while it does not answer."""
        if not self.alive("podnet-agent"):
            raise NodeError(f"{self.name}: podnet-agent is not running; see {self.log_where('podnet-agent')}")
        from podnet.errors import PodnetError

        try:
            health: dict[str, Any] = self.agent(timeout=self.health_timeout_s).healthz()
        except (PodnetError, ValueError) as err:
            self.last_health_error = str(err)
            return None
        self.last_health_error = ""
        return health

    def agent_ready(self, require_pod_cidr: bool) -> bool:
        health = self.agent_health()
        return health is not None and (health["state"] != "failure" or not require_pod_cidr)

    def collect_logs(self, dest: Path) -> None:
        """Every process log of the node into dest/<process>.log."""
        dest.mkdir(parents=True, exist_ok=True)
        for name in self.log_names():
            (dest / f"{name}.log").write_text(self.log_text(name))

    @contextmanager
    def capture(self, interface: str, path: Path) -> Iterator[None]:
        """tcpdump on one of the node's interfaces into `path` for the duration of the block.

        --immediate-mode: without it libpcap hands packets over in blocks and a
        short capture stopped mid-block loses them ("9 received, 3 captured").
        """
        tcpdump = ["--immediate-mode", "-i", interface, "-U", "-n", "-s", "0", "-w", "-"]
        with open(path, "wb") as out:
            proc = subprocess.Popen(
                self.argv_for(["bash", "-c", CAPTURE_SCRIPT, "capture", *tcpdump]),
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )
        assert proc.stderr is not None and proc.stdin is not None
        # "listening on …" once the socket is open, or the error; on `any` a note on the link type
        # ("data link type LINUX_SLL2") comes first.
        said: list[str] = []
        while len(said) < 5:
            line = proc.stderr.readline()
            said.append(line.strip())
            if not line or "listening on" in line:
                break
        if "listening on" not in said[-1]:
            proc.stdin.close()
            proc.wait(5)
            heard = "; ".join(s for s in said if s) or proc.stderr.read().strip()
            raise NodeError(f"tcpdump on {self.name}/{interface} did not start: {heard}")
        try:
            yield
        finally:
            time.sleep(0.3)  # let the last packets of the step reach the file
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class PodRuntime(Protocol):
    """A CNI runtime for pods on a node (capability `host-cni-runtime`): `cni` steps use it."""

    def pod_netns(self, node: LabNode, pod: str) -> str:
        """The pod's network namespace path, as a command on the node names it."""

    def call(
        self,
        node: LabNode,
        *,
        runtime: str,
        command: str,
        pod: str,
        ifname: str,
        prev_result: Any = None,
    ) -> tuple[int, Any]:
        """One CNI call for the pod (ADD makes its namespace, DEL removes it): (exit status, output)."""


@dataclass(frozen=True)
class DockerHost:
    """A single node with its own dockerd, outside any lab: where the conformance suites drive a plugin."""

    node: LabNode
    image: str  # an image its dockerd has (the lab's busybox)
    plugin_sock: Path | None  # podnet-docker's socket, when podnet runs there


class DockerHostFactory(Protocol):
    """`Backend.docker_host`: a DockerHost for the duration of a `with` (then removed). dockerd finds each
    of `plugins` (driver name -> unix socket); with `podnet` (a python where podnet is installed) its
    agent and libnetwork plugin run there."""

    def __call__(
        self,
        name: str,
        *,
        plugins: Mapping[str, Path] | None = None,
        podnet: str | None = None,
        agent_args: Sequence[str] = (),
        plugin_args: Sequence[str] = (),
        keep_logs: Path | None = None,
    ) -> AbstractContextManager[DockerHost]: ...
