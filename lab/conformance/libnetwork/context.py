"""What a libnetwork rule works with: the plugin's socket (spoken to directly, as dockerd does), and
the side dockerd runs on — its namespace's interfaces and a docker CLI for it (none in unit tests).

Every direct exchange is recorded (`Reply`); flows that need a network or an
endpoint make them the way dockerd would (IPAM first when the plugin is also
an IPAM driver) and remove them afterwards.
"""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from lab.conformance.model import CannotCheck, Failed

GATEWAY = "com.docker.network.gateway"
NETWORK_DRIVER, IPAM_DRIVER = "NetworkDriver", "IpamDriver"
# The addressing dockerd's own IPAM would give a network when the plugin is no IPAM driver.
DEFAULT_IPAM = {
    "AddressSpace": "LocalDefault",
    "Pool": "172.31.250.0/24",
    "Gateway": "172.31.250.1/24",
    "AuxAddresses": {},
}
DEFAULT_ADDRESS = "172.31.250.10/24"


class Side(Protocol):
    """Where dockerd (and the plugin's interfaces) live."""

    image: str

    def links(self) -> set[str]:
        """Interface names in dockerd's network namespace now."""
        ...

    def docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str] | None:
        """The docker CLI against this side's dockerd; None when there is none (unit tests)."""
        ...


Post = Callable[[str, bytes], tuple[int, bytes]]  # (path, body) -> (status, reply body)


@dataclass
class Subject:
    name: str
    description: str
    how: str
    post: Post  # one exchange with the plugin
    driver: str  # the name dockerd knows it by (network driver and IPAM driver)
    restart: Callable[[], None] | None = None  # stop and start the plugin (None: the suite cannot)
    probe: Callable[[], dict[str, list[str]]] | None = None  # what it holds: {"allocations": […], "networks": […]}
    known: dict[str, str] = field(default_factory=dict)
    settle_s: float = 10.0  # how long a deleted endpoint's interface may take to go


@dataclass
class Reply:
    path: str
    request: str
    status: int
    raw: str
    body: Any = None  # the JSON reply, or None

    @property
    def ok(self) -> bool:
        """Success as libnetwork takes it: 200 and no error message (Err; an IPAM reply's Error)."""
        if self.status != 200 or not isinstance(self.body, dict):
            return self.status == 200 and self.body is None
        return not self.body.get("Err") and not (self.path.startswith("/IpamDriver.") and self.body.get("Error"))

    def describe(self) -> str:
        shown = self.raw.strip() or "(empty body)"
        return f"POST {self.path} {self.request[:200]} -> HTTP {self.status} {shown[:400]}"


_ids = itertools.count()


