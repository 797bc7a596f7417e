"""A lab on the netns backend: a namespace per router (the ToR, or a fabric's spines and leaves) and
per node, on this machine.

`_up()` wires every link of the topology over its own underlay veth pair
(created directly inside the two namespaces, never in the machine's), starts
each router's bird, the control plane, and each worker's agent (and, with
`runtime: docker`, its dockerd, image and plugin) from the lab venv. Everything is named after the run id and recorded
in `<root>/lab.json`, so `lab down` (or `lab clean` after a crash) from
another process removes it all.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lab.backends.base import LabError, NodeError, Progress, Timing
from lab.backends.lab import BaseLab
from lab.backends.netns import reboot
from lab.backends.netns.host import lab_namespaces
from lab.backends.netns.node import NetnsNode
from lab.backends.netns.services import start_control_plane, start_router_bird
from lab.backends.netns.wiring import wire_underlay
from lab.backends.node import PodRuntime
from lab.deploy import lab_venv
from lab.image import IMAGE, build_rootfs_tar
from lab.model import cluster
from lab.model.topology import Topology

AGENT_START_S = 30.0  # one agent, from exec to serving, on a busy machine
AGENT_START_S_PER_WORKER = 0.5  # every agent starting beside it: ~0.8 CPU-s each, on 2 cores


def agent_start_timeout(workers: int) -> float:
    """How long a worker's agent may take to serve when `workers` agents start at once. A flat 30 s
    failed scale-64 on a loaded machine: node4's agent logged "serving" 18 s after its spawn, but its
    healthz (2 s timeout, polled by 64 threads of this process) did not answer the lab before 30 s."""
    return AGENT_START_S + AGENT_START_S_PER_WORKER * max(workers - 1, 0)


@dataclass
class NetnsLab(BaseLab[NetnsNode]):
    backend: ClassVar[str] = "netns"
    capabilities: ClassVar[frozenset[str]] = frozenset({"host-cni-runtime", "reboot", "fabric"})
    python: str = ""
    _pods: PodRuntime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.routers = {r.name: NetnsNode(r.name, self.run_id, self.root) for r in self.topology.routers()}
        self.nodes = {n.name: NetnsNode(n.name, self.run_id, self.root) for n in self.topology.nodes}

    @property
    def store_url(self) -> str:
        """etcd on the control node, or (no control node) one SQLite file every agent takes its pod CIDR from."""
        return cluster.control_store_url(self.topology) or f"sqlite://{self.root / 'cluster.db'}"

    @classmethod
    def leftovers(cls) -> list[str]:
        return lab_namespaces()

    # -- bring-up -------------------------------------------------------------------
    def _up(self, report: Progress | None) -> None:
        with self.step("lab venv (podnet wheel)", report):
            python, built = lab_venv()
            self.python = str(python)
        last = self.timings[-1]
        self.timings[-1] = Timing(
            f"{last.what}: {'built and installed' if built else 'cached'}", last.start, last.seconds
        )
        with self.step("namespaces and underlay", report):
            for node in self.all_nodes():
                node.create()
            wire_underlay(self.topology, self.routers, self.nodes)
        self.save()
        image = build_rootfs_tar(self.root / "busybox.tar")
        # Nodes are independent: bring them up side by side (mostly waiting on process start-up).
        # A worker's dockerd and image need nothing else, so they start at once, beside the routers'
        # bird and the control plane; its agent waits until the control node has registered the
        # workers (the operator serves them in that order), not for the operator's start.
        registered: Future[None] = Future()  # the agents' go; failed with the control plane, they never start

        def go() -> None:
            if not registered.done():
                registered.set_result(None)

        with ThreadPoolExecutor(max_workers=len(self.workers)) as pool:
            futures = [pool.submit(self._node_up, n, image, registered, report) for n in self.workers.values()]
            try:
                for router in self.routers.values():
                    with self.step(f"{router.name}: bird (BGP)", report):
                        start_router_bird(router, self.topology)
                if self.control is not None:
                    with self.step(f"{self.control.name}: etcd, node registrations, podnet-operator", report):
                        start_control_plane(self.control, self.topology, self.python, registered=go)
            except BaseException as err:
                if not registered.done():
                    registered.set_exception(err)
                raise
            go()
            for future in futures:
                future.result()
        self.save()

    def _node_up(self, node: NetnsNode, image: Path, registered: Future[None], report: Progress | None) -> None:
        docker = self.topology.spec(node.name).runtime == "docker"  # runtime cni: the agent and CNI only
        if docker:
            with self.step(f"{node.name}: dockerd", report):
                node.start_dockerd()
            with self.step(f"{node.name}: image {IMAGE}", report):
                node.import_image(image, IMAGE)
        in_agent = docker and self.topology.spec(node.name).docker_plugin == "agent"
        with ThreadPoolExecutor(max_workers=1) as beside:
            plugin = None
            if docker and not in_agent:  # podnet-docker asks the agent only when dockerd calls: started beside it
                plugin = beside.submit(self._start_plugin, node, report)
            registered.result()  # raises what failed on the control node: this worker's agent never starts
            with self.step(f"{node.name}: podnet-agent" + (" (serving the docker plugin)" if in_agent else ""), report):
                # With an operator, an agent may wait (or never get a pod CIDR): ready means serving healthz.
                settings = cluster.agent_settings(self.topology, node.name, self.store_url)
                node.start_agent(
                    self.python,
                    *cluster.as_flags(settings),
                    require_pod_cidr=self.control is None,
                    timeout_s=agent_start_timeout(len(self.workers)),
                    docker_plugin=cluster.in_agent_plugin_flags() if in_agent else None,
                )
            if plugin is not None:
                plugin.result()

    def _start_plugin(self, node: NetnsNode, report: Progress | None) -> None:
        with self.step(f"{node.name}: podnet-docker", report):
            node.start_plugin(self.python, *cluster.plugin_args())

    def pods(self) -> PodRuntime:
        """CNI pods run from this machine: libcni or the plugin exec'd, in the node's namespace."""
        if self._pods is None:
            from lab.backends.netns.pods import NetnsPods

            self._pods = NetnsPods(self.run_id, self.python)
        return self._pods

    def power_off(self, node: str) -> None:
        if node not in self.workers:
            raise LabError(f"only workers can be powered off here, not {node!r}")
        if self.topology.multi_homed(node):
            raise LabError(f"{node} is dual-homed: powering it off here handles one uplink only")
        reboot.power_off(self.nodes[node], self.topology.link_of(node).tor_ip)
        self.save()

    def boot(self, node: str) -> None:
        reboot.boot(self.nodes[node])
        self.save()

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
    def _backend_state(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "routers": {n: router.to_state() for n, router in self.routers.items()},
            "nodes": {n: node.to_state() for n, node in self.nodes.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NetnsLab:
        lab = cls(Topology.model_validate(state["topology"]), run_id=state["run_id"], python=state["python"])
        routers = state.get("routers") or {state["tor"]["name"]: state["tor"]}  # labs recorded before fabrics
        lab.routers = {n: NetnsNode.from_state(s, lab.run_id, lab.root) for n, s in routers.items()}
        lab.nodes = {n: NetnsNode.from_state(s, lab.run_id, lab.root) for n, s in state["nodes"].items()}
        lab._load_common(state)
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
        for router in self.routers.values():
            destroy(router)
        if keep_logs is not None:
            self.collect_logs(keep_logs)
        self._release_root()
        return errors
