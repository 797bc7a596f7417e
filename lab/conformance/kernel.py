"""The suites' view of the kernel: links and routes of a namespace, namespaces the suite makes.

`Kernel` is what a rule may look at or tamper with; `Namespaces` is the real
one: every namespace it makes is named `pn-cf<run>-…` (so `lab clean` knows
it), made with `ip netns add`, read with `ip -j` through `nsenter --net`, and
removed by `close()`. Nothing here touches this machine's own namespace. Unit
tests give the suites a fake kernel instead.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

NETNS_DIR = Path("/run/netns")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Link:
    name: str
    mac: str = ""
    addresses: tuple[str, ...] = ()  # CIDRs
    kind: str = ""
    mtu: int = 0


@dataclass(frozen=True)
class Route:
    dst: str  # CIDR; the default route is 0.0.0.0/0 (::/0)
    gateway: str = ""
    dev: str = ""


@dataclass(frozen=True)
class Exec:
    status: int
    stdout: bytes
    stderr: bytes
    seconds: float


class Kernel(Protocol):
    """Namespaces (None: the subject's host namespace) as the rules see and change them."""

    def new_pod(self) -> str:
        """A new pod network namespace; its path (CNI_NETNS)."""
        ...

    def remove_pod(self, netns: str) -> None: ...
    def links(self, netns: str | None) -> dict[str, Link]: ...
    def routes(self, netns: str | None) -> list[Route]: ...
    def delete_link(self, netns: str | None, name: str) -> None: ...
    def delete_address(self, netns: str | None, name: str, cidr: str) -> None: ...
    def add_veth(self, netns: str | None, name: str, peer: str) -> None:
        """A veth pair, both ends in the namespace, up."""
        ...

    def run(self, argv: Sequence[str], env: Mapping[str, str], stdin: bytes, timeout: float = 60.0) -> Exec:
        """Run a plugin in the host namespace with exactly this environment (and PATH)."""
        ...


def parse_links(data: list[dict[str, Any]]) -> dict[str, Link]:
    """`ip -j -d addr show` -> name -> Link."""
    links = {}
    for item in data:
        name = str(item.get("ifname", ""))
        addresses = tuple(
            f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", []) if a.get("family") in ("inet", "inet6")
        )
        kind = str((item.get("linkinfo") or {}).get("info_kind", ""))
        links[name] = Link(name, str(item.get("address", "")), addresses, kind, int(item.get("mtu", 0)))
    return links


def parse_routes(data: list[dict[str, Any]], family: int = 4) -> list[Route]:
    """`ip -j route show` -> routes, destinations as CIDRs."""
    routes = []
    for item in data:
        dst = str(item.get("dst", ""))
        if dst == "default":
            dst = "0.0.0.0/0" if family == 4 else "::/0"
        elif "/" not in dst:
            dst = f"{dst}/{32 if family == 4 else 128}"
        routes.append(Route(dst, str(item.get("gateway", "")), str(item.get("dev", ""))))
    return routes


@dataclass
class Namespaces:
    """The real kernel: a host namespace for one subject, and the pod namespaces of its attachments."""

    tag: str  # names the subject in namespace names
    run_id: str = field(default_factory=lambda: secrets.token_hex(2))
    pods: list[str] = field(default_factory=list)
    _made: bool = False

    @property
    def host(self) -> str:
        return f"pn-cf{self.run_id}-{self.tag}"

    @property
    def host_path(self) -> str:
        return str(NETNS_DIR / self.host)

    def _ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def create(self) -> Namespaces:
        self._ip("netns", "add", self.host)
        self._made = True
        self.cmd(None, "ip", "link", "set", "lo", "up")
        return self

    def argv_for(self, netns: str | None, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={netns or self.host_path}", *argv]

    def cmd(self, netns: str | None, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv_for(netns, argv), capture_output=True, text=True, check=False, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {netns or self.host}: {(proc.stderr or proc.stdout).strip()}")
        return proc

    # -- Kernel --------------------------------------------------------------------------
    def new_pod(self) -> str:
        name = f"{self.host}-p{len(self.pods)}"
        self._ip("netns", "add", name)
        path = str(NETNS_DIR / name)
        self.pods.append(path)
        self.cmd(path, "ip", "link", "set", "lo", "up")
        return path

    def remove_pod(self, netns: str) -> None:
        if Path(netns).exists():
            self._ip("netns", "del", Path(netns).name, check=False)

    def links(self, netns: str | None) -> dict[str, Link]:
        proc = self.cmd(netns, "ip", "-j", "-d", "addr", "show")
        return parse_links(json.loads(proc.stdout or "[]"))

    def routes(self, netns: str | None) -> list[Route]:
        v4 = json.loads(self.cmd(netns, "ip", "-j", "-4", "route", "show").stdout or "[]")
        v6 = json.loads(self.cmd(netns, "ip", "-j", "-6", "route", "show").stdout or "[]")
        return parse_routes(v4, 4) + parse_routes(v6, 6)

    def delete_link(self, netns: str | None, name: str) -> None:
        self.cmd(netns, "ip", "link", "del", name)

    def delete_address(self, netns: str | None, name: str, cidr: str) -> None:
        self.cmd(netns, "ip", "addr", "del", cidr, "dev", name)

    def add_veth(self, netns: str | None, name: str, peer: str) -> None:
        self.cmd(netns, "ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        self.cmd(netns, "ip", "link", "set", name, "up")
        self.cmd(netns, "ip", "link", "set", peer, "up")

    def run(self, argv: Sequence[str], env: Mapping[str, str], stdin: bytes, timeout: float = 60.0) -> Exec:
        environment = {"PATH": PATH, **env}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                self.argv_for(None, ["env", "-i", *(f"{k}={v}" for k, v in environment.items()), *argv]),
                input=stdin,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            return Exec(-1, err.stdout or b"", b"timed out after %ds" % int(timeout), time.perf_counter() - t0)
        return Exec(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)

    def close(self) -> None:
        """Remove every namespace this made (pods first)."""
        for path in self.pods:
            self.remove_pod(path)
        if self._made and os.path.exists(self.host_path):
            self._ip("netns", "del", self.host, check=False)
        self._made = False
