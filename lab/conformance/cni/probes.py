"""How the suite sees which IPs an IPAM holds: host-local's dataDir, podnet's agent."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass
class HostLocalProbe:
    """host-local keeps one file per allocated IP in `<dataDir>/<network name>/`, holding the owner."""

    data_dir: Path
    network: str

    @property
    def what(self) -> str:
        return f"host-local's dataDir {self.data_dir / self.network}"

    def held(self) -> dict[str, str]:
        found = {}
        directory = self.data_dir / self.network
        for path in directory.iterdir() if directory.is_dir() else []:
            try:
                ipaddress.ip_address(path.name)
            except ValueError:
                continue  # last_reserved_ip.0, lock
            found[path.name] = " ".join(path.read_text(errors="replace").split())
        return found


@dataclass
class PodnetProbe:
    """podnet's agent answers who holds each IP (`podnet ipam list`: GET /v1/ipam); the router IP is not a pod's."""

    socket: str

    @property
    def what(self) -> str:
        return f"podnet's agent at {self.socket} (podnet ipam list)"

    def held(self) -> dict[str, str]:
        from podnet.api.client import AgentClient

        state = AgentClient(self.socket, timeout=10).request("GET", "/v1/ipam")
        return {a["ip"]: a["owner"] for a in state["allocations"] if a["owner"] != "router"}
