"""cfplug's kernel on a real machine: the host namespace it runs in, and pods under /run/netns, through `ip`."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from lab.conformance.kernel import Link, parse_links, parse_routes


class RealKernel:
    def _ip(self, *args: str) -> str:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OSError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    @staticmethod
    def _ns(netns: str) -> str:
        if not netns.startswith("/run/netns/"):
            raise OSError(f"{netns}: cfplug handles namespaces under /run/netns only")
        return netns.removeprefix("/run/netns/")

    def exists(self, netns: str) -> bool:
        return os.path.exists(netns)

    def veth(self, host: str, netns: str, ifname: str) -> None:
        ns = self._ns(netns)
        self._ip("link", "add", host, "type", "veth", "peer", "name", ifname, "netns", ns)
        self._ip("link", "set", host, "up")
        self._ip("-n", ns, "link", "set", ifname, "up")

    def link(self, netns: str | None, name: str) -> Link | None:
        args = ["-n", self._ns(netns)] if netns else []
        if netns and not self.exists(netns):
            return None
        proc = subprocess.run(["ip", *args, "-j", "-d", "addr", "show", "dev", name], capture_output=True, text=True)
        return parse_links(json.loads(proc.stdout)).get(name) if proc.returncode == 0 and proc.stdout.strip() else None

    def add_address(self, netns: str, name: str, cidr: str) -> None:
        self._ip("-n", self._ns(netns), "addr", "add", cidr, "dev", name)

    def add_route(self, netns: str, dst: str, gateway: str, name: str) -> None:
        self._ip("-n", self._ns(netns), "route", "add", dst, "via", gateway, "dev", name, "onlink")

    def delete_link(self, netns: str | None, name: str) -> None:
        args = ["-n", self._ns(netns)] if netns else []
        subprocess.run(["ip", *args, "link", "del", name], capture_output=True, check=False)

    def routes(self, netns: str) -> Any:
        return parse_routes(json.loads(self._ip("-n", self._ns(netns), "-j", "route", "show") or "[]"))
