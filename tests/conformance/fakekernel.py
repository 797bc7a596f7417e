"""A fake kernel for the conformance suites' unit tests: namespaces, veth pairs, addresses and routes
as dicts, and plugins run in-process (the suite's `Kernel` and cfplug's `PluginKernel` at once)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.conformance.kernel import Exec, Link, Route

Plugin = Callable[[dict[str, str], bytes], tuple[int, str]]


@dataclass
class FakeLink:
    name: str
    mac: str
    addresses: list[str] = field(default_factory=list)
    peer: tuple[str | None, str] | None = None  # (namespace, name) of the other end of a veth


class FakeKernel:
    HOST = None

    def __init__(self) -> None:
        self.namespaces: dict[str | None, dict[str, FakeLink]] = {None: {}}
        self.route_tables: dict[str | None, list[Route]] = {None: []}
        self.plugins: dict[str, Plugin] = {}
        self.lock = threading.RLock()
        self._macs = itertools.count(1)
        self._pods = itertools.count()

    def _mac(self) -> str:
        n = next(self._macs)
        return f"02:fa:00:00:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"

    # -- the suite's Kernel ------------------------------------------------------------------------
    def new_pod(self) -> str:
        with self.lock:
            path = f"/run/netns/fake-p{next(self._pods)}"
            self.namespaces[path], self.route_tables[path] = {}, []
            return path

    def remove_pod(self, netns: str) -> None:
        with self.lock:
            for name in list(self.namespaces.get(netns, {})):
                self.delete_link(netns, name)
            self.namespaces.pop(netns, None)
            self.route_tables.pop(netns, None)

    def links(self, netns: str | None) -> dict[str, Link]:
        with self.lock:
            return {
                n: Link(n, x.mac, tuple(x.addresses), "veth" if x.peer else "")
                for n, x in self.namespaces[netns].items()
            }

    def routes(self, netns: str | None) -> list[Route]:
        with self.lock:
            return list(self.route_tables[netns])

    def delete_link(self, netns: str | None, name: str) -> None:
        with self.lock:
            link = self.namespaces.get(netns, {}).pop(name, None)
            if link is None:
                return
            self.route_tables[netns] = [r for r in self.route_tables.get(netns, []) if r.dev != name]
            if link.peer is not None:
                other_ns, other = link.peer
                self.namespaces.get(other_ns, {}).pop(other, None)
                if other_ns in self.route_tables:
                    self.route_tables[other_ns] = [r for r in self.route_tables[other_ns] if r.dev != other]

    def delete_address(self, netns: str | None, name: str, cidr: str) -> None:
        with self.lock:
            self.namespaces[netns][name].addresses.remove(cidr)

    def add_veth(self, netns: str | None, name: str, peer: str) -> None:
        with self.lock:
            space = self.namespaces[netns]
            if name in space or peer in space:
                raise OSError(f"{name} or {peer}: File exists")
            space[name] = FakeLink(name, self._mac(), peer=(netns, peer))
            space[peer] = FakeLink(peer, self._mac(), peer=(netns, name))

    def run(self, argv: Sequence[str], env: Mapping[str, str], stdin: bytes, timeout: float = 60.0) -> Exec:
        plugin = self.plugins.get(argv[0])
        if plugin is None:
            return Exec(127, b"", f"env: '{argv[0]}': No such file or directory".encode(), 0.0)
        status, out = plugin(dict(env), stdin)
        return Exec(status, out.encode() + (b"\n" if out else b""), b"", 0.0)

    # -- cfplug's PluginKernel -----------------------------------------------------------------------
    def exists(self, netns: str) -> bool:
        with self.lock:
            return netns in self.namespaces

    def veth(self, host: str, netns: str, ifname: str) -> None:
        with self.lock:
            if netns not in self.namespaces:
                raise OSError(f"{netns}: no such namespace")
            if ifname in self.namespaces[netns] or host in self.namespaces[None]:
                raise OSError("File exists")
            self.namespaces[None][host] = FakeLink(host, self._mac(), peer=(netns, ifname))
            self.namespaces[netns][ifname] = FakeLink(ifname, self._mac(), peer=(None, host))

    def link(self, netns: str | None, name: str) -> Link | None:
        with self.lock:
            if netns not in self.namespaces:
                return None
            return self.links(netns).get(name)

    def add_address(self, netns: str, name: str, cidr: str) -> None:
        with self.lock:
            self.namespaces[netns][name].addresses.append(cidr)

    def add_route(self, netns: str, dst: str, gateway: str, name: str) -> None:
        with self.lock:
            self.route_tables[netns].append(Route(dst, gateway, name))

    def set_mac(self, netns: str, name: str, mac: str) -> None:
        with self.lock:
            self.namespaces[netns][name].mac = mac


class FakeTuning:
    """tuning as the suite chains it: claims 0.3.0–1.0.0, needs prevResult, sets `mac`, passes the rest on."""

    VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")

    def __init__(self, kernel: FakeKernel):
        self.kernel = kernel

    def main(self, env: dict[str, str], stdin: bytes) -> tuple[int, str]:
        if env.get("CNI_COMMAND") == "VERSION":
            return 0, json.dumps({"cniVersion": "1.0.0", "supportedVersions": list(self.VERSIONS)})
        conf: dict[str, Any] = json.loads(stdin)
        if conf.get("cniVersion") not in self.VERSIONS:
            return 1, json.dumps({"code": 1, "msg": "incompatible CNI versions"})
        if env["CNI_COMMAND"] != "ADD":
            return 0, ""
        result = conf.get("prevResult")
        if not isinstance(result, dict):
            return 1, json.dumps({"code": 7, "msg": "Required prevResult missing"})
        if "mac" in conf:
            self.kernel.set_mac(env["CNI_NETNS"], env["CNI_IFNAME"], conf["mac"])
            for interface in result.get("interfaces", []):
                if interface.get("name") == env["CNI_IFNAME"]:
                    interface["mac"] = conf["mac"]
        return 0, json.dumps({**result, "cniVersion": conf["cniVersion"]})
