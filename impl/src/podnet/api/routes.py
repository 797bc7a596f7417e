"""The agent API's route table: one source for the server and the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from podnet.api import models as m
from podnet.policy.model import PolicyRule


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    request: type[BaseModel] | None = None
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    errors: tuple[int, ...] = field(default=(400, 500))
    list_response: bool = False
    request_list: bool = False  # the body is one `request` or a non-empty JSON array of them


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/healthz", "healthz", "health of the agent, its store, datapath and IPAM", m.Healthz),
    Route("GET", "/v1/config", "config", "the agent's effective configuration", m.AgentConfigView),
    Route("GET", "/v1/node", "node", "this node: name, pod CIDRs, router IP", m.NodeInfo),
    Route(
        "POST",
        "/v1/ipam",
        "ipam_allocate",
        "allocate the next free pod IP",
        m.IPAMResponse,
        201,
        query=(
            ("family", "address family (ipv4)"),
            ("owner", "who holds the IP (required)"),
            ("pool", "allocate inside this sub-range of the pod CIDR"),
        ),
        headers=(("Expiration", "true: release the IP unless an endpoint claims it in time"),),
        errors=(400, 503),
    ),
    Route("GET", "/v1/ipam", "ipam_state", "every allocation of this node's pod CIDR", m.IPAMState),
    Route(
        "POST",
        "/v1/ipam/{ip}",
        "ipam_allocate_ip",
        "allocate a specific pod IP",
        m.IPAMResponse,
        201,
        query=(("owner", "who holds the IP (required)"),),
        headers=(("Expiration", "true: release the IP unless an endpoint claims it in time"),),
        errors=(400, 409),
    ),
    Route(
        "DELETE",
        "/v1/ipam/{ip}",
        "ipam_release",
        "release a pod IP (unknown IPs: a no-op)",
        m.IPAMRelease,
        errors=(400, 409),
    ),
    Route("GET", "/v1/endpoint", "endpoint_list", "every endpoint of this node", m.Endpoint, list_response=True),
    Route("GET", "/v1/endpoint/{id}", "endpoint_get", "one endpoint", m.Endpoint, errors=(400, 404)),
    Route(
        "GET",
        "/v1/endpoint/{id}/interface",
        "endpoint_interface",
        "the pod side of a CNI endpoint, read from the pod's network namespace (MAC, addresses, routes)",
        m.PodInterface,
        errors=(400, 404, 500),
    ),
    Route(
        "PUT",
        "/v1/endpoint/{id}",
        "endpoint_create",
        "create an endpoint: veth pair, /32 route, IP claimed",
        m.Endpoint,
        201,
        request=m.EndpointChangeRequest,
        errors=(400, 409, 500),
    ),
    Route(
        "PATCH",
        "/v1/endpoint/{id}",
        "endpoint_patch",
        "update an endpoint's container data and labels",
        m.Endpoint,
        request=m.EndpointChangeRequest,
        errors=(400, 404),
    ),
    Route(
        "DELETE",
        "/v1/endpoint/{id}",
        "endpoint_delete",
        "delete an endpoint; its IP is released now with release-ip=true, else after a grace period",
        m.Endpoint,
        query=(("release-ip", "true: release the endpoint's IP now"),),
        errors=(400, 404, 500),
    ),
    Route("GET", "/v1/bgp", "bgp", "the BGP session to the ToR and the routes announced", m.BGPStatus),
    Route(
        "GET",
        "/v1/docker/network",
        "network_list",
        "docker networks backed by podnet",
        m.DockerNetwork,
        list_response=True,
    ),
    Route(
        "PUT",
        "/v1/docker/network/{id}",
        "network_put",
        "record a docker network",
        m.DockerNetwork,
        201,
        request=m.DockerNetwork,
    ),
    Route(
        "DELETE", "/v1/docker/network/{id}", "network_delete", "forget a docker network", None, 204, errors=(400, 404)
    ),
    Route(
        "GET", "/v1/policy", "policy_get", "the cluster's policy rules; whether this node enforces them", m.PolicyState
    ),
    Route(
        "PUT",
        "/v1/policy",
        "policy_put",
        "import policy rules (a JSON array of Cilium-like rules, or one rule); same name replaces",
        m.PolicyState,
        request=PolicyRule,
        request_list=True,
        errors=(400, 503),
    ),
    Route("DELETE", "/v1/policy", "policy_delete_all", "delete every policy rule", m.PolicyDeleted),
    Route("DELETE", "/v1/policy/{name}", "policy_delete", "delete one policy rule", m.PolicyDeleted, errors=(400, 404)),
    Route(
        "GET", "/v1/identity", "identity_list", "security identities and their labels", m.Identity, list_response=True
    ),
    Route(
        "GET",
        "/v1/bpf",
        "bpf_maps",
        "the node's BPF maps: endpoints, policy (with hits), per-endpoint counters, IP cache",
        m.BpfMaps,
    ),
    Route(
        "GET",
        "/v1/monitor",
        "monitor",
        "stream datapath events as JSON lines (drop events; trace events with type=trace or all)",
        m.MonitorEvent,
        query=(("type", "drop (default), trace or all"), ("recent", "true: first replay the last drops seen")),
        errors=(400, 429),
    ),
    Route(
        "POST",
        "/v1/cni",
        "cni",
        "run a CNI call for the podnet-cni binary: the reply body is what it prints, "
        "header Podnet-CNI-Exit its exit status",
        None,
        request=m.CNICall,
    ),
)
