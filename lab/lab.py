"""A running lab on the netns backend: a ToR namespace and node namespaces.

`Lab.up()` wires each node to the ToR over its own underlay veth pair (created
directly inside the two namespaces, never in the machine's), starts each
node's dockerd, imports the image, and starts podnet's agent and plugin from
the lab venv. Everything is named after the run id and recorded in
`<root>/lab.json`, so `lab down` (or `lab clean` after a crash) from another
process removes it all.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from lab.bgp import start_tor_bird, wait_for_pod_routes
from lab.control import etcd_url, start_control_plane
from lab.deploy import cni_binary, lab_venv
from lab.image import IMAGE, build_rootfs_tar
from lab.netns import NetnsNode, remove_tree
from lab.node import LabNode, NodeError, wait_for
from lab.nodeconfig import agent_settings, as_flags
from lab.topology import Topology

LABS = Path("/var/tmp/podnet-lab")
CURRENT = LABS / "current"


class LabError(RuntimeError):
    pass


N = TypeVar("N", bound=LabNode, covariant=True)


class BaseLab(ABC, Generic[N]):
    """A lab on some backend: the ToR and nodes of a topology, as the backend's `LabNode`s."""

    backend: ClassVar[str]
    topology: Topology
    run_id: str
    timings: list[tuple[str, float]]
    up_seconds: float
    tor: N
    nodes: Mapping[str, N]

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

    def _claim_root(self) -> None:
        """Refuse to start over another lab or its leftovers; make this run the current lab."""
        leftovers = existing_labs()
        if leftovers:
            raise LabError(
                f"a lab is already set up or was left behind ({', '.join(leftovers)}): run `lab down` or `lab clean` first"
            )
        self.root.mkdir(parents=True)
        CURRENT.unlink(missing_ok=True)
        CURRENT.symlink_to(self.root)

    def _release_root(self) -> None:
        remove_tree(self.root)
        if CURRENT.is_symlink() and not CURRENT.exists():
            CURRENT.unlink()

    @contextmanager
    def step(self, what: str, report: Callable[[str], None] | None = None) -> Iterator[None]:
        if report:
            report(what)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings.append((what, time.perf_counter() - t0))

    @property
    @abstractmethod
    def store_url(self) -> str: ...

    @abstractmethod
    def up(self, report: Callable[[str], None] | None = None) -> None: ...

    @abstractmethod
    def down(self, *, keep_logs: Path | None = None) -> list[str]: ...

    @abstractmethod
    def save(self) -> None: ...

    @abstractmethod
    def start_process(self, node: str, name: str) -> None: ...

    @abstractmethod
    def stop_process(self, node: str, name: str) -> None: ...

    @abstractmethod
    def node_env(self, name: str) -> dict[str, str]:
        """What a shell on the node sees: its dockerd, its agent, the cluster store, podnet's commands."""

    @abstractmethod
    def cni_plugin(self) -> Path: ...

    @abstractmethod
    def collect_logs(self, dest: Path) -> None:
        """Copy every node's logs to dest/<node>/."""

    def pod_cidr(self, node: str) -> str | None:
        """The node's pod CIDR, or None while its agent waits for one."""
        health = self.nodes[node].agent_health()
        return None if health is None else health.get("pod-cidr")

    def _wait_for_pod_cidrs(self, timeout_s: float = 30.0) -> None:
        """Every worker has a pod CIDR or a definite reason why not (the pool is exhausted)."""

        def settled(node: LabNode) -> bool:
            health = node.agent_health()
            if health is None:
                return False
            return bool(health.get("pod-cidr")) or "exhausted" in health["ipam"]["message"]

        for node in self.workers.values():
            wait_for(partial(settled, node), timeout_s, f"a pod CIDR (or a reason) for {node.name}")

    def _wait_for_bgp(self) -> None:
        cidrs = {name: self.pod_cidr(name) for name in self.workers}
        expected = {cidr: self.topology.node_ip(name) for name, cidr in cidrs.items() if cidr}
        wait_for_pod_routes(self.tor, expected)

    @classmethod
    def load(cls, root: Path | None = None) -> AnyLab:
        """The lab that is up (or the one at root), on whichever backend made it."""
        root = root or (CURRENT.resolve() if CURRENT.exists() else None)
        if root is None or not (root / "lab.json").exists():
            raise LabError("no lab is up (start one with `lab up`)")
        state: dict[str, Any] = json.loads((root / "lab.json").read_text())
        if state.get("backend", "netns") == "vagrant":
            from lab.vagrant_lab import VagrantLab

            return VagrantLab.from_state(state)
        return Lab.from_state(state)


