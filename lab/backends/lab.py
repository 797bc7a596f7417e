"""A lab on some backend: a topology's ToR and nodes. `BaseLab.up()` is the one bring-up for every
backend, calling the backend's `_up()` for what differs; `Backend` is what the registry knows of one."""

from __future__ import annotations

import json
import secrets
import shutil
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

from lab.backends.base import CURRENT, LABS, LabError, NodeError, Progress, Timing, wait_for
from lab.backends.node import DockerHostFactory, LabNode, PodRuntime
from lab.model.status import AgentStatus, LabStatus, NodeStatus, ProcessStatus
from lab.model.topology import Topology

N = TypeVar("N", bound=LabNode, covariant=True)


def new_run_id() -> str:
    return secrets.token_hex(3)


@dataclass
class BaseLab(ABC, Generic[N]):
    """A lab on some backend: the ToR and nodes of a topology, as the backend's `LabNode`s.
    A backend's lab is a dataclass adding its own fields (with defaults) and making `tor` and
    `nodes` in `__post_init__`."""

    backend: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    topology: Topology
    run_id: str = field(default_factory=new_run_id)
    timings: list[Timing] = field(default_factory=list)
    up_seconds: float = 0.0
    node_info: dict[str, dict[str, str]] = field(default_factory=dict)  # worker -> pod_cidr, router_ip
    routers: Mapping[str, N] = field(init=False)  # the ToR, or a fabric's spines and leaves
    nodes: Mapping[str, N] = field(init=False)
    _up_started: float = field(default=0.0, init=False, repr=False)

    @property
    def root(self) -> Path:
        return LABS / self.run_id

    @property
    def tor(self) -> N:
        """The first router: the ToR of a one-ToR topology (a fabric's first spine)."""
        return next(iter(self.routers.values()))

    @tor.setter
    def tor(self, node: Any) -> None:
        """A one-ToR lab's routers: its ToR."""
        self.routers = {node.name: node}

    @property
    def control(self) -> N | None:
        spec = self.topology.control()
        return self.nodes[spec.name] if spec else None

    @property
    def workers(self) -> dict[str, N]:
        return {w.name: self.nodes[w.name] for w in self.topology.workers()}

    def all_nodes(self) -> Iterator[N]:
        yield from self.routers.values()
        yield from self.nodes.values()

    def node(self, name: str) -> N:
        if name in self.routers:
            return self.routers[name]
        try:
            return self.nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in this lab (nodes: {', '.join([*self.routers, *self.nodes])})") from None

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

    def power_off(self, node: str) -> None:
        """Capability reboot: the node off, as by a crash (what a reboot loses is lost)."""
        raise LabError(f"the {self.backend} backend cannot power nodes off (it lacks capability reboot)")

    def boot(self, node: str) -> None:
        """Capability reboot: a powered-off node on again, its processes started in order."""
        raise LabError(f"the {self.backend} backend cannot boot nodes (it lacks capability reboot)")

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
            where = "every router, over every equal path" if self.topology.is_fabric() else "the ToR"
            with self.step(f"BGP: every pod CIDR routed by {where}", report):
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
            start = t0 - (self._up_started or t0)
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
            return bool(health.get("pod-cidr")) or health["ipam"].get("reason") == "cluster-pool-exhausted"

        for node in self.workers.values():
            wait_for(partial(settled, node), timeout_s, f"a pod CIDR (or a reason) for {node.name}")

    def _wait_for_bgp(self, timeout_s: float = 60.0) -> None:
        """Every router's kernel routes every pod CIDR over every equal path (learned over BGP: via the
        node from its ToR or leaves, via the spines from other leaves, via the node's leaves from a spine),
        and every dual-homed node has its default from both leaves; records the pod CIDRs."""
        from podnet.errors import PodnetError

        self.node_info = {}
        for name in self.workers:
            try:
                info = self.nodes[name].agent(timeout=10).request("GET", "/v1/node")
            except PodnetError:  # waiting for a pod CIDR it may never get (an exhausted cluster pool)
                continue
            if info.get("pod-cidrs"):
                self.node_info[name] = {"pod_cidr": info["pod-cidrs"][0], "router_ip": info["router-ip"]}
        expected = {
            router: {info["pod_cidr"]: self.topology.next_hops(router, name) for name, info in self.node_info.items()}
            for router in self.routers
        }
        for name in self.workers:  # a dual-homed node: the default its agent learns, over both leaves
            uplinks = self.topology.uplinks(name)
            if len(uplinks) > 1:
                expected[name] = {"default": {link.upper_ip for link in uplinks}}
        pending = dict(expected)

        def present() -> bool:
            for router, want in list(pending.items()):
                table = bird_routes(self.routers[router] if router in self.routers else self.nodes[router])
                if any(table.get(cidr) != hops for cidr, hops in want.items()):
                    return False
                del pending[router]
            return True

        def missing() -> str:
            return "; ".join(
                f"{router}: " + ", ".join(f"{c} via {'+'.join(sorted(h))}" for c, h in want.items())
                for router, want in pending.items()
            )

        try:
            wait_for(present, timeout_s, "BGP routes", interval_s=0.1)
        except NodeError:
            raise NodeError(f"timed out after {timeout_s:.0f}s waiting for BGP routes on {missing()}") from None

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

    def status(self) -> LabStatus:
        """The lab as `lab status --json` prints it."""
        from podnet.errors import PodnetError

        nodes = []
        for node in self.all_nodes():
            role = self.topology.role(node.name)
            underlay: str | list[str] = (
                router_addresses(self.topology, node.name)
                if role in ("tor", "leaf", "spine")
                else self.topology.node_ip(node.name)
            )
            pod_cidr, agent = None, None
            if role == "worker":
                try:
                    health = node.agent(timeout=3).healthz()
                    pod_cidr = health.get("pod-cidr")
                    agent = AgentStatus(state=health["state"], message=health["ipam"]["message"])
                except (PodnetError, ValueError) as err:
                    agent = AgentStatus(state="unreachable", message=str(err))
            processes = [ProcessStatus(**p.as_json()) for p in node.processes().values()]
            nodes.append(
                NodeStatus(
                    name=node.name,
                    role=role,
                    where=node.where,
                    underlay_ip=underlay,
                    pod_cidr=pod_cidr,
                    processes=processes,
                    agent=agent,
                )
            )
        return LabStatus(
            run_id=self.run_id,
            topology=self.topology.name,
            backend=self.backend,
            store=self.store_url,
            up_seconds=round(self.up_seconds, 3),
            nodes=nodes,
        )


AnyLab = BaseLab[LabNode]  # a lab on any backend


def router_addresses(topology: Topology, name: str) -> list[str]:
    """A router's underlay addresses, one per link (below, then above)."""
    return [link.upper_ip for link in topology.downlinks(name)] + [link.lower_ip for link in topology.uplinks(name)]


DOWN = {"dead", "linkdown"}  # a next hop the kernel does not use (its link is down)


def bird_routes(node: LabNode) -> dict[str, set[str]]:
    """A node's routes from bird (proto bird) in its main table: prefix -> next hops (ECMP: several)."""
    out = node.cmd("ip", "-j", "route", "show", "proto", "bird").stdout
    table: dict[str, set[str]] = {}
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "")
        hops = [route] if "gateway" in route else route.get("nexthops", [])
        gateways = {str(hop["gateway"]) for hop in hops if "gateway" in hop and not DOWN & set(hop.get("flags", []))}
        table[dst if "/" in dst or dst == "default" else f"{dst}/32"] = gateways
    return table


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
    add_commands: Callable[[Any], None] = lambda sub: None  # its own `lab` subcommands, if any
    docker_host: DockerHostFactory | None = None  # a single dockerd node outside a lab (conformance suites)
