"""A fake lab for unit tests of the runner, the step kinds and the check kinds (no root, no kernel).

`FakeNode` answers commands from handlers a test sets (`on_cmd`, `on_docker`),
keeps process states in a dict, writes captures from packets a test gives
(`packets`), and reaches a podnet agent at `agent_sock` — a real one, on a
fake kernel, when the test starts `tests.agent_harness.running_agent`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from scapy.utils import wrpcap

from lab.backends.base import NodeError, ProcessState, Progress
from lab.backends.lab import BaseLab
from lab.backends.node import LabNode, PodRuntime
from lab.model.topology import load_topology

Reply = tuple[int, str, str]  # exit status, stdout, stderr
Handler = Callable[[list[str]], Reply | None]


def completed(argv: Sequence[str], reply: Reply) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(argv), reply[0], reply[1], reply[2])


@dataclass
class FakeNode(LabNode):
    name: str
    root: Path
    on_cmd: list[Handler] = field(default_factory=list)
    on_docker: list[Handler] = field(default_factory=list)
    states: dict[str, ProcessState] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    packets: dict[str, list[Any]] = field(default_factory=dict)  # interface -> what a capture there sees
    calls: list[list[str]] = field(default_factory=list)  # every command line the node was asked to run
    agent_socket: Path | None = None

    def argv_for(self, argv: Sequence[str]) -> list[str]:
        return ["fake-node", self.name, *argv]

    def run_argv(
        self, argv: list[str], *, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        if argv[:2] == ["fake-node", self.name]:
            command, handlers = argv[2:], self.on_cmd
            if command and command[0] == "env":  # env K=V … prefix from cmd(env=…)
                command = command[1:]
                while command and "=" in command[0]:
                    command = command[1:]
        else:  # docker -H unix://… args
            command, handlers = argv[3:], self.on_docker
        for handler in handlers:
            reply = handler(command)
            if reply is not None:
                return completed(argv, reply)
        return completed(argv, (127, "", f"fake node {self.name}: no handler for {command}"))

    @property
    def docker_sock(self) -> Path:
        return self.root / f"{self.name}-docker.sock"

    @property
    def agent_sock(self) -> Path:
        return self.agent_socket or self.root / f"{self.name}-agent.sock"

    @property
    def where(self) -> str:
        return f"fake {self.name}"

    def shell(self, command: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        return self.argv_for(command), dict(env)

    def processes(self) -> dict[str, ProcessState]:
        return dict(self.states)

    def start_process(self, name: str) -> None:
        if name not in self.states:
            raise NodeError(f"{self.name}: no process {name!r}")
        self.states[name] = ProcessState(name, True, 100)

    def stop_process(self, name: str, *, timeout_s: float | None = None) -> None:
        if name in self.states:
            self.states[name] = ProcessState(name, False, None, None, "exited 0")

    def signal_process(self, name: str, signal_number: int) -> None:
        self.states[name] = ProcessState(name, False, None, None, f"killed by signal {signal_number}")

    def log_names(self) -> list[str]:
        return sorted(self.logs)

    def log_size(self, name: str) -> int:
        return len(self.logs.get(name, ""))

    def log_text(self, name: str, start: int = 0) -> str:
        return self.logs.get(name, "")[start:]

    def log_where(self, name: str) -> str:
        return f"fake {self.name}/{name}.log"

    def plugin_ready(self) -> bool:
        return self.alive(self.plugin_process())

    @contextmanager
    def capture(self, interface: str, path: Path) -> Iterator[None]:
        yield
        wrpcap(str(path), self.packets.get(interface, []))


class FakePods:
    """A CNI runtime that answers ADD with a result and remembers the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail: dict[str, tuple[int, Any]] = {}  # command -> (status, output) to answer instead

    def pod_netns(self, node: LabNode, pod: str) -> str:
        return f"/run/netns/fake-{node.name}-{pod}"

    def call(
        self, node: LabNode, *, runtime: str, command: str, pod: str, ifname: str, prev_result: Any = None
    ) -> tuple[int, Any]:
        self.calls.append((node.name, command, pod))
        if command in self.fail:
            return self.fail[command]
        if command == "ADD":
            index = len([c for c in self.calls if c[1] == "ADD"])
            return 0, {
                "cniVersion": "1.1.0",
                "interfaces": [{"name": f"lxc{pod}"[:15]}, {"name": ifname, "sandbox": self.pod_netns(node, pod)}],
                "ips": [{"address": f"10.20.30.{index}/32", "interface": 1}],
            }
        return 0, None


@dataclass
class FakeLab(BaseLab[FakeNode]):
    backend: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[str]] = frozenset({"host-cni-runtime", "reboot"})
    scratch: Path = Path("/nonexistent")
    fake_pods: FakePods = field(default_factory=FakePods)
    started: list[tuple[str, str]] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.routers = {r.name: FakeNode(r.name, self.scratch) for r in self.topology.routers()}
        self.nodes = {n.name: FakeNode(n.name, self.scratch) for n in self.topology.nodes}

    @property
    def store_url(self) -> str:
        return "etcd://fake:2379"

    def _up(self, report: Progress | None) -> None:
        with self.step("fake bring-up", report):
            pass

    def down(self, *, keep_logs: Path | None = None) -> list[str]:
        return []

    def node_env(self, name: str) -> dict[str, str]:
        return {"PODNET_STORE": self.store_url}

    def _backend_state(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FakeLab:
        raise NotImplementedError

    def pods(self) -> PodRuntime:
        return self.fake_pods

    def start_process(self, node: str, name: str) -> None:
        self.started.append((node, name))
        self.node(node).start_process(name)

    def stop_process(self, node: str, name: str) -> None:
        self.stopped.append((node, name))
        self.node(node).stop_process(name)

    def save(self) -> None:
        """Nothing to persist."""

    def power_off(self, node: str) -> None:
        for name in list(self.node(node).states):
            self.node(node).signal_process(name, 9)
        self.started.append((node, "power-off"))

    def boot(self, node: str) -> None:
        for name in list(self.node(node).states):
            self.node(node).start_process(name)
        self.started.append((node, "boot"))


def fake_lab(tmp_path: Path, topology: str = "default") -> FakeLab:
    lab = FakeLab(load_topology(topology), run_id="fake01", scratch=tmp_path)
    for name in lab.workers:
        lab.node_info[name] = {"pod_cidr": "10.20.30.0/26", "router_ip": "10.20.30.1"}
        # As the topology has it: podnet-docker beside the agent (docker_plugin: process), or in it.
        plugin = ["podnet-docker"] if lab.topology.spec(name).docker_plugin == "process" else []
        for process in ("dockerd", "podnet-agent", *plugin):
            lab.nodes[name].states[process] = ProcessState(process, True, 100)
    control = lab.control
    if control is not None:
        for process in ("etcd", "podnet-operator"):
            control.states[process] = ProcessState(process, True, 100)
    for router in lab.routers.values():
        router.states["bird"] = ProcessState("bird", True, 100)
    return lab
