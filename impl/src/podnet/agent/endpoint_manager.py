"""Endpoints: create (veth, IP claim, identity, record; all or nothing), relabel, delete (`/v1/endpoint`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from podnet import timing
from podnet.agent.config import AgentConfig
from podnet.agent.endpoints import EndpointExistsError, EndpointStore, transition
from podnet.agent.errors import BadRequestError
from podnet.agent.identities import IdentityNames
from podnet.agent.ipam import ENDPOINT_OWNER, RELEASED_OWNER
from podnet.agent.policy import PolicyEngine
from podnet.api.models import (
    AddressPair,
    Endpoint,
    EndpointChangeRequest,
    EndpointCounters,
    EndpointNetworking,
    EndpointState,
    PodInterface,
)
from podnet.datapath.names import host_ifname
from podnet.datapath.netns import check_netns_path
from podnet.datapath.protocol import Datapath
from podnet.identity import security_labels
from podnet.ipam import AlreadyAllocatedError, DurableNodeAllocator
from podnet.ipam.allocator import Allocation
from podnet.ipam.cidr import Address
from podnet.kvstore import Delete, Put

log = logging.getLogger("podnet.agent")


class SandboxTakenError(EndpointExistsError):
    """Another endpoint of this node is already in the container's sandbox."""


class EndpointManager:
    def __init__(
        self,
        config: AgentConfig,
        datapath: Datapath,
        allocator: DurableNodeAllocator,
        endpoints: EndpointStore,
        identities: IdentityNames,
        policy: PolicyEngine,
    ):
        self.config = config
        self.datapath = datapath
        self.allocator = allocator
        self.endpoints = endpoints
        self.identities = identities
        self.policy = policy

    @property
    def router_ip(self) -> str:
        return str(self.allocator.router_ip)

    def _with_counters(self, endpoint: Endpoint) -> Endpoint:
        counters = self.datapath.counters(endpoint.networking.interface_name)
        if counters is None:
            return endpoint
        return endpoint.model_copy(update={"counters": EndpointCounters(**counters.__dict__)})

    def list(self) -> list[Endpoint]:
        return [self._with_counters(e) for e in self.endpoints.list()]

    def get(self, endpoint_id: str) -> Endpoint:
        return self._with_counters(self.endpoints.get(endpoint_id))

    def pod_interface(self, endpoint_id: str) -> PodInterface:
        """The pod side of a CNI endpoint as its namespace has it now."""
        endpoint = self.endpoints.get(endpoint_id)
        if not endpoint.sandbox_key:
            raise BadRequestError(f"endpoint {endpoint_id} has no pod network namespace")
        name = endpoint.networking.container_interface_name
        link = self.datapath.pod_interface(endpoint.sandbox_key, name)
        if link is None:
            return PodInterface(netns=endpoint.sandbox_key, name=name, present=False)
        return PodInterface(
            netns=endpoint.sandbox_key,
            name=name,
            present=True,
            mac=link.mac,
            addresses=list(link.addresses),
            routes=[f"{dst} via {gw}" if gw else dst for dst, gw in link.routes],
        )

    def create(self, endpoint_id: str, request: EndpointChangeRequest) -> Endpoint:
        if self.endpoints.find(endpoint_id) is not None:
            raise EndpointExistsError(f"endpoint {endpoint_id} already exists")
        self.endpoints.refuse_quarantined(endpoint_id)
        if request.addressing is None:
            raise BadRequestError("creating an endpoint needs addressing.ipv4 (allocate it with POST /v1/ipam first)")
        if request.netns and not request.interface_name:
            raise BadRequestError("netns given without interface-name: name the container-side interface (eth0)")
        if request.netns:
            check_netns_path(request.netns, self.config.netns_paths)  # the datapath checks what it is
        ip = request.addressing.ipv4
        # Never the router IP, the network or broadcast address, or one outside the pod CIDR;
        # never the IP of a stored record that cannot be read.
        address = self.allocator.mem.check_pod_ip(ip)
        self.allocator.refuse_reserved(address)
        held = self.allocator.get(address)
        if held is not None and held.owner.startswith(ENDPOINT_OWNER):
            other = held.owner.removeprefix(ENDPOINT_OWNER)
            raise EndpointExistsError(f"{ip} is already used by endpoint {other}")
        previous = held
        timing.mark("checks")
        link = self.datapath.create_endpoint(
            endpoint_id, ip, self.router_ip, netns=request.netns, ifname=request.interface_name
        )
        committed = False
        try:
            now = time.time()
            labels = request.labels or []
            identity = self.identities.identity_for(labels) if labels else None
            timing.mark("identity")
            endpoint = Endpoint(
                id=endpoint_id,
                state=EndpointState.waiting_for_identity,
                container_id=request.container_id,
                container_name=request.container_name,
                docker_endpoint_id=request.docker_endpoint_id,
                docker_network_id=request.docker_network_id,
                pod_name=request.pod_name,
                sandbox_key=request.sandbox_key or request.netns,
                labels=labels,
                identity=identity,
                networking=EndpointNetworking(
                    addressing=[AddressPair(ipv4=ip)],
                    interface_name=link.host_ifname,
                    interface_index=link.host_ifindex,
                    host_mac=link.host_mac,
                    mac=link.peer_mac,
                    container_interface_name=link.peer_ifname,
                    router_ip=self.router_ip,
                ),
                created_at=now,
            )
            endpoint = transition(endpoint, EndpointState.waiting_for_identity, "endpoint created, datapath ready")
            if labels:
                endpoint = transition(endpoint, EndpointState.ready, f"identity {identity}: {', '.join(labels)}")
            timing.mark("record")
            # The IP taken over for the endpoint and its record: one store transaction.
            record = Put(*self.endpoints.put_of(endpoint))
            self.allocator.claim(address, ENDPOINT_OWNER + endpoint_id, also=[record])
            committed = True
            self.endpoints.saved(endpoint)
            timing.mark("store: claim and record")
            self.policy.regenerate_for(endpoint)
            timing.mark("policy")
        except BaseException:
            self.datapath.delete_endpoint(endpoint_id, ip)
            self._undo_claim(address, endpoint_id, previous, recorded=committed)
            raise
        log.info("endpoint %s created: %s on %s", endpoint_id, ip, link.host_ifname)
        return endpoint

    def _undo_claim(self, address: Address, endpoint_id: str, previous: Allocation | None, *, recorded: bool) -> None:
        """After a failed create: the IP back to whom it had (only if this endpoint holds it: the
        claim may have lost to another writer), and the record gone, when it was written: together,
        in one transaction, when both are to be undone."""
        forget = [Delete(self.endpoints.key_of(endpoint_id))] if recorded else []
        undone = False
        held = self.allocator.get(address)
        if held is not None and held.owner == ENDPOINT_OWNER + endpoint_id:
            try:
                if previous is not None:
                    grace = self.config.endpoint_release_grace_s
                    self.allocator.claim(address, previous.owner, expires_in=grace, also=forget)
                    undone = True
                else:
                    undone = self.allocator.release(address, also=forget) is not None
            except AlreadyAllocatedError:
                pass  # another writer holds the IP now: only the record is left to remove
        if recorded:
            if undone:
                self.endpoints.removed(endpoint_id)
            else:
                self.endpoints.remove(endpoint_id)

    def patch(self, endpoint_id: str, request: EndpointChangeRequest) -> Endpoint:
        endpoint = self.endpoints.get(endpoint_id)
        changes = request.model_dump(exclude_unset=True, exclude_none=True)
        for fixed in ("addressing", "netns", "interface_name"):
            if fixed in changes:
                raise BadRequestError(f"{fixed.replace('_', '-')} of an existing endpoint cannot change")
        sandbox = changes.get("sandbox_key")
        if sandbox and endpoint.docker_endpoint_id:
            self._refuse_second_network(endpoint, sandbox)
        if "labels" in changes:
            changes["identity"] = self.identities.identity_for(changes["labels"])
        updated = endpoint.model_copy(update=changes)
        if "labels" in changes and (
            updated.state == EndpointState.waiting_for_identity or updated.identity != endpoint.identity
        ):
            shown = ", ".join(security_labels(updated.labels)) or "(no labels)"
            updated = transition(updated, EndpointState.ready, f"identity {updated.identity}: {shown}")
        self.endpoints.save(updated)
        if updated.identity != endpoint.identity:
            self.policy.regenerate_for(updated)
            self.identities.release_unused(self.endpoints.identities())  # last: the old one, if no longer used
        return self._with_counters(updated)

    def _refuse_second_network(self, endpoint: Endpoint, sandbox: str) -> None:
        """A docker container gets one podnet network: its routes (the router IP, the default
        route) go through this node's router IP, which a second interface cannot have again."""
        for other in self.endpoints.list():
            if other.id != endpoint.id and other.sandbox_key == sandbox and other.docker_endpoint_id:
                network = other.docker_network_id or "?"
                raise SandboxTakenError(
                    f"the container (sandbox {sandbox}) is already on podnet network {network[:12]} "
                    f"(endpoint {other.id[:12]}, {other.networking.addressing[0].ipv4}); a container can be on one "
                    "podnet network only (every podnet network routes through this node's router IP, so a second "
                    f"interface would need a second default route): disconnect it from that network first "
                    f"(docker network disconnect {network[:12]} CONTAINER), or use a network of another driver"
                )

    def wait_deleted(self, endpoint_ids: Iterable[str]) -> None:
        """Until these endpoints' veths, handed to the datapath by `delete`, are gone (any thread)."""
        for endpoint_id in endpoint_ids:
            if not self.datapath.wait_deleted(endpoint_id):
                log.warning("endpoint %s: its veth %s is not deleted yet", endpoint_id, host_ifname(endpoint_id))

    def delete(self, endpoint_id: str, *, release_ip: bool = False, wait: bool = True) -> Endpoint:
        endpoint = transition(self.endpoints.get(endpoint_id), EndpointState.disconnecting, "deleting")
        ip = endpoint.networking.addressing[0].ipv4
        # The veth (and its route) go on the datapath's own time, from now on: the store work below
        # overlaps the deletion. A crash or a store failure in between leaves a record whose veth is
        # gone (marked not-ready at restore); the runtime's DEL, again, finishes it.
        self.datapath.delete_endpoint_later(endpoint_id, ip)
        timing.mark("datapath")
        # The record and the IP (released, or handed to expiry until the runtime releases it): one
        # store transaction.
        record = Delete(self.endpoints.key_of(endpoint_id))
        held = self.allocator.get(ip) if ip else None
        together = False
        if held is not None and held.owner == ENDPOINT_OWNER + endpoint_id:
            if release_ip:
                together = self.allocator.release(held.ip, also=[record]) is not None
            else:
                try:
                    self.allocator.claim(
                        held.ip,
                        RELEASED_OWNER + endpoint_id,
                        expires_in=self.config.endpoint_release_grace_s,
                        also=[record],
                    )
                    together = True
                except AlreadyAllocatedError as err:  # another writer holds it now: nothing to hand back
                    log.warning("endpoint %s: %s", endpoint_id, err)
        if together:
            self.endpoints.removed(endpoint_id)
        else:
            self.endpoints.remove(endpoint_id)
        timing.mark("store: record and ip")
        if endpoint.identity is not None:
            self.identities.release_unused(self.endpoints.identities())  # last: GC catches up if this fails
            timing.mark("identity")
        # A runtime's DEL (CNI, the docker reconciler: release_ip) may ADD the same container and
        # interface again at once: it returns once the pod's interface is gone (the store work above
        # overlapped the deletion). Docker's DeleteEndpoint comes after the sandbox, and so the
        # pod's end, are gone: it does not wait.
        # `wait=False`: the caller waits, off the agent's worker (`wait_deleted`; the /v1/cni handler),
        # so the worker goes on to the next call and the veths of DELs that come together are deleted
        # together (podnet.datapath.reaper).
        if release_ip and wait:
            self.wait_deleted([endpoint_id])
            timing.mark("datapath: deleted")
        log.info("endpoint %s deleted (%s on %s)", endpoint_id, ip, host_ifname(endpoint_id))
        return endpoint