@dataclass
class Context:
    subject: Subject
    side: Side
    implements: list[str]
    transcript: list[Reply] = field(default_factory=list)
    history: list[Reply] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    def ident(self, what: str) -> str:
        """An id as dockerd makes them (64 hex), recognisably the suite's."""
        return (f"cf{self.run_id}{what}{next(_ids):04d}".encode().hex() * 2)[:64]

    # -- the protocol ---------------------------------------------------------------------------
    def post(self, path: str, body: Any = None, *, raw: bytes | None = None) -> Reply:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        status, reply = self.subject.post(path, data)
        text = reply.decode(errors="replace")
        r = Reply(path, data.decode(errors="replace"), status, text)
        if text.strip():
            try:
                r.body = json.loads(text)
            except ValueError:
                r.body = None
        self.transcript.append(r)
        return r

    def must(self, path: str, body: Any = None) -> dict[str, Any]:
        r = self.post(path, body)
        if not r.ok:
            raise Failed(f"{path} failed", "HTTP 200 without an error", r.describe())
        return r.body if isinstance(r.body, dict) else {}

    def needs(self, interface: str) -> None:
        if interface not in self.implements:
            raise CannotCheck(f"the plugin does not implement {interface}")

    def docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        proc = self.side.docker(*args, timeout=timeout)
        if proc is None:
            raise CannotCheck("no dockerd on this side (the docker flows run on a real one)")
        return proc

    # -- flows as dockerd makes them ----------------------------------------------------------------
    @contextmanager
    def network(self) -> Iterator[dict[str, Any]]:
        """Pool, gateway and a container address (from the plugin when it is an IPAM driver), then
        CreateNetwork; all released afterwards. Yields {network_id, pool_id, pool, gateway, address}."""
        net: dict[str, Any] = {"network_id": self.ident("net"), "pool_id": "", "gateway": "", "address": ""}
        ipv4 = dict(DEFAULT_IPAM)
        try:
            if IPAM_DRIVER in self.implements:
                spaces = self.must("/IpamDriver.GetDefaultAddressSpaces")
                space = spaces.get("LocalDefaultAddressSpace", "")
                pool = self.must(
                    "/IpamDriver.RequestPool",
                    {"AddressSpace": space, "Pool": "", "SubPool": "", "Options": {}, "V6": False},
                )
                net["pool_id"], net["pool"] = pool.get("PoolID", ""), pool.get("Pool", "")
                gateway = (pool.get("Data") or {}).get(GATEWAY)
                if not gateway:
                    gateway = self.must(
                        "/IpamDriver.RequestAddress",
                        {"PoolID": net["pool_id"], "Address": "", "Options": {"RequestAddressType": GATEWAY}},
                    ).get("Address", "")
                    net["gateway_requested"] = True
                net["gateway"] = gateway
                net["address"] = self.must(
                    "/IpamDriver.RequestAddress", {"PoolID": net["pool_id"], "Address": "", "Options": {}}
                ).get("Address", "")
                ipv4 = {"AddressSpace": space, "Pool": net["pool"], "Gateway": gateway, "AuxAddresses": {}}
            else:
                net.update(pool=DEFAULT_IPAM["Pool"], gateway=DEFAULT_IPAM["Gateway"], address=DEFAULT_ADDRESS)
            if NETWORK_DRIVER in self.implements:
                self.must(
                    "/NetworkDriver.CreateNetwork",
                    {
                        "NetworkID": net["network_id"],
                        "IPv4Data": [ipv4],
                        "IPv6Data": [],
                        "Options": {"com.docker.network.generic": {}},
                    },
                )
                net["created"] = True
            yield net
        finally:
            if net.get("created"):
                self.post("/NetworkDriver.DeleteNetwork", {"NetworkID": net["network_id"]})
            if net["pool_id"]:
                for key in ("address", "gateway") if net.get("gateway_requested") else ("address",):
                    if net.get(key):
                        self.post("/IpamDriver.ReleaseAddress", {"PoolID": net["pool_id"], "Address": net[key]})
                self.post("/IpamDriver.ReleasePool", {"PoolID": net["pool_id"]})

    @contextmanager
    def endpoint(self, net: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """CreateEndpoint with the address dockerd would give, then Join; Leave and DeleteEndpoint after.
        Yields {endpoint_id, create: Reply, join: Reply}."""
        self.needs(NETWORK_DRIVER)
        ep: dict[str, Any] = {"endpoint_id": self.ident("ep")}
        ids = {"NetworkID": net["network_id"], "EndpointID": ep["endpoint_id"]}
        try:
            ep["create"] = self.post(
                "/NetworkDriver.CreateEndpoint",
                {**ids, "Interface": {"Address": net["address"], "AddressIPv6": "", "MacAddress": ""}, "Options": {}},
            )
            if not ep["create"].ok:
                raise Failed("CreateEndpoint failed", "HTTP 200", ep["create"].describe())
            ep["join"] = self.post(
                "/NetworkDriver.Join",
                {**ids, "SandboxKey": f"/var/run/docker/netns/{ep['endpoint_id'][:12]}", "Options": {}},
            )
            if not ep["join"].ok:
                raise Failed("Join failed", "HTTP 200", ep["join"].describe())
            yield ep
        finally:
            if "join" in ep:
                self.post("/NetworkDriver.Leave", ids)
            if "create" in ep:
                self.post("/NetworkDriver.DeleteEndpoint", ids)
