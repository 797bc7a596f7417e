"""`lab status`: what is up, per node."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lab.lab import AnyLab


def print_status(lab: AnyLab) -> None:
    from podnet.api.client import AgentClient
    from podnet.errors import PodnetError

    table = Table(title=f"lab {lab.run_id} ({lab.topology.name}, {lab.backend})", title_justify="left")
    for column in ("node", "where", "underlay", "processes", "pod CIDR", "agent"):
        table.add_column(column)
    links = {link.node: link for link in lab.topology.links()}
    table.add_row(lab.tor.name, lab.tor.where, ", ".join(link.tor_ip for link in links.values()), "-", "-", "-")
    for name, node in lab.nodes.items():
        procs = ", ".join(f"{p}{'' if alive else ' (dead)'}" for p, alive in node.process_states().items())
        if name not in lab.workers:
            table.add_row(name, node.where, links[name].node_ip, procs, "-", f"control: {lab.store_url}")
            continue
        try:
            health = AgentClient(str(node.agent_sock), timeout=3).healthz()
            cidr, agent = health["pod-cidr"] or "none", health["state"]
            if not health["pod-cidr"]:
                agent += f" ({health['ipam']['message']})"
        except PodnetError as err:
            cidr, agent = "?", f"unreachable: {err}"
        table.add_row(name, node.where, links[name].node_ip, procs, cidr, agent)
    Console(width=160).print(table)
