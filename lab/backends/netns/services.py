"""The lab's shared services on netns nodes: each router's bird2, and the control node's etcd and podnet-operator.

Their settings come from lab.model.cluster (the same the Vagrant backend
renders as files); here they become process definitions on a node.
etcd listens on the control node's underlay IP, so every worker's agent
reaches it over the ToR, as in a real cluster. Routers' bird, etcd and the
operator run at niceness CONTROL_NICE, ahead of the workers. The workers are registered in
topology order before their agents start (see cluster.registrations).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from lab.backends.base import NodeError
from lab.backends.netns.node import NetnsNode
from lab.backends.netns.supervisor import ProcessSpec
from lab.model import cluster
from lab.model.topology import Topology

# The routers and the control plane run ahead of the workers' processes: in a cluster they have machines
# of their own; on this one, 64 agents starting at once left the operator ~3 % of a core (its 64 pod
# CIDRs took 9.8 s, 0.4 s of it its own start-up; bench/scale.py).
CONTROL_NICE = -10


def start_router_bird(tor: NetnsNode, topology: Topology) -> None:
    """bird2 on a router (the ToR, a leaf or a spine), as cluster.router_config renders it."""
    conf = tor.path("bird.conf")
    conf.write_text(cluster.router_config(topology, tor.name))
    check = tor.cmd("bird", "-p", "-c", str(conf), check=False)
    if check.returncode != 0:
        raise NodeError(f"bird rejected {conf}: {check.stderr.strip()}")
    ctl, pid = tor.path("run", "bird.ctl"), tor.path("run", "bird.pid")
    argv = ["bird", "-f", "-c", str(conf), "-s", str(ctl), "-P", str(pid)]
    tor.define("bird", ProcessSpec(argv, ready="bird", nice=CONTROL_NICE))
    tor.start_process("bird")


def start_control_plane(
    node: NetnsNode, topology: Topology, python: str, registered: Callable[[], None] | None = None
) -> str:
    """etcd, the workers' registrations and podnet-operator on the control node; the store URL.
    `registered` is called once the workers are registered, before the operator starts: their agents
    may start from then on (they wait for the operator's pod CIDRs)."""
    store = cluster.control_store_url(topology)
    assert store is not None, "the topology has no control node"
    binary = shutil.which("etcd")
    if binary is None:
        raise NodeError("etcd not found: install Debian's etcd-server (ci/bootstrap does)")
    ip = topology.node_ip(node.name)
    settings = cluster.etcd_settings(
        node.name, listen_ips=[ip, "127.0.0.1"], advertise_ip=ip, data_dir=str(node.path("etcd"))
    )
    node.define("etcd", ProcessSpec([binary, *cluster.etcd_flags(settings)], ready="etcd", nice=CONTROL_NICE))
    node.start_process("etcd")
    registrations = cluster.registrations(topology)  # one command for all: a Python start each costs ~0.3 s
    ips = [arg for _, ip in registrations for arg in ("--node-ip", ip)]
    node.cmd(python, "-m", "podnet.cli", "node", "register", *(w for w, _ in registrations), *ips, "--store", store)
    if registered is not None:
        registered()
    node.define(
        "podnet-operator",
        ProcessSpec([python, "-m", "podnet.cmd.operator", *cluster.operator_args(topology, store)], nice=CONTROL_NICE),
    )
    node.start_process("podnet-operator")
    return store
