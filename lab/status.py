"""`lab status`: what is up, per node."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lab.lab import Lab


def print_status(lab: Lab) -> None:
    from podnet.api.client import AgentClient
    from podnet.errors import PodnetError

    table = Table(title=f"lab {lab.run_id} ({lab.topology.name})", title_justify="left")
    for column in ("node", "namespace", "underlay", "processes", "pod CIDR", "agent"):
        table.add_column(column)
    links = {link.node: link for link in lab.topology.links()}
    table.add_row(lab.tor.name, lab.tor.netns, ", ".join(link.tor_ip for link in links.values()), "-", "-", "-")
    for name, node in lab.nodes.items():
        procs = ", ".join(f"{p}{'' if node.alive(p) else ' (dead)'}" for p in node.processes)
        if name not in lab.workers:
            table.add_row(name, node.netns, links[name].node_ip, procs, "-", f"control: {lab.store_url}")
            continue
        try:
            health = AgentClient(str(node.agent_sock), timeout=3).healthz()
            cidr, agent = health["pod-cidr"] or "none", health["state"]
            if not health["pod-cidr"]:
                agent += f" ({health['ipam']['message']})"
        except PodnetError as err:
            cidr, agent = "?", f"unreachable: {err}"
        table.add_row(name, node.netns, links[name].node_ip, procs, cidr, agent)
    Console(width=160).print(table)
