"""A lab's state after a scenario (for the report), and leaving the lab as a scenario found it."""

from __future__ import annotations

import json
from pathlib import Path

from lab.backends.base import NodeError
from lab.backends.lab import AnyLab


def dump(lab: AnyLab, dest: Path) -> None:
    """Per node: ip addr/route/neigh; on workers also docker ps / network ls and the agent's IPAM,
    endpoints and health (JSON, or the error that kept them from being read)."""
    from podnet.errors import PodnetError

    dest.mkdir(parents=True, exist_ok=True)
    for node in lab.all_nodes():
        lines = []
        try:
            for argv in (["ip", "-br", "addr"], ["ip", "route"], ["ip", "neigh"]):
                lines.append(f"$ {' '.join(argv)}\n{node.cmd(*argv, check=False).stdout}")
            if node.name in lab.workers:
                for argv in (["ps", "-a"], ["network", "ls"]):
                    lines.append(f"$ docker {' '.join(argv)}\n{node.docker(*argv, check=False).stdout}")
        except (NodeError, OSError) as err:
            lines.append(f"(could not read {node.name}: {err})")
        if node.name in lab.workers:
            client = node.agent(timeout=5)
            for name, path in (("ipam", "/v1/ipam"), ("endpoints", "/v1/endpoint"), ("healthz", "/v1/healthz")):
                try:
                    data = client.request("GET", path)
                except PodnetError as err:
                    data = {"error": str(err)}
                (dest / f"{node.name}-{name}.json").write_text(json.dumps(data, indent=2))
        (dest / f"{node.name}-net.txt").write_text("\n".join(lines))


def reset(lab: AnyLab) -> None:
    """Leave every worker as a scenario found it: no containers, no podnet networks."""
    for node in lab.workers.values():
        if not node.alive("dockerd"):
            continue
        ids = node.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            node.docker("rm", "-f", *ids, check=False)
        nets = node.docker("network", "ls", "-q", "--filter", "driver=podnet", check=False).stdout.split()
        if nets:
            node.docker("network", "rm", *nets, check=False)