@dataclass
class Lab(BaseLab[NetnsNode]):
    """The netns backend."""

    backend: ClassVar[str] = "netns"
    topology: Topology
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    python: str = ""
    timings: list[tuple[str, float]] = field(default_factory=list)  # per step; nodes' steps overlap
    up_seconds: float = 0.0  # wall clock of the whole bring-up
    _cni_plugin: Path | None = field(default=None, init=False, repr=False)
    tor: NetnsNode = field(init=False)
    nodes: dict[str, NetnsNode] = field(init=False)

    def __post_init__(self) -> None:
        self.tor = NetnsNode(self.topology.tor.name, self.run_id, self.root)
        self.nodes = {n.name: NetnsNode(n.name, self.run_id, self.root) for n in self.topology.nodes}

    @property
    def store_url(self) -> str:
        """The cluster's store: etcd on the control node, or (no control node) one
        SQLite file that every agent takes its pod CIDR from."""
        if self.topology.control() is not None:
            return etcd_url(self.topology)
        return f"sqlite://{self.root / 'cluster.db'}"

    # -- bring-up -------------------------------------------------------------------
    def up(self, report: Callable[[str], None] | None = None) -> None:
        self._claim_root()
        started = time.perf_counter()
        try:
            with self.step("lab venv (podnet wheel)", report):
                python, built = lab_venv()
                self.python = str(python)
            what, seconds = self.timings[-1]
            self.timings[-1] = (f"{what}: {'built and installed' if built else 'cached'}", seconds)
            with self.step("namespaces and underlay", report):
                for node in self.all_nodes():
                    node.create()
                self._wire_underlay()
            self.save()
            with self.step(f"{self.tor.name}: bird (BGP)", report):
                start_tor_bird(self.tor, self.topology)
            self.save()
            if self.control is not None:
                with self.step(f"{self.control.name}: etcd, node registrations, podnet-operator", report):
                    start_control_plane(self.control, self.topology, self.python)
                self.save()
            image = build_rootfs_tar(self.root / "busybox.tar")
            # Nodes are independent: bring them up side by side (mostly waiting on process start-up).
            with ThreadPoolExecutor(max_workers=len(self.workers)) as pool:
                for future in [pool.submit(self._node_up, node, image, report) for node in self.workers.values()]:
                    future.result()
            self.save()
            if self.control is not None:
                with self.step("pod CIDRs from podnet-operator", report):
                    self._wait_for_pod_cidrs()
            with self.step("BGP: every pod CIDR routed by the ToR", report):
                self._wait_for_bgp()
        except BaseException:
            self.save()
            raise
        self.up_seconds = time.perf_counter() - started
        self.save()

    def agent_args(self, name: str) -> list[str]:
        return as_flags(agent_settings(self.topology, name, self.store_url))

    def start_process(self, node: str, name: str) -> None:
        if name == "podnet-agent":
            self.nodes[node].start_agent(self.python, *self.agent_args(node), require_pod_cidr=self.control is None)
        elif name == "podnet-docker":
            self.nodes[node].start_plugin(self.python, "--log-level", "debug")
        else:
            raise LabError(f"cannot start {name!r} (podnet-agent or podnet-docker)")
        self.save()

    def stop_process(self, node: str, name: str) -> None:
        self.node(node).stop(name)
        self.save()

    def _node_up(self, node: NetnsNode, image: Path, report: Callable[[str], None] | None) -> None:
        with self.step(f"{node.name}: dockerd", report):
            node.start_dockerd()
        with self.step(f"{node.name}: image {IMAGE}", report):
            node.import_image(image, IMAGE)
        with self.step(f"{node.name}: podnet-agent", report):
            # With an operator, an agent may wait (or never get a pod CIDR): ready means serving healthz.
            node.start_agent(self.python, *self.agent_args(node.name), require_pod_cidr=self.control is None)
        with self.step(f"{node.name}: podnet-docker", report):
            node.start_plugin(self.python, "--log-level", "debug")  # plugin_calls checks read this log

    def _wire_underlay(self) -> None:
        for link in self.topology.links():
            node = self.nodes[link.node]
            subprocess.run(
                [
                    "ip",
                    "link",
                    "add",
                    "uplink",
                    "netns",
                    node.netns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    f"to-{link.node}",
                    "netns",
                    self.tor.netns,
                ],
                check=True,
                capture_output=True,
            )
            node.cmd("ip", "addr", "add", f"{link.node_ip}/30", "dev", "uplink")
            node.cmd("ip", "link", "set", "uplink", "up")
            node.cmd("ip", "route", "add", "default", "via", link.tor_ip)
            self.tor.cmd("ip", "addr", "add", f"{link.tor_ip}/30", "dev", f"to-{link.node}")
            self.tor.cmd("ip", "link", "set", f"to-{link.node}", "up")
        self.tor.cmd("sysctl", "-qw", "net.ipv4.ip_forward=1")

    def cni_plugin(self) -> Path:
        """podnet's compiled CNI plugin in the lab venv (what a node's CNI bin dir holds as `podnet`)."""
        if self._cni_plugin is None:
            self._cni_plugin = cni_binary(self.python)
        return self._cni_plugin

    def collect_logs(self, dest: Path) -> None:
        import shutil

        for node in self.all_nodes():
            if node.logs.is_dir():
                shutil.copytree(node.logs, dest / node.name, dirs_exist_ok=True)

    def node_env(self, name: str) -> dict[str, str]:
        node = self.node(name)
        env = {
            "DOCKER_HOST": f"unix://{node.docker_sock}",
            "PODNET_SOCKET": str(node.agent_sock),
            "PODNET_STORE": self.store_url,
        }
        if self.python:
            env["PATH"] = f"{Path(self.python).parent}:{os.environ.get('PATH', '')}"
        return env

    # -- state ------------------------------------------------------------------------
    def save(self) -> None:
        state = {
            "run_id": self.run_id,
            "topology": self.topology.model_dump(),
            "python": self.python,
            "tor": self.tor.to_state(),
            "nodes": {n: node.to_state() for n, node in self.nodes.items()},
            "timings": self.timings,
            "up_seconds": self.up_seconds,
        }
        (self.root / "lab.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Lab:
        lab = cls(Topology.model_validate(state["topology"]), run_id=state["run_id"], python=state["python"])
        lab.tor = NetnsNode.from_state(state["tor"], lab.run_id, lab.root)
        lab.nodes = {n: NetnsNode.from_state(s, lab.run_id, lab.root) for n, s in state["nodes"].items()}
        lab.timings = [(str(w), float(s)) for w, s in state.get("timings", [])]
        lab.up_seconds = float(state.get("up_seconds", 0.0))
        return lab

    # -- teardown --------------------------------------------------------------------
    def down(self, *, keep_logs: Path | None = None) -> list[str]:
        errors: list[str] = []

        def destroy(node: NetnsNode) -> None:
            try:
                node.destroy()
            except NodeError as err:
                errors.append(str(err))

        # Workers first, while etcd on the control node still answers: an agent
        # busy with the store when asked to stop would otherwise hang until killed.
        control = [n for n in self.nodes.values() if self.control is not None and n.name == self.control.name]
        workers = [n for n in self.nodes.values() if n not in control]
        with ThreadPoolExecutor(max_workers=len(workers) or 1) as pool:
            list(pool.map(destroy, workers))
        for node in control:
            destroy(node)
        destroy(self.tor)
        if keep_logs is not None:
            self.collect_logs(keep_logs)
        self._release_root()
        return errors


AnyLab = BaseLab[LabNode]  # a lab on either backend


def make_lab(topology: Topology, backend: str = "netns") -> AnyLab:
    """A lab (not yet up) of the topology on the backend: netns or vagrant."""
    if backend == "vagrant":
        from lab.vagrant_lab import VagrantLab

        return VagrantLab(topology)
    if backend != "netns":
        raise LabError(f"unknown backend {backend!r} (netns or vagrant)")
    return Lab(topology)


def existing_labs() -> list[str]:
    found = set()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found |= {line.split()[0] for line in out.splitlines() if line.startswith("pn-")}
    if LABS.is_dir():
        found |= {str(p) for p in LABS.iterdir() if p.is_dir() and not p.is_symlink() and (p / "lab.json").exists()}
    return sorted(found)
