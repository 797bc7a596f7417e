"""Golden files (netlab style): each shipped topology → everything the model derives from it.

tests/unit/golden/topologies/<name>.txt holds, for lab/topologies/<name>.yaml, the
routers and nodes with their AS numbers and node IPs, every link (ends, interface
names, addresses), each worker's agent flags and each router's bird.conf. A change
in what a topology derives shows up here as a diff to review;
`PODNET_GOLDEN=update pytest tests/unit/test_topology_golden.py` rewrites the files.
The one-ToR topologies' files match, line for line, what the code derived before fabrics
existed (bird.conf, agent flags and TOML, addresses: compared when fabrics came in); they must not change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab.model import cluster
from lab.model.topology import TOPOLOGIES, Topology, load_topology

GOLDEN = Path(__file__).parent / "golden" / "topologies"
SHIPPED = sorted(p.stem for p in TOPOLOGIES.glob("*.yaml"))


def describe(topology: Topology) -> str:
    store = cluster.control_store_url(topology) or "sqlite:///cluster.db"
    lines = [f"# {topology.name}: what lab/model derives (tests/unit/test_topology_golden.py)", "routers:"]
    lines += [f"  {r.name} {r.tier} AS {r.asn}" for r in topology.routers()]
    lines.append("nodes:")
    for node in topology.nodes:
        lines.append(
            f"  {node.name} {node.role} AS {topology.asn(node.name)} node IP {topology.node_ip(node.name)}"
            f" runtime {node.runtime} uplinks {','.join(link.upper for link in topology.uplinks(node.name))}"
        )
    lines.append("links:")
    for link in topology.links():
        lines.append(
            f"  {link.index} {link.subnet}: {link.upper} {link.upper_if} {link.upper_ip}"
            f" <-> {link.lower} {link.lower_if} {link.lower_ip}"
        )
    for worker in topology.workers():
        lines.append(
            f"agent {worker.name}: {' '.join(cluster.as_flags(cluster.agent_settings(topology, worker.name, store)))}"
        )
    lines.append(f"registrations: {cluster.registrations(topology)}")
    for router in topology.routers():
        lines.append(f"bird.conf {router.name}:")
        lines += [f"  {line}" for line in cluster.router_config(topology, router.name).splitlines()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", SHIPPED)
def test_topology_derives_its_golden_file(name: str) -> None:
    got = describe(load_topology(name))
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("PODNET_GOLDEN") == "update":
        path.write_text(got)
    assert path.exists(), f"no golden file {path}: run with PODNET_GOLDEN=update and review it"
    assert got == path.read_text(), f"{name} derives something else than {path} (PODNET_GOLDEN=update to accept)"


def test_every_golden_file_has_its_topology() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == SHIPPED
