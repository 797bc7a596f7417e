"""The libnetwork remote API calls podnet answers, as plain functions of the request.

Each handler takes the decoded JSON body and returns the JSON reply, raising
`PluginError` with a message for the user (dockerd shows it at the CLI).
Everything here is stateless: state lives in the agent.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podnet.api.client import AgentError
from podnet.datapath.names import temp_ifname
from podnet.docker.calls import AgentCalls
from podnet.errors import PodnetError, Reason

GATEWAY_TYPE = "com.docker.network.gateway"
LOCAL_SPACE = "podnet-local"
GLOBAL_SPACE = "podnet-global"
POOL_PREFIX = "podnet:"
IPAM_OWNER = "docker-ipam"
ROUTE_NEXTHOP, ROUTE_CONNECTED = 0, 1


ANY_POOL = "0.0.0.0/0"
# dockerd's ids are 64 hex digits; podnet takes what its agent takes as an endpoint id.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class PluginError(PodnetError):
    pass


@dataclass(frozen=True)
class PoolID:
    """PoolID as podnet hands it to dockerd: `podnet:<pool>[|<sub-pool>]`."""

    pool: ipaddress.IPv4Network
    sub_pool: ipaddress.IPv4Network | None

    def encode(self) -> str:
        return POOL_PREFIX + str(self.pool) + (f"|{self.sub_pool}" if self.sub_pool else "")

    @property
    def allocation_range(self) -> ipaddress.IPv4Network:
        return self.sub_pool or self.pool

    @classmethod
    def decode(cls, text: object) -> PoolID:
        if not isinstance(text, str) or not text.startswith(POOL_PREFIX):
            raise PluginError(f"unknown PoolID {text!r}: this pool was not created by podnet")
        pool, _, sub = text.removeprefix(POOL_PREFIX).partition("|")
        try:
            return cls(ipaddress.IPv4Network(pool), ipaddress.IPv4Network(sub) if sub else None)
        except ValueError:
            raise PluginError(f"malformed PoolID {text!r}") from None


def _field(body: Any, name: str, kind: type | tuple[type, ...] = str, *, required: bool = True) -> Any:
    if not isinstance(body, dict):
        raise PluginError(f"request body must be a JSON object, got {type(body).__name__}")
    if name not in body or body[name] is None:
        if required:
            raise PluginError(f"missing field {name}")
        return None
    value = body[name]
    if not isinstance(value, kind):
        raise PluginError(f"field {name} has the wrong type ({type(value).__name__})")
    return value


def _id(body: Any, name: str) -> str:
    """A NetworkID or EndpointID: it becomes part of agent paths and store keys."""
    value: str = _field(body, name)
    if not _ID.fullmatch(value):
        raise PluginError(
            f"invalid {name} {value[:80]!r}: expected 1-128 letters, digits, '_', '.' or '-' "
            "(dockerd sends 64 hex digits)"
        )
    return value


def _ipv4(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text.split("/")[0])
    except ValueError:
        raise PluginError(f"invalid {what} {text[:80]!r}: not an IPv4 address") from None


class Handlers:
    NODE_TTL_S = 5.0  # the pod CIDR and router IP change only when the agent restarts

    def __init__(self, agent: AgentCalls):
        self.agent = agent
        self._node: tuple[float, dict[str, Any]] | None = None
        # EndpointOperInfo's answers, learned at CreateEndpoint (dockerd asks twice per container).
        self._oper_info: dict[str, dict[str, str]] = {}

    def _agent(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except AgentError as err:
            raise PluginError(f"{what}: {err}") from None

    def node(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._node is None or now - self._node[0] > self.NODE_TTL_S:
            node: dict[str, Any] = self._agent("asking the agent for the node's pod CIDR", self.agent.node)
            self._node = (now, node)
        return self._node[1]

    # -- plugin & capabilities -------------------------------------------------------
    def activate(self, body: Any) -> dict[str, Any]:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    def network_capabilities(self, body: Any) -> dict[str, Any]:
        return {"Scope": "local", "ConnectivityScope": "local"}

    def ipam_capabilities(self, body: Any) -> dict[str, Any]:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    def default_address_spaces(self, body: Any) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": LOCAL_SPACE, "GlobalDefaultAddressSpace": GLOBAL_SPACE}

    # -- IPAM -------------------------------------------------------------------------
    def request_pool(self, body: Any) -> dict[str, Any]:
        if _field(body, "V6", bool, required=False):
            raise PluginError("podnet IPAM serves IPv4 only: create the network without --ipv6")
        node = self.node()
        pod_cidr = ipaddress.IPv4Network(node["pod-cidrs"][0])
        router = node["router-ip"]
        pool_text = _field(body, "Pool", required=False) or ""
        sub_text = _field(body, "SubPool", required=False) or ""
        if pool_text:
            try:
                pool = ipaddress.IPv4Network(pool_text)
            except ValueError as err:
                raise PluginError(f"invalid --subnet {pool_text!r}: {err}") from None
            if not pool.subnet_of(pod_cidr):
                raise PluginError(
                    f"--subnet {pool} does not fit this node's pod CIDR {pod_cidr}: "
                    f"omit --subnet, or give {pod_cidr} or a subnet inside it"
                )
        else:
            pool = pod_cidr
        sub_pool = None
        if sub_text:
            try:
                sub_pool = ipaddress.IPv4Network(sub_text)
            except ValueError as err:
                raise PluginError(f"invalid --ip-range {sub_text!r}: {err}") from None
            if not sub_pool.subnet_of(pool):
                raise PluginError(f"--ip-range {sub_pool} is not inside --subnet {pool}")
        # Without --subnet, answer "0.0.0.0/0" as cilium-docker does (source document 000): dockerd
        # skips its route-overlap check only for that pool, and the node's per-pod /32 routes
        # overlap the pod CIDR, so dockerd would ask again and again. The PoolID keeps the real range.
        return {
            "PoolID": PoolID(pool, sub_pool).encode(),
            "Pool": str(pool) if pool_text else ANY_POOL,
            "Data": {GATEWAY_TYPE: f"{router}/32"},
        }

    def release_pool(self, body: Any) -> dict[str, Any]:
        PoolID.decode(_field(body, "PoolID"))
        return {}

    def request_address(self, body: Any) -> dict[str, Any]:
        pool = PoolID.decode(_field(body, "PoolID"))
        wanted = _field(body, "Address", required=False) or ""
        options = _field(body, "Options", dict, required=False) or {}
        if options.get("RequestAddressType") == GATEWAY_TYPE:
            router = self.node()["router-ip"]
            if wanted and wanted != router:
                raise PluginError(
                    f"--gateway {wanted} is not possible: podnet routes every container through this node's "
                    f"router IP {router}; use --gateway {router} or omit it"
                )
            return {"Address": f"{router}/32", "Data": {}}
        if wanted:
            try:
                address = ipaddress.IPv4Address(wanted)
            except ValueError:
                raise PluginError(f"invalid --ip {wanted!r}: not an IPv4 address") from None
            if address not in pool.allocation_range:
                raise PluginError(f"--ip {address} is not inside the network's pool {pool.allocation_range}")
            reply = self._agent(
                f"allocating --ip {address}", self.agent.ipam_allocate_ip, str(address), IPAM_OWNER, expiration=True
            )
        else:
            node = self.node()
            sub_range = str(pool.allocation_range) if str(pool.allocation_range) != node["pod-cidrs"][0] else None
            reply = self._agent(
                "allocating an IP", self.agent.ipam_allocate, IPAM_OWNER, expiration=True, pool=sub_range
            )
        return {"Address": f"{reply['address']['ipv4']}/32", "Data": {}}

    def release_address(self, body: Any) -> dict[str, Any]:
        PoolID.decode(_field(body, "PoolID"))
        address = _ipv4(_field(body, "Address"), "Address")
        self._agent(f"releasing {address}", self.agent.ipam_release, str(address))
        return {}

    # -- networks ------------------------------------------------------------------------
    def create_network(self, body: Any) -> dict[str, Any]:
        network_id = _id(body, "NetworkID")
        options = _field(body, "Options", dict, required=False) or {}
        if options.get("com.docker.network.enable_ipv6"):
            raise PluginError("podnet networks are IPv4 only: create the network without --ipv6")
        refuse_unsupported_network_options(options)
        data = _field(body, "IPv4Data", list)
        if len(data) != 1 or not isinstance(data[0], dict):
            raise PluginError(f"a podnet network has exactly one IPv4 pool, got {len(data)}")
        space = data[0].get("AddressSpace")
        if space not in (LOCAL_SPACE, GLOBAL_SPACE):
            raise PluginError(
                f"the podnet network driver needs the podnet IPAM driver (address space {space!r}): "
                "docker network create --driver podnet --ipam-driver podnet NAME"
            )
        generic = options.get("com.docker.network.generic") or {}
        record = {
            "id": network_id,
            "pool": data[0].get("Pool", ""),
            "gateway": data[0].get("Gateway", ""),
            "options": generic if isinstance(generic, dict) else {},
        }
        self._agent("recording the network", self.agent.network_put, network_id, record)
        return {}

    def delete_network(self, body: Any) -> dict[str, Any]:
        network_id = _id(body, "NetworkID")
        try:
            self.agent.network_delete(network_id)
        except AgentError as err:
            if err.reason != Reason.not_found:
                raise PluginError(f"forgetting network {network_id}: {err}") from None
        return {}

    # -- endpoints -----------------------------------------------------------------------
    def create_endpoint(self, body: Any) -> dict[str, Any]:
        endpoint_id = _id(body, "EndpointID")
        network_id = _id(body, "NetworkID")
        interface = _field(body, "Interface", dict, required=False) or {}
        options = _field(body, "Options", dict, required=False) or {}
        if options.get("com.docker.network.portmap"):
            raise PluginError(
                "podnet does not publish ports (-p/--publish): containers are routed, reach them at their own IP; "
                "run without -p"
            )
        address = interface.get("Address") or ""
        if not isinstance(address, str):
            raise PluginError(f"field Interface.Address has the wrong type ({type(address).__name__})")
        if not address:
            raise PluginError("CreateEndpoint without an IPv4 address: create the network with --ipam-driver podnet")
        if interface.get("AddressIPv6"):
            raise PluginError("podnet endpoints are IPv4 only")
        ip = str(_ipv4(address, "Interface.Address"))
        ep = self._agent(
            f"creating endpoint {endpoint_id[:12]} with {ip}",
            self.agent.endpoint_create,
            endpoint_id,
            {"addressing": {"ipv4": ip}, "docker-endpoint-id": endpoint_id, "docker-network-id": network_id},
        )
        self._oper_info[endpoint_id] = self._oper_value(ep)
        # libnetwork supplied the address: the reply's Interface must be empty.
        return {"Interface": {}}

    @staticmethod
    def _oper_value(ep: dict[str, Any]) -> dict[str, str]:
        net = ep["networking"]
        return {
            "podnet.endpoint": ep["id"],
            "podnet.host-interface": net["interface-name"],
            "podnet.ipv4": net["addressing"][0].get("ipv4", ""),
            "podnet.router-ip": net["router-ip"],
        }

    def endpoint_oper_info(self, body: Any) -> dict[str, Any]:
        endpoint_id = _id(body, "EndpointID")
        value = self._oper_info.get(endpoint_id)
        if value is None:  # created before this plugin process started
            ep = self._agent(f"looking up endpoint {endpoint_id[:12]}", self.agent.endpoint_get, endpoint_id)
            value = self._oper_info[endpoint_id] = self._oper_value(ep)
        return {"Value": value}

    def delete_endpoint(self, body: Any) -> dict[str, Any]:
        endpoint_id = _id(body, "EndpointID")
        self._oper_info.pop(endpoint_id, None)
        try:
            self.agent.endpoint_delete(endpoint_id)
        except AgentError as err:
            if err.reason != Reason.not_found:  # already gone: deleting is idempotent
                raise PluginError(f"deleting endpoint {endpoint_id[:12]}: {err}") from None
        return {}

    def join(self, body: Any) -> dict[str, Any]:
        """The waiting veth's name follows from the endpoint id; the routes from the router IP.

        The sandbox key is recorded first: the agent refuses a second podnet
        endpoint in one container (`docker network connect` of a second
        podnet network), which dockerd could only half-do (its routes exist).
        The container's labels follow (see `DockerWatcher.resolve_labels`).
        """
        endpoint_id = _id(body, "EndpointID")
        _id(body, "NetworkID")
        sandbox = _field(body, "SandboxKey", required=False)
        if sandbox:
            self._agent(
                f"joining endpoint {endpoint_id[:12]}",
                self.agent.endpoint_patch,
                endpoint_id,
                {"sandbox-key": sandbox},
            )
        router = self.node()["router-ip"]
        return {
            "InterfaceName": {"SrcName": temp_ifname(endpoint_id), "DstPrefix": "eth"},
            "Gateway": "",
            "StaticRoutes": [
                {"Destination": f"{router}/32", "RouteType": ROUTE_CONNECTED},
                {"Destination": "0.0.0.0/0", "RouteType": ROUTE_NEXTHOP, "NextHop": router},
            ],
            "DisableGatewayService": True,
        }

    def leave(self, body: Any) -> dict[str, Any]:
        _id(body, "EndpointID")
        return {}

    def nothing(self, body: Any) -> dict[str, Any]:
        return {}

    def unsupported(self, body: Any) -> dict[str, Any]:
        raise PluginError("podnet is a local-scope driver: swarm network allocation is not supported")


#: Network options dockerd passes for flags podnet cannot honour, and what to do instead.
UNSUPPORTED_NETWORK_OPTIONS = {
    "com.docker.network.internal": (
        "--internal is not supported by podnet: its containers are routed through the node like any pod, "
        "nothing keeps their traffic inside the network; create it without --internal (and restrict who reaches "
        "it with `podnet policy`), or use a network of another driver (e.g. bridge --internal)"
    ),
}


def refuse_unsupported_network_options(options: dict[str, Any]) -> None:
    """CreateNetwork: refuse what podnet would otherwise accept and silently ignore."""
    for option, message in UNSUPPORTED_NETWORK_OPTIONS.items():
        if options.get(option):
            raise PluginError(message)
    generic = options.get("com.docker.network.generic") or {}
    if not isinstance(generic, dict):
        raise PluginError(f"driver options must be an object, got {type(generic).__name__}")
    if generic:
        given = ", ".join(f"{k}={v}" for k, v in sorted(generic.items()))
        raise PluginError(
            f"podnet takes no driver options (-o/--opt), got {given}: a podnet network's settings (MTU, pod CIDR, "
            "datapath) are the node's, set on podnet-agent; create the network without -o"
        )


def method_table(h: Handlers) -> dict[str, Any]:
    return {
        "/Plugin.Activate": h.activate,
        "/NetworkDriver.GetCapabilities": h.network_capabilities,
        "/NetworkDriver.CreateNetwork": h.create_network,
        "/NetworkDriver.DeleteNetwork": h.delete_network,
        "/NetworkDriver.CreateEndpoint": h.create_endpoint,
        "/NetworkDriver.EndpointOperInfo": h.endpoint_oper_info,
        "/NetworkDriver.DeleteEndpoint": h.delete_endpoint,
        "/NetworkDriver.Join": h.join,
        "/NetworkDriver.Leave": h.leave,
        "/NetworkDriver.ProgramExternalConnectivity": h.nothing,
        "/NetworkDriver.RevokeExternalConnectivity": h.nothing,
        "/NetworkDriver.DiscoverNew": h.nothing,
        "/NetworkDriver.DiscoverDelete": h.nothing,
        "/NetworkDriver.AllocateNetwork": h.unsupported,
        "/NetworkDriver.FreeNetwork": h.unsupported,
        "/IpamDriver.GetCapabilities": h.ipam_capabilities,
        "/IpamDriver.GetDefaultAddressSpaces": h.default_address_spaces,
        "/IpamDriver.RequestPool": h.request_pool,
        "/IpamDriver.ReleasePool": h.release_pool,
        "/IpamDriver.RequestAddress": h.request_address,
        "/IpamDriver.ReleaseAddress": h.release_address,
    }
