"""What every backend offers: a node (`LabNode`) and a lab (`BaseLab`).

A node is something you can run a command on (`argv_for`, then `cmd`), whose
dockerd and podnet agent answer on local unix sockets (the node's own on the
netns backend, ssh-forwarded ones on the Vagrant backend), whose processes
can be listed, started, stopped and signalled by name, and whose processes
have logs. A lab is a topology's ToR and nodes on one backend; `BaseLab.up()`
is the one bring-up, calling the backend's `_up()` for what differs.

Nothing here knows a backend's types; backends live in their folders and are
found through `lab.backends.registry`.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from lab.model.topology import Topology

LABS = Path("/var/tmp/podnet-lab")  # one directory per lab: lab.json, the nodes' files
CURRENT = LABS / "current"
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"

# Processes a lab runs, by the names scenarios, `lab process` and `lab logs` use.
PROCESSES = ("dockerd", "podnet-agent", "podnet-docker", "bird", "etcd", "podnet-operator")

# What a backend's labs may be able to do; scenarios `require` these, never a backend by name.
CAPABILITIES: dict[str, str] = {
    "host-cni-runtime": "CNI runtimes (libcni, the plugin exec'd) run on this machine, in a node's namespace",
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


# Stops tcpdump with SIGINT (so it flushes) when the runner closes stdin: the
# same on every backend, including over ssh, which forwards no signals.
CAPTURE_SCRIPT = 'tcpdump "$@" & pid=$!; read -r _; kill -INT $pid; wait $pid'


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
    def stop_process(self, name: str, *, timeout_s: float = 10.0) -> None:
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
    def pod_netns_prefix(self) -> str:
        """CNI steps' pod namespaces are /run/netns/<prefix>-<pod> on the node's machine."""
        return f"pn-{self.name}"

    # -- built on the above --------------------------------------------------------------
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
            health: dict[str, Any] = self.agent(timeout=2).healthz()
        except (PodnetError, ValueError):
            return None
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
        line = proc.stderr.readline()  # "listening on …" once the socket is open, or the error
        if "listening on" not in line:
            proc.stdin.close()
            proc.wait(5)
            raise NodeError(
                f"tcpdump on {self.name}/{interface} did not start: {line.strip() or proc.stderr.read().strip()}"
            )
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
class Timing:
    """One step of `lab up`: seconds since the bring-up started, and how long it took."""

    what: str
    start: float
    seconds: float


N = TypeVar("N", bound=LabNode, covariant=True)


class BaseLab(ABC, Generic[N]):
    """A lab on some backend: the ToR and nodes of a topology, as the backend's `LabNode`s."""

    backend: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    topology: Topology
    run_id: str
    timings: list[Timing]
    up_seconds: float
    tor: N
    nodes: Mapping[str, N]
    node_info: dict[str, dict[str, str]]  # worker -> pod_cidr, router_ip (recorded at up)
    _up_started: float

    @staticmethod
    def new_run_id() -> str:
        return secrets.token_hex(3)

    @property
    def root(self) -> Path:
        return LABS / self.run_id

    @property
    def control(self) -> N | None:
        spec = self.topology.control()
        return self.nodes[spec.name] if spec else None

    @property
    def workers(self) -> dict[str, N]:
        return {w.name: self.nodes[w.name] for w in self.topology.workers()}

    def all_nodes(self) -> Iterator[N]:
        yield self.tor
        yield from self.nodes.values()

    def node(self, name: str) -> N:
        if name == self.tor.name:
            return self.tor
        try:
            return self.nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in this lab (nodes: {', '.join([self.tor.name, *self.nodes])})") from None

    # -- the backend's part ---------------------------------------------------------------
    @property
    @abstractmethod
    def store_url(self) -> str:
        """The cluster's store, as the control node (or the lab's shared store) serves it."""

    @abstractmethod
    def _up(self, report: Progress | None) -> None:
        """Bring the topology up until every node's processes run (each part timed with `step`)."""

    @abstractmethod
    def down(self, *, keep_logs: Path | None = None) -> list[str]:
        """Remove everything the lab made; the errors met on the way."""

    @abstractmethod
    def node_env(self, name: str) -> dict[str, str]:
        """What a shell on the node sees: its dockerd, its agent, the cluster store, podnet's commands."""

    @abstractmethod
    def _backend_state(self) -> dict[str, Any]:
        """What the backend must persist to find its nodes again (another `lab` command)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> BaseLab[LabNode]: ...

    @classmethod
    def leftovers(cls) -> list[str]:
        """What crashed labs of this backend left (refused by `up`, removed by `lab clean`)."""
        return []

    def pods(self) -> PodRuntime:
        """The CNI runtime of capability `host-cni-runtime`."""
        raise LabError(
            f"this step needs capability host-cni-runtime, which the {self.backend} backend does not have "
            f"(it has: {', '.join(sorted(self.capabilities)) or 'none'})"
        )

    def _collect_extra_logs(self, dest: Path) -> None:
        """Backend logs beside the nodes' (e.g. vagrant's own)."""

    # -- bring-up: one template for every backend ----------------------------------------------
    def up(self, report: Progress | None = None) -> None:
        self._claim_root()
        self._up_started = time.perf_counter()
        try:
            self._up(report)
            if self.control is not None:
                with self.step("pod CIDRs from podnet-operator", report):
                    self._wait_for_pod_cidrs()
            with self.step("BGP: every pod CIDR routed by the ToR", report):
                self._wait_for_bgp()
        except BaseException:
            self.save()
            raise
        self.up_seconds = time.perf_counter() - self._up_started
        self.save()

    @contextmanager
    def step(self, what: str, report: Progress | None = None) -> Iterator[None]:
        if report:
            report(what)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            start = t0 - getattr(self, "_up_started", t0)
            self.timings.append(Timing(what, round(start, 3), round(time.perf_counter() - t0, 3)))

    def _claim_root(self) -> None:
        """Refuse to start over another lab or its leftovers; make this run the current lab."""
        found = recorded_labs() + self.leftovers()
        if found:
            raise LabError(
                f"a lab is already set up or was left behind ({', '.join(found)}): run `lab down` or `lab clean` first"
            )
        self.root.mkdir(parents=True)
        CURRENT.unlink(missing_ok=True)
        CURRENT.symlink_to(self.root)

    def _release_root(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if CURRENT.is_symlink() and not CURRENT.exists():
            CURRENT.unlink()

    def pod_cidr(self, node: str) -> str | None:
        """The node's pod CIDR, or None while its agent waits for one."""
        health = self.nodes[node].agent_health()
        return None if health is None else health.get("pod-cidr")

    def _wait_for_pod_cidrs(self, timeout_s: float = 120.0) -> None:
        """Every worker has a pod CIDR or a definite reason why not (the cluster pool is exhausted)."""

        def settled(node: LabNode) -> bool:
            health = node.agent_health()
            if health is None:
                return False
            return bool(health.get("pod-cidr")) or "exhausted" in health["ipam"]["message"]

        for node in self.workers.values():
            wait_for(partial(settled, node), timeout_s, f"a pod CIDR (or a reason) for {node.name}")

    def _wait_for_bgp(self, timeout_s: float = 60.0) -> None:
        """The ToR's kernel routes every pod CIDR via its node (learned over BGP); records them."""
        from podnet.errors import PodnetError

        self.node_info = {}
        for name in self.workers:
            try:
                info = self.nodes[name].agent(timeout=10).request("GET", "/v1/node")
            except PodnetError:  # waiting for a pod CIDR it may never get (an exhausted cluster pool)
                continue
            if info.get("pod-cidrs"):
                self.node_info[name] = {"pod_cidr": info["pod-cidrs"][0], "router_ip": info["router-ip"]}
        expected = {info["pod_cidr"]: self.topology.node_ip(name) for name, info in self.node_info.items()}

        def present() -> bool:
            table = self.tor.cmd("ip", "route", "show", "proto", "bird").stdout
            return all(f"{cidr} via {ip} " in table for cidr, ip in expected.items())

        missing = ", ".join(f"{c} via {ip}" for c, ip in expected.items())
        wait_for(present, timeout_s, f"BGP routes on {self.tor.name}: {missing}", interval_s=0.1)

    # -- processes ------------------------------------------------------------------------------
    def start_process(self, node: str, name: str) -> None:
        self.node(node).start_process(name)
        self.save()

    def stop_process(self, node: str, name: str) -> None:
        self.node(node).stop_process(name)
        self.save()

    def collect_logs(self, dest: Path) -> None:
        """Every node's logs into dest/<node>/ (a node that cannot be read says why there)."""

        def collect(node: LabNode) -> None:
            try:
                node.collect_logs(dest / node.name)
            except (NodeError, OSError, subprocess.TimeoutExpired) as err:
                (dest / node.name).mkdir(parents=True, exist_ok=True)
                (dest / node.name / "collect-error.txt").write_text(str(err))

        with ThreadPoolExecutor(max_workers=len(self.nodes) + 1) as pool:
            list(pool.map(collect, self.all_nodes()))
        self._collect_extra_logs(dest)

    # -- state ------------------------------------------------------------------------------
    def save(self) -> None:
        state = {
            "backend": self.backend,
            "run_id": self.run_id,
            "topology": self.topology.model_dump(),
            "timings": [[t.what, t.start, t.seconds] for t in self.timings],
            "up_seconds": self.up_seconds,
            "node_info": self.node_info,
            **self._backend_state(),
        }
        (self.root / "lab.json").write_text(json.dumps(state, indent=2))

    def _load_common(self, state: dict[str, Any]) -> None:
        self.timings = [Timing(str(w), float(s), float(d)) for w, s, d in state.get("timings", [])]
        self.up_seconds = float(state.get("up_seconds", 0.0))
        self.node_info = dict(state.get("node_info", {}))

    def status(self) -> dict[str, Any]:
        """The lab as `lab status --json` prints it (schema: docs/lab-status.md)."""
        from podnet.errors import PodnetError

        nodes = []
        for node in self.all_nodes():
            role = self.topology.role(node.name)
            entry: dict[str, Any] = {
                "name": node.name,
                "role": role,
                "where": node.where,
                "underlay_ip": (
                    [link.tor_ip for link in self.topology.links()]
                    if role == "tor"
                    else self.topology.node_ip(node.name)
                ),
                "pod_cidr": None,
                "processes": [p.as_json() for p in node.processes().values()],
                "agent": None,
            }
            if role == "worker":
                try:
                    health = node.agent(timeout=3).healthz()
                    entry["pod_cidr"] = health.get("pod-cidr")
                    entry["agent"] = {"state": health["state"], "message": health["ipam"]["message"]}
                except (PodnetError, ValueError) as err:
                    entry["agent"] = {"state": "unreachable", "message": str(err)}
            nodes.append(entry)
        return {
            "run_id": self.run_id,
            "topology": self.topology.name,
            "backend": self.backend,
            "store": self.store_url,
            "up_seconds": round(self.up_seconds, 3),
            "nodes": nodes,
        }


AnyLab = BaseLab[LabNode]  # a lab on any backend


def recorded_labs() -> list[str]:
    """Lab directories with a record (any backend)."""
    if not LABS.is_dir():
        return []
    return sorted(str(p) for p in LABS.iterdir() if p.is_dir() and not p.is_symlink() and (p / "lab.json").exists())


Cleaner = Callable[[dict[str, list[str]]], None]


@dataclass(frozen=True)
class Backend:
    """A backend as the registry knows it: its lab class and its part of `lab clean`."""

    name: str
    description: str
    lab: type[BaseLab[Any]]  # its capabilities, leftovers(), from_state()
    make: Callable[[Topology], BaseLab[Any]]  # a new lab of a topology (usually the same class)
    clean: Cleaner


__all__ = [
    "CAPABILITIES",
    "CURRENT",
    "LABS",
    "PROCESSES",
    "AnyLab",
    "Backend",
    "BaseLab",
    "LabError",
    "LabNode",
    "NodeError",
    "PodRuntime",
    "ProcessState",
    "Timing",
    "wait_for",
]
