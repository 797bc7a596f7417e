"""The control node: the cluster's etcd (Debian etcd-server) and podnet-operator.

etcd listens on the control node's underlay IP, so every worker's agent
reaches it over the ToR, as in a real cluster. The lab registers the workers
in topology order before their agents start: the operator serves nodes in
registration order, and the seed's example (nodes 1–4 in the first cluster
CIDR, 5–8 in the second, node 9 without) depends on that order.
"""

from __future__ import annotations

import shutil

from lab.netns import NetnsNode, NodeError, wait_for
from lab.topology import Topology

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


def etcd_url(topology: Topology) -> str:
    control = topology.control()
    assert control is not None
    return f"etcd://{topology.node_ip(control.name)}:{ETCD_CLIENT_PORT}"


def start_etcd(node: NetnsNode, listen_ip: str, python: str, timeout_s: float = 30.0) -> None:
    binary = shutil.which("etcd")
    if binary is None:
        raise NodeError("etcd not found: install Debian's etcd-server (ci/bootstrap does)")
    client = f"http://{listen_ip}:{ETCD_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    node.start(
        "etcd",
        [
            binary,
            f"--name={node.name}",
            f"--data-dir={node.path('etcd')}",
            f"--listen-client-urls={client},http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={node.name}={peer}",
            "--log-level=warn",
        ],
    )
    probe = f"import urllib.request; urllib.request.urlopen('{client}/health', timeout=1).read()"

    def healthy() -> bool:
        if not node.alive("etcd"):
            raise NodeError(f"{node.name}: etcd exited; see {node.logs / 'etcd.log'}")
        return node.cmd(python, "-c", probe, check=False).returncode == 0

    wait_for(healthy, timeout_s, f"etcd on {node.name} ({client})", interval_s=0.2)


def start_control_plane(node: NetnsNode, topology: Topology, python: str) -> None:
    store = etcd_url(topology)
    start_etcd(node, topology.node_ip(node.name), python)
    for worker in topology.workers():
        node.cmd(
            python, "-m", "podnet.cli", "node", "register", worker.name,
            "--node-ip", topology.node_ip(worker.name), "--store", store,
        )  # fmt: skip
    cidrs = [a for c in topology.cluster_cidrs for a in ("--cluster-cidr", c)]
    mask = ["--mask-size", str(topology.mask_size)]
    node.start(
        "podnet-operator", [python, "-m", "podnet.cmd.operator", "--store", store, *cidrs, *mask, "--interval", "0.2"]
    )
