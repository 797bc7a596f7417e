"""The CNI commands, delegating to the podnet agent (which owns IPAM and the datapath).

ADD, as in the source document 001: load the config → IPAM via the agent
(`POST /v1/ipam`, owner `<namespace>/<pod>`, expiring) → the agent creates the
veth with its peer directly in the pod's netns, configures it (/32, a
connected route to the router IP, the default route) and records the
endpoint (`PUT /v1/endpoint/{id}`) → result. Any failure releases the IP.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

from podnet.api.client import AgentError, AgentUnreachableError, InvalidRequestError
from podnet.cni import result as cni_result
from podnet.cni import spec
from podnet.cni.spec import CNIError, Environment, NetConf
from podnet.errors import Reason

PODNET_ENDPOINT_PREFIX = "cni-"
CLEANUP_TIMEOUT_S = 2.0

# The agent's reason -> the CNI error code; any other reason is AGENT_ERROR.
CODE_BY_REASON = {
    Reason.pod_cidr_exhausted: spec.POD_CIDR_EXHAUSTED,
    Reason.veth_exists: spec.DATAPATH_FAILURE,
    Reason.datapath_failed: spec.DATAPATH_FAILURE,
    Reason.agent_unavailable: spec.TRY_AGAIN_LATER,
    Reason.store_unavailable: spec.TRY_AGAIN_LATER,  # locked or unreachable: the runtime retries
    Reason.invalid_netns: spec.INVALID_ENVIRONMENT,  # CNI_NETNS
}


class AgentCalls(Protocol):
    """What the plugin asks of the agent, as the API's JSON: over its socket (`AgentClient`, the
    pure-Python plugin) or in the agent's own process (`podnet.agent.local`, the C shim's
    `POST /v1/cni`). Failures are `AgentError` (with the agent's reason), `AgentUnreachableError`
    or `InvalidRequestError`."""

    def ipam_allocate(self, owner: str, *, expiration: bool = False, pool: str | None = None) -> Any: ...
    def ipam_release(self, ip: str) -> Any: ...
    def endpoint_create(self, endpoint_id: str, body: dict[str, Any]) -> Any: ...
    def endpoint_get(self, endpoint_id: str) -> Any: ...
    def endpoint_interface(self, endpoint_id: str) -> Any: ...
    def endpoint_list(self) -> Any: ...
    def endpoint_delete(self, endpoint_id: str, *, release_ip: bool = False) -> Any: ...
    def healthz(self) -> Any: ...
    def for_cleanup(self, timeout: float) -> AgentCalls:
        """The same agent with a fresh deadline of its own (undoing after a failure)."""
        ...


def _agent_error(err: AgentError, what: str) -> CNIError:
    return CNIError(CODE_BY_REASON.get(err.reason, spec.AGENT_ERROR), str(err), what)


def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except AgentUnreachableError as err:
        raise CNIError(CODE_BY_REASON[err.reason], str(err), what) from None
    except AgentError as err:
        raise _agent_error(err, what) from None
    except InvalidRequestError as err:
        raise CNIError(spec.INVALID_ENVIRONMENT, str(err), what) from None


def result(conf: NetConf, env: Environment, endpoint: dict[str, Any]) -> dict[str, Any]:
    net = endpoint["networking"]
    ip = net["addressing"][0]["ipv4"]
    router = net["router-ip"]
    own = {
        "cniVersion": conf.cni_version,
        "interfaces": [
            {"name": net["interface-name"], "mac": net["host-mac"]},
            {"name": env.ifname, "mac": net["mac"], "sandbox": env.netns},
        ],
        "ips": [{"address": f"{ip}/32", "gateway": router, "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": router}, {"dst": f"{router}/32"}],
        "dns": {},
    }
    # In a chain, what the plugins before podnet returned comes first; then the version's shape.
    return cni_result.shaped(cni_result.merged(conf.raw.get("prevResult"), own), conf.cni_version)


def add(conf: NetConf, env: Environment, client: AgentCalls) -> dict[str, Any]:
    allocation = _call("allocating an IP", client.ipam_allocate, env.owner, expiration=True)
    ip = allocation["address"]["ipv4"]
    body: dict[str, Any] = {
        "addressing": {"ipv4": ip},
        "container-id": env.container_id,
        "netns": env.netns,
        "interface-name": env.ifname,
        "pod-name": env.owner,
        "labels": sorted({*conf.labels, *(f"{k}={v}" for k, v in env.args.items() if k.startswith("K8S_POD_"))}),
    }
    try:
        endpoint = _call(f"creating the endpoint for {ip}", client.endpoint_create, env.endpoint_id, body)
    except CNIError:
        # Its own short deadline: the call's may be spent. Else the IP expires on its own.
        with contextlib.suppress(AgentError, AgentUnreachableError):
            client.for_cleanup(CLEANUP_TIMEOUT_S).ipam_release(ip)
        raise
    return result(conf, env, endpoint)


def delete(conf: NetConf, env: Environment, client: AgentCalls) -> None:
    try:
        client.endpoint_delete(env.endpoint_id, release_ip=True)
    except InvalidRequestError as err:
        raise CNIError(spec.INVALID_ENVIRONMENT, str(err), "deleting the endpoint") from None
    except AgentUnreachableError as err:
        raise CNIError(CODE_BY_REASON[err.reason], str(err), "deleting the endpoint") from None
    except AgentError as err:
        if err.reason != Reason.not_found:  # already gone: DEL is idempotent
            raise _agent_error(err, "deleting the endpoint") from None


def check(conf: NetConf, env: Environment, client: AgentCalls) -> None:
    """The endpoint as prevResult says ADD left it: its interface in the pod with its addresses, the
    host veth, the endpoint usable. (Routes and the MAC a later plugin in a chain may change.)"""
    prev = conf.raw.get("prevResult")
    if prev is None:
        raise CNIError(spec.INVALID_CONFIG, "CHECK needs prevResult: the result of the ADD it checks")
    _prev_result_ips(prev)  # its shape, or code 7 saying what is wrong with it
    endpoint = _call("looking up the endpoint", client.endpoint_get, env.endpoint_id)
    pod = _call("reading the pod's interface", client.endpoint_interface, env.endpoint_id)
    if not pod["present"]:
        raise CNIError(spec.DATAPATH_FAILURE, f"interface {env.ifname} is missing in {env.netns}")
    if endpoint.get("counters") is None:
        raise CNIError(spec.DATAPATH_FAILURE, f"host veth {endpoint['networking']['interface-name']} is missing")
    if endpoint["state"] not in ("ready", "waiting-for-identity"):
        raise CNIError(spec.DATAPATH_FAILURE, f"endpoint {env.endpoint_id} is {endpoint['state']}")
    have = {a.get("ipv4") for a in endpoint["networking"]["addressing"]}
    for cidr in _own_addresses(prev, env):
        ip = cidr.split("/")[0]
        if ip not in have:
            raise CNIError(spec.INVALID_CONFIG, f"prevResult IP {ip} differs from the endpoint's {sorted(have)}")
        if cidr not in pod["addresses"]:
            raise CNIError(
                spec.DATAPATH_FAILURE,
                f"interface {env.ifname} in {env.netns} lacks {cidr} (it has: {', '.join(pod['addresses']) or 'none'})",
            )


def _own_addresses(prev: dict[str, Any], env: Environment) -> list[str]:
    """The addresses prevResult puts on CNI_IFNAME in CNI_NETNS: podnet's (a chain may list others)."""
    interfaces: list[Any] = prev["interfaces"] if isinstance(prev.get("interfaces"), list) else []
    listed: list[Any] = prev["ips"] if isinstance(prev.get("ips"), list) else []
    ips = [ip for ip in listed if isinstance(ip, dict)]
    ours = {
        i
        for i, item in enumerate(interfaces)
        if isinstance(item, dict) and item.get("name") == env.ifname and item.get("sandbox") == env.netns
    }
    return [str(ip.get("address", "")) for ip in ips if ip.get("interface") in ours]


def _prev_result_ips(prev: Any) -> set[str]:
    """The IPs of a prevResult (`{"ips": [{"address": "10.0.0.2/32"}, …]}`); none when it is absent."""
    if prev is None:
        return set()
    if not isinstance(prev, dict):
        raise CNIError(spec.INVALID_CONFIG, f"prevResult must be a JSON object, got {type(prev).__name__}")
    ips = prev.get("ips", [])
    if not isinstance(ips, list):
        raise CNIError(spec.INVALID_CONFIG, f"prevResult.ips must be a list, got {type(ips).__name__}")
    out = set()
    for i, item in enumerate(ips):
        address = item.get("address") if isinstance(item, dict) else None
        if not isinstance(address, str):
            raise CNIError(spec.INVALID_CONFIG, f"prevResult.ips[{i}] must be an object with an address string")
        out.add(address.split("/")[0])
    return out


def status(conf: NetConf, client: AgentCalls) -> None:
    try:
        health = client.healthz()
    except AgentUnreachableError as err:
        raise CNIError(spec.NOT_AVAILABLE, str(err)) from None
    if not health.get("pod-cidr"):
        raise CNIError(spec.NOT_AVAILABLE, f"node {health.get('node')} has no pod CIDR yet")
    if health["ipam"]["state"] != "ok":
        raise CNIError(spec.NOT_AVAILABLE, health["ipam"]["message"])
    if health["state"] == "failure":
        raise CNIError(
            spec.NOT_AVAILABLE,
            "; ".join(f"{k}: {health[k]['message']}" for k in ("store", "datapath") if health[k]["state"] == "failure"),
        )


def gc(conf: NetConf, client: AgentCalls) -> list[str]:
    """Delete every podnet CNI endpoint of this network not in cni.dev/valid-attachments."""
    valid = conf.raw.get("cni.dev/valid-attachments")
    if not isinstance(valid, list):
        raise CNIError(spec.INVALID_CONFIG, "GC needs cni.dev/valid-attachments (a list of {containerID, ifname})")
    keep = {
        spec.endpoint_id(a["containerID"], a["ifname"])
        for a in valid
        if isinstance(a, dict) and isinstance(a.get("containerID"), str) and isinstance(a.get("ifname"), str)
    }
    removed = []
    for endpoint in _call("listing endpoints", client.endpoint_list):
        if endpoint["id"].startswith(PODNET_ENDPOINT_PREFIX) and endpoint["id"] not in keep:
            _call(f"deleting stale endpoint {endpoint['id']}", client.endpoint_delete, endpoint["id"], release_ip=True)
            removed.append(endpoint["id"])
    return removed
