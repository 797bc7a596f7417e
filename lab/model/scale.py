"""Smaller labs of the same shape as a shipped one: `derive(topology, workers)` keeps the first
`workers` workers (in file order), the control node, the leaves those nodes are wired to and every
spine, with every other setting unchanged. A fabric grows by racks: scale-64's 8 workers fill half
of rack 1, 16 all of it, 32 racks 1 and 2. Everything else (links, addresses, AS numbers, the
agents' flags) is derived from the result as from any topology (topology.py), and validated the
same way, so a derived lab is one `lab up` accepts (bench/scale.py writes it to a file)."""

from __future__ import annotations

from pathlib import Path

import yaml

from lab.model.topology import Topology, TopologyError


def derive(topology: Topology, workers: int) -> Topology:
    """The topology with only its first `workers` workers (and what they need)."""
    have = topology.workers()
    if not 1 <= workers <= len(have):
        raise TopologyError(f"{topology.name}: cannot derive {workers} workers (it has 1 to {len(have)})")
    keep = {n.name for n in have[:workers]} | {n.name for n in topology.nodes if n.role == "control"}
    nodes = [n for n in topology.nodes if n.name in keep]
    used = {up for n in nodes for up in n.uplinks}
    data = topology.model_dump(exclude_defaults=True)
    data["name"] = _name(topology.name, workers)
    data["nodes"] = [n.model_dump(exclude_defaults=True) for n in nodes]
    if topology.leaves:
        data["leaves"] = [leaf.model_dump(exclude_defaults=True) for leaf in topology.leaves if leaf.name in used]
    try:
        return Topology.model_validate(data)
    except ValueError as err:
        raise TopologyError(f"{topology.name} with {workers} workers: {err}") from None


def _name(name: str, workers: int) -> str:
    """scale-64 → scale-8; another name gets the count appended (scale-8 of spine-leaf: spine-leaf-w8)."""
    stem, sep, last = name.rpartition("-")
    return f"{stem}-{workers}" if sep and last.isdigit() else f"{name}-w{workers}"


def write(topology: Topology, directory: Path) -> Path:
    """The topology as a file `lab up --topology` reads (its name.yaml in `directory`)."""
    path = directory / f"{topology.name}.yaml"
    path.write_text(yaml.safe_dump(topology.model_dump(exclude_defaults=True), sort_keys=False))
    return path
