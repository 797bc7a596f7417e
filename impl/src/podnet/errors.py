"""The root of podnet's error hierarchy, and the machine-readable reasons errors carry.

Every error a user can see derives from `PodnetError`; its message is the
whole story (what failed, on which object, and what to do), so callers print
`str(err)` and never a traceback. Its `reason` says the same for programs:
the agent API returns it as `{"code", "message", "reason"}`, and clients
(the CNI plugin, the docker plugin, the lab) switch on it, never on the text.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a request failed. Defined here once; the OpenAPI document lists them."""

    pod_cidr_exhausted = "pod-cidr-exhausted"
    cluster_pool_exhausted = "cluster-pool-exhausted"
    already_allocated = "already-allocated"
    not_in_range = "not-in-range"
    reserved_address = "reserved-address"
    quarantined = "quarantined"
    invalid_netns = "invalid-netns"
    endpoint_exists = "endpoint-exists"
    not_found = "not-found"
    veth_exists = "veth-exists"
    datapath_failed = "datapath-failed"
    bad_request = "bad-request"
    request_timeout = "request-timeout"
    too_many_monitors = "too-many-monitors"
    store_unavailable = "store-unavailable"
    agent_not_ready = "agent-not-ready"
    agent_unavailable = "agent-unavailable"
    internal = "internal"


#: What each reason means, and the HTTP status the agent answers it with
#: (`agent-unavailable` is only ever made by a client: no agent answered).
REASONS: dict[Reason, tuple[int, str]] = {
    Reason.pod_cidr_exhausted: (503, "every IP of the node's pod CIDR is in use"),
    Reason.cluster_pool_exhausted: (503, "every cluster CIDR is full: the node cannot get a pod CIDR"),
    Reason.already_allocated: (409, "the address asked for is held by someone else"),
    Reason.not_in_range: (400, "the address or CIDR is outside the range it was asked of"),
    Reason.reserved_address: (
        400,
        "the address is the node's router IP, or its pod CIDR's network or broadcast address: never a pod's",
    ),
    Reason.quarantined: (
        409,
        "a stored record the agent cannot read holds this (listed in healthz): repair or delete that key first",
    ),
    Reason.invalid_netns: (
        400,
        "the netns is not a pod's network namespace (relative, not allowed, not nsfs, the node's own or init's)",
    ),
    Reason.endpoint_exists: (409, "an endpoint with this id, one using this IP, or one in this container, exists"),
    Reason.not_found: (404, "no such endpoint, policy rule, docker network or API path"),
    Reason.veth_exists: (500, "the endpoint's interface (host veth or peer name) already exists in the kernel"),
    Reason.datapath_failed: (500, "a kernel operation failed (the message names the device and the step)"),
    Reason.bad_request: (400, "the request is malformed or asks for something this node cannot do"),
    Reason.request_timeout: (408, "the request body did not arrive in time (it was shorter than its Content-Length)"),
    Reason.too_many_monitors: (429, "as many monitor streams as the agent serves are open: stop one, or retry later"),
    Reason.store_unavailable: (503, "the state store cannot be read or written"),
    Reason.agent_not_ready: (503, "the agent has no pod CIDR yet (operator mode): only healthz answers"),
    Reason.agent_unavailable: (503, "client side: no agent answers on the socket"),
    Reason.internal: (500, "an unexpected failure; the agent log has the details"),
}


def http_status(reason: Reason) -> int:
    return REASONS[reason][0]


def describe_reasons() -> str:
    """One line per reason, for documentation."""
    return "; ".join(f"`{r.value}`: {REASONS[r][1]}" for r in Reason)


class PodnetError(Exception):
    """An error with a message meant for the user, and a reason meant for programs."""

    reason: Reason = Reason.internal
