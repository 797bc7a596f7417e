"""The probes of issue 13 that found its bugs, per interface: the fuzz tests try them first, as explicit
examples, before anything generated."""

from __future__ import annotations

import json
from typing import Any

from tests.fuzz import values as v
from tests.fuzz.cni import AGENT, CNICase
from tests.fuzz.libnetwork import PluginCase
from tests.fuzz.wire import HTTPCase


def _put_endpoint(endpoint_id: str, body: dict[str, Any]) -> HTTPCase:
    return HTTPCase("PUT", f"/v1/endpoint/{endpoint_id}", v.encode(body), [("Content-Type", "application/json")])


def _json(method: str, target: str, body: Any) -> HTTPCase:
    return HTTPCase(method, target, v.encode(body), [("Content-Type", "application/json")])


# -- agent REST ------------------------------------------------------------------------------------

GOOD_RULE = {"name": "allow-web", "endpointSelector": {"matchLabels": {"id": "app1"}}, "ingress": [{}]}
REST: list[list[HTTPCase]] = [
    # 1: an endpoint with the router IP, the network or broadcast address, or one outside the pod CIDR
    *([_put_endpoint("x", {"addressing": {"ipv4": ip}})] for ip in [*v.SPECIAL_ADDRESSES, "10.45.0.5"]),
    # an IP held under an owner only the agent writes, then released
    [HTTPCase("POST", "/v1/ipam?owner=endpoint%3Aghost"), HTTPCase("DELETE", f"/v1/ipam/{v.HOSTS[0]}")],
    [HTTPCase("POST", f"/v1/ipam/{v.HOSTS[1]}?owner=router"), HTTPCase("POST", "/v1/ipam?owner=router")],
    [HTTPCase("POST", "/v1/ipam?owner=quarantined"), HTTPCase("DELETE", f"/v1/ipam/{v.HOSTS[0]}")],
    # 2: a CNI call through the API whose container id carries a second request
    [_json("POST", "/v1/cni", {"env": {"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": v.SMUGGLE}, "stdin": "{}"})],
    [HTTPCase("DELETE", "/v1/endpoint/ep1%3Frelease-ip%3Dtrue"), HTTPCase("GET", "/v1/endpoint/a%2F..%2F..%2Fpolicy")],
    # 3: two label sets that joined with ';' are one
    [
        _put_endpoint("ep1", {"addressing": {"ipv4": v.HOSTS[0]}, "labels": ["id=app2;role=x"]}),
        _put_endpoint("ep2", {"addressing": {"ipv4": v.HOSTS[1]}, "labels": ["id=app2", "role=x"]}),
    ],
    # 6: a netns that is not a pod's
    [_put_endpoint("ep1", {"addressing": {"ipv4": v.HOSTS[2]}, "netns": "relative", "interface-name": "eth0"})],
    # 7: JSON that crashes later
    [HTTPCase("PUT", "/v1/endpoint/ep1", b'{"labels": ' + v.HOSTILE_BODIES[0] + b"}")],
    [HTTPCase("PUT", "/v1/policy", b'{"name": "\\udfff", "endpointSelector": {}}')],
    [HTTPCase("PUT", "/v1/policy", b'[{"name": "x"', framing="short")],
    # 9: an import of a good rule and a bad one
    [_json("PUT", "/v1/policy", [GOOD_RULE, {**GOOD_RULE, "name": "BAD NAME"}])],
    [_json("PUT", "/v1/policy", [GOOD_RULE, {**GOOD_RULE, "ingress": [{"toPorts": [{"ports": [{"port": "http"}]}]}]}])],
    # 11: the monitor checks before it streams
    [HTTPCase("GET", "/v1/monitor?recent=maybe"), HTTPCase("GET", "/v1/monitor?type=everything")],
]


# -- libnetwork ------------------------------------------------------------------------------------

_NET, _EP = v.DOCKER_NET[0], v.DOCKER_EP[0]
LIBNETWORK: list[list[PluginCase]] = [
    # 1: an endpoint with the router IP (dockerd passes what an IPAM driver answered)
    [
        PluginCase(
            "/NetworkDriver.CreateEndpoint",
            {"NetworkID": _NET, "EndpointID": _EP, "Interface": {"Address": f"{ip}/32"}},
        )
    ]
    for ip in v.SPECIAL_ADDRESSES
] + [
    # 2: ids that would change the agent's request
    [PluginCase("/NetworkDriver.EndpointOperInfo", {"NetworkID": _NET, "EndpointID": v.SMUGGLE})],
    [PluginCase("/NetworkDriver.DeleteEndpoint", {"NetworkID": _NET, "EndpointID": "ep?release-ip=true"})],
    [PluginCase("/IpamDriver.ReleaseAddress", {"PoolID": f"podnet:{v.POD_CIDR}", "Address": "../../policy"})],
    # 7: what crashed: no NetworkID on Join (after_call), an Address that is not a string, JSON that crashes later
    [PluginCase("/NetworkDriver.Join", {"EndpointID": _EP, "SandboxKey": "/var/run/docker/netns/x"})],
    [PluginCase("/NetworkDriver.CreateEndpoint", {"NetworkID": _NET, "EndpointID": _EP, "Interface": {"Address": 5}})],
    [PluginCase("/NetworkDriver.Join", raw=b'{"EndpointID": "\\ud800"}')],
    [PluginCase("/NetworkDriver.Join", raw=v.HOSTILE_BODIES[0])],
]


# -- CNI -------------------------------------------------------------------------------------------


def _call(command: str, *, conf: dict[str, Any] | None = None, **env: str) -> CNICase:
    base = {"CNI_COMMAND": command, "CNI_CONTAINERID": v.CONTAINER_IDS[0], "CNI_NETNS": "/var/run/netns/pod1"}
    base.update({"CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", **env})
    text = json.dumps({"cniVersion": "1.1.0", "name": "podnet", "agentSocket": AGENT, **(conf or {})})
    return CNICase(base, text.encode())


CNI: list[list[CNICase]] = [
    # 2: a container id that carries a second request, or a path of its own
    [_call("ADD"), _call("CHECK", CNI_CONTAINERID=v.SMUGGLE), _call("DEL")],
    [_call("ADD", CNI_CONTAINERID="abc?x"), _call("DEL", CNI_CONTAINERID="abc?x")],
    [_call("ADD", CNI_CONTAINERID="a b"), _call("ADD", CNI_CONTAINERID="ünïcode")],
    [_call("ADD", CNI_IFNAME="é" * 8), _call("ADD", CNI_IFNAME="a:b")],
    # 6: a netns that is not a pod's
    [_call("ADD", CNI_NETNS="relative/ns"), _call("ADD", CNI_NETNS="/proc/1/ns/net", CNI_CONTAINERID="c0ffee02")],
    # 7: a prevResult that is not an object
    [_call("ADD"), _call("CHECK", conf={"prevResult": "a string"}), _call("DEL")],
    # 10: a nested agentSocket never wins; an unusable one is code 7
    [_call("STATUS", conf={"args": {"agentSocket": "/nonexistent/elsewhere.sock"}})],
    [_call("ADD", conf={"agentSocket": "/" + "x" * 110}), _call("ADD", conf={"agentSocket": "relative.sock"})],
]
