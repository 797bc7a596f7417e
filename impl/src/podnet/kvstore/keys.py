"""Every kvstore key podnet reads or writes, in one place.

Keys are `/`-separated; a trailing `/` marks a prefix that is listed.

    key                                              value (JSON)                         written by
    -----------------------------------------------  -----------------------------------  ----------------
    podnet/ipam/pods/<pod-cidr>/<ip>                 {"ip", "owner", "expires_at"}        the node's agent
    podnet/ipam/nodecidrs/<node-cidr>                {"node", "cidr"}                     agent or operator
    podnet/nodes/<node>/endpoints/<endpoint-id>      an Endpoint (api.models)             the node's agent
    podnet/nodes/<node>/docker-networks/<network>    a DockerNetwork (api.models)         the node's agent
    podnet/identities/ids/<number>                   ["label", ...]                       any agent
    podnet/identities/labelsets/<JSON label list>    "<number>"                           any agent
    podnet/identities/labels/<labels joined by ;>    "<number>"                           version 1 (read only)
    podnet/identities/next                           "<number>" (the next one to use)     any agent
    podnet/identities/refs/<number>/<node>           {"node", "in_use", "since"}          the node's agent
    podnet/cluster/nodes/<node>                      {"name", "node_ip", "registered_at"} the node
    podnet/cluster/status/<node>                     {"name", "pod_cidrs", "condition"}   the operator
    podnet/policies/<rule name>                      a PolicyRule (policy.model)          the API / CLI

A CIDR in a key is written `<address>_<prefix length>` (`10.0.0.0_24`): no `/`.
The canonical form of a label set belongs to `podnet.identity` (`encode_labels`).
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

ROOT = "podnet/"

POD_IPS = "podnet/ipam/pods/"
NODE_CIDRS = "podnet/ipam/nodecidrs/"
NODES = "podnet/nodes/"
IDENTITY_LABELS = "podnet/identities/labels/"  # version 1's label-set keys (ambiguous: read, never written)
IDENTITY_IDS = "podnet/identities/ids/"
IDENTITY_LABELSETS = "podnet/identities/labelsets/"
IDENTITY_NEXT = "podnet/identities/next"
IDENTITY_REFS = "podnet/identities/refs/"
CLUSTER_NODES = "podnet/cluster/nodes/"
CLUSTER_STATUS = "podnet/cluster/status/"
POLICIES = "podnet/policies/"

_ENDPOINTS = "/endpoints/"
_DOCKER_NETWORKS = "/docker-networks/"


def cidr_component(network: IPv4Network | IPv6Network) -> str:
    """A CIDR as a key component (no '/')."""
    return f"{network.network_address}_{network.prefixlen}"


# -- IPAM ------------------------------------------------------------------------
def pod_ips(pod_cidr: IPv4Network | IPv6Network) -> str:
    """Prefix of one pod CIDR's allocations."""
    return f"{POD_IPS}{cidr_component(pod_cidr)}/"


def pod_ip(pod_cidr: IPv4Network | IPv6Network, ip: object) -> str:
    return f"{pod_ips(pod_cidr)}{ip}"


def node_cidr(cidr: IPv4Network | IPv6Network) -> str:
    return NODE_CIDRS + cidr_component(cidr)


def last_component(key: str) -> str:
    """What a key names (the IP of `pod_ip`, the endpoint id of `endpoint`, ...)."""
    return key.rpartition("/")[2]


def cidr_of_component(component: str) -> str:
    """`10.0.0.0_24` -> `10.0.0.0/24` (the CIDR a `node_cidr` key names; not validated)."""
    address, _, length = component.rpartition("_")
    return f"{address}/{length}"


# -- per node: endpoints, docker networks -----------------------------------------------
def endpoints(node: str) -> str:
    """Prefix of one node's endpoint records."""
    return f"{NODES}{node}{_ENDPOINTS}"


def endpoint(node: str, endpoint_id: str) -> str:
    return endpoints(node) + endpoint_id


def is_endpoint(key: str) -> bool:
    """True for an endpoint record of any node (keys listed under `NODES`)."""
    return key.startswith(NODES) and _ENDPOINTS in key


def docker_networks(node: str) -> str:
    """Prefix of one node's docker network records."""
    return f"{NODES}{node}{_DOCKER_NETWORKS}"


def docker_network(node: str, network_id: str) -> str:
    return docker_networks(node) + network_id


# -- identities -----------------------------------------------------------------------
def identity_by_labels(canonical: str) -> str:
    """Version 1's key of a label set (the labels joined by ';')."""
    return IDENTITY_LABELS + canonical


def identity_by_labelset(encoded: str) -> str:
    """The key of a label set (`podnet.identity.encode_labels`)."""
    return IDENTITY_LABELSETS + encoded


def identity_by_id(number: int) -> str:
    return f"{IDENTITY_IDS}{number}"


def identity_number(key: str) -> int:
    """The number of an `identity_by_id` key (ValueError if it is not one)."""
    return int(key.removeprefix(IDENTITY_IDS))


def identity_refs(number: int) -> str:
    """Prefix of every node's reference to one identity."""
    return f"{IDENTITY_REFS}{number}/"


def identity_ref(number: int, node: str) -> str:
    return identity_refs(number) + node


def identity_ref_number(key: str) -> int:
    """The number of an `identity_ref` key (ValueError if it is not one)."""
    return int(key.removeprefix(IDENTITY_REFS).split("/", 1)[0])


# -- cluster: node registry and status ------------------------------------------------------
def cluster_node(name: str) -> str:
    return CLUSTER_NODES + name


def cluster_status(name: str) -> str:
    return CLUSTER_STATUS + name


def cluster_status_name(key: str) -> str:
    return key.removeprefix(CLUSTER_STATUS)


# -- policy -------------------------------------------------------------------------------
def policy(name: str) -> str:
    return POLICIES + name
