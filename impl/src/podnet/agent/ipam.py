"""The agent's IPAM API: allocate, release and list this node's pod IPs (`/v1/ipam`)."""

from __future__ import annotations

from podnet import timing
from podnet.agent.config import AgentConfig
from podnet.agent.endpoints import EndpointExistsError
from podnet.agent.errors import BadRequestError
from podnet.api.models import (
    AddressPair,
    HostAddressingFamily,
    IPAMAddressResponse,
    IPAMAllocation,
    IPAMRelease,
    IPAMResponse,
    IPAMState,
    NodeAddressing,
)
from podnet.ipam import DurableNodeAllocator, parse_address, parse_cidr
from podnet.ipam.allocator import QUARANTINED_OWNER, ROUTER_OWNER, Allocation
from podnet.ipam.cidr import Address

# Owners of IPs the agent itself holds (others are the runtime's, e.g. "docker-ipam").
ENDPOINT_OWNER = "endpoint:"
RELEASED_OWNER = "released-endpoint:"


def client_owner(owner: str) -> str:
    """An owner a client may name: not one the agent writes itself (an IP held as `endpoint:X` with no
    endpoint X could never be released), and nothing a terminal would act on."""
    if owner in (ROUTER_OWNER, QUARANTINED_OWNER) or owner.startswith((ENDPOINT_OWNER, RELEASED_OWNER)):
        raise BadRequestError(
            f"owner {owner!r} is the agent's own (router, quarantined, endpoint:…, released-endpoint:…): "
            "name who holds the IP, e.g. owner=default/app1"
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in owner):
        raise BadRequestError(f"owner {owner!r} contains a control character")
    return owner


class NodeIPAM:
    def __init__(self, config: AgentConfig, allocator: DurableNodeAllocator):
        self.config = config
        self.allocator = allocator

    @property
    def router_ip(self) -> str:
        return str(self.allocator.router_ip)

    @property
    def pod_cidr(self) -> str:
        return str(self.allocator.pod_cidr)

    def _response(self, allocation: Allocation) -> IPAMResponse:
        return IPAMResponse(
            address=AddressPair(ipv4=str(allocation.ip)),
            host_addressing=NodeAddressing(
                ipv4=HostAddressingFamily(ip=self.router_ip, alloc_range=self.pod_cidr, enabled=True)
            ),
            ipv4=IPAMAddressResponse(
                ip=str(allocation.ip),
                gateway=self.router_ip,
                cidrs=[self.pod_cidr],
                owner=allocation.owner,
                expires_at=allocation.expires_at,
            ),
        )

    def _expiry(self, expiration: bool) -> float | None:
        return self.config.ip_expiration_s if expiration else None

    def allocate(
        self, owner: str, *, family: str = "ipv4", expiration: bool = False, pool: str | None = None
    ) -> IPAMResponse:
        if family != "ipv4":
            raise BadRequestError(f"unsupported address family {family!r}: this node allocates ipv4 only")
        client_owner(owner)
        if pool is None:
            allocation = self.allocator.allocate(owner, expires_in=self._expiry(expiration))
        else:
            subnet = parse_cidr(pool, what="pool").network
            allocation = self.allocator.allocate(owner, expires_in=self._expiry(expiration), within=subnet)
        timing.mark("ipam: allocate")
        return self._response(allocation)

    def allocate_ip(self, ip: str, owner: str, *, expiration: bool = False) -> IPAMResponse:
        client_owner(owner)
        allocation = self.allocator.allocate_ip(parse_address(ip), owner, expires_in=self._expiry(expiration))
        return self._response(allocation)

    def release(self, ip: str) -> IPAMRelease:
        address = parse_address(ip)
        if address == self.allocator.router_ip:
            return IPAMRelease(ip=str(address), released=False, owner=ROUTER_OWNER)
        self._refuse_endpoint_ip(address)
        released = self.allocator.release(address)
        if released is None:
            self._refuse_endpoint_ip(address)  # another writer gave it to an endpoint meanwhile
        return IPAMRelease(ip=str(address), released=released is not None, owner=released.owner if released else None)

    def _refuse_endpoint_ip(self, address: Address) -> None:
        held = self.allocator.get(address)
        if held is not None and held.owner.startswith(ENDPOINT_OWNER):
            endpoint_id = held.owner.removeprefix(ENDPOINT_OWNER)
            raise EndpointExistsError(f"{address} is in use by endpoint {endpoint_id}; delete the endpoint first")

    def state(self) -> IPAMState:
        return IPAMState(
            pod_cidr=self.pod_cidr,
            router_ip=self.router_ip,
            capacity=self.allocator.mem.capacity,
            used=self.allocator.mem.used,
            allocations=[
                IPAMAllocation(ip=str(a.ip), owner=a.owner, expires_at=a.expires_at)
                for a in self.allocator.allocations()
            ],
        )
