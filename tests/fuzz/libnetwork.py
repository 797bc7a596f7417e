"""libnetwork requests shaped like the ones dockerd 20.10 sent (tests/fixtures/libnetwork).

Two kinds of sequence: a window of the recording replayed in order (ids, pools and addresses mapped to
the fuzzed node's, addresses learned from podnet's own replies as dockerd would), now and then with
one request changed; and requests of the recorded shapes with every field drawn anew (ids, addresses
and pools from small pools, hostile values, fields removed or of the wrong type), bodies no JSON
encoder writes, methods the plugin does not have, and HTTP methods dockerd never uses.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.fuzz import values as v
from tests.fuzz.wire import HTTPCase

HERE = Path(__file__).resolve()
SHARED = HERE.parents[3] / "shared" / "fixtures" / "libnetwork" / "dockerd-20.10-requests.jsonl"
VENDORED = HERE.parents[1] / "fixtures" / "libnetwork" / "dockerd-20.10-requests.jsonl"
FIXTURE = SHARED if SHARED.exists() else VENDORED
RECORDED = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
METHODS = sorted({r["path"] for r in RECORDED})
POOL = "@POOL@"  # the PoolID podnet answered RequestPool with
POOL_CIDR = "@POOL_CIDR@"  # the Pool it answered
ADDRESS = "@ADDRESS:"  # @ADDRESS:<recorded>@: the address podnet gave in place of <recorded>
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
RECORDED_POOLS = ipaddress.IPv4Network("10.208.0.0/12")  # the recording plugin's addresses (10.213…, 10.214…)


@dataclass
class PluginCase:
    path: str
    body: Any = None
    raw: bytes | None = None  # sent as it is instead of `body`
    method: str = "POST"
    replayed: bool = False

    def describe(self) -> str:
        shown = repr(self.raw[:160]) if self.raw is not None else json.dumps(self.body)[:300]
        return f"{self.method} {self.path} {shown}"


def _recorded_address(text: str) -> bool:
    try:
        return ipaddress.IPv4Interface(text).ip in RECORDED_POOLS
    except ValueError:
        return False


def translate(value: Any, path: str, key: str = "") -> Any:
    """A recorded body (of a request to `path`) with the recording plugin's pools and addresses made the
    fuzzed node's (dockerd's ids stay: tests.fuzz.values draws from them)."""
    if isinstance(value, dict):
        return {k: translate(item, path, k) for k, item in value.items()}
    if isinstance(value, list):
        return [translate(item, path, key) for item in value]
    if not isinstance(value, str):
        return value
    if key == "PoolID":
        return POOL
    if key == "AddressSpace":
        return "podnet-local"
    if key == "Pool" and value:  # --subnet when asked for a pool; then what podnet answered
        return v.POD_CIDR if path == "/IpamDriver.RequestPool" else POOL_CIDR
    if key == "SubPool" and value:
        return "10.44.0.0/28"
    if key == "Gateway":
        return f"{v.ROUTER_IP}/32"
    if _recorded_address(value):
        return f"{ADDRESS}{value}@"
    return value


class Resolver:
    """Fills what podnet answered into later requests, as dockerd does with its replies."""

    def __init__(self) -> None:
        self.pool_id = f"podnet:{v.POD_CIDR}"
        self.pool_cidr = "0.0.0.0/0"
        self.last_address = v.HOSTS[0]
        self.addresses: dict[str, str] = {}

    def resolve(self, path: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(path, item) for k, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(path, item) for item in value]
        if value == POOL:
            return self.pool_id
        if value == POOL_CIDR:
            return self.pool_cidr
        if isinstance(value, str) and value.startswith(ADDRESS):
            recorded = value.removeprefix(ADDRESS).rstrip("@")
            ip, _, length = recorded.partition("/")
            if path == "/NetworkDriver.CreateEndpoint":
                self.addresses[ip] = self.last_address
            elif ip.endswith(".1") or ip.endswith(".254"):
                self.addresses.setdefault(ip, v.ROUTER_IP)  # the gateway: podnet's is the router IP
            ours = self.addresses.get(ip, v.HOSTS[3])
            return f"{ours}/{length}" if length else ours
        return value

    def learn(self, path: str, body: Any, reply: Any) -> None:
        if not isinstance(reply, dict):
            return
        if path == "/IpamDriver.RequestPool" and isinstance(reply.get("PoolID"), str):
            self.pool_id, self.pool_cidr = reply["PoolID"], str(reply.get("Pool", self.pool_cidr))
        if path == "/IpamDriver.RequestAddress" and isinstance(reply.get("Address"), str):
            options = body.get("Options") if isinstance(body, dict) else None
            if not (isinstance(options, dict) and options.get("RequestAddressType")):
                self.last_address = reply["Address"].split("/")[0]


# -- fields drawn anew ----------------------------------------------------------------------------

POOL_IDS = [f"podnet:{v.POD_CIDR}", f"podnet:{v.POD_CIDR}|10.44.0.0/28", "podnet:10.45.0.0/24", "probe-10.213.0.0/16"]
CIDRS = ["", v.POD_CIDR, "10.44.0.0/28", "10.45.0.0/16", "0.0.0.0/0", "10.44.0.0/33", "bogus"]
addresses_any = st.one_of(v.addresses, v.addresses.map(lambda a: f"{a}/32"), v.addresses.map(lambda a: f"{a}/24"))
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "NetworkID": v.pick(v.DOCKER_NET, in_json=True),
    "EndpointID": v.pick(v.DOCKER_EP, in_json=True),
    "PoolID": v.pick(POOL_IDS, in_json=True),
    "AddressSpace": v.pick(["podnet-local", "podnet-global", "probe-local"], in_json=True),
    "Pool": v.pick(CIDRS, in_json=True),
    "SubPool": v.pick(CIDRS, in_json=True),
    "Address": addresses_any | st.just(""),
    "Gateway": addresses_any,
    "SandboxKey": v.pick(["/var/run/docker/netns/cd78ee2a9450", "/proc/1/ns/net", "relative"], in_json=True),
    "V6": st.booleans(),
    "AddressIPv6": st.sampled_from(["", "fd00::2/64"]),
    "MacAddress": st.sampled_from(["", "02:42:ac:11:00:02", "zz"]),
    "RequestAddressType": st.sampled_from(["com.docker.network.gateway", "other"]),
}


@st.composite
def redrawn(draw: st.DrawFn, value: Any, key: str = "") -> Any:
    """A recorded body with every field of a known name drawn anew."""
    if isinstance(value, dict):
        return {k: draw(redrawn(item, k)) for k, item in value.items()}
    if isinstance(value, list):
        return [draw(redrawn(item, key)) for item in value]
    if key in FIELDS:
        return draw(FIELDS[key])
    return value


@st.composite
def hostile_variants(draw: st.DrawFn, case: PluginCase) -> PluginCase:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw", "method", "path"]))
    if kind == "mutated":
        return PluginCase(case.path, draw(v.mutated(case.body)), replayed=case.replayed)
    if kind == "raw":
        return PluginCase(case.path, raw=draw(v.hostile_bodies), replayed=case.replayed)
    if kind == "method":
        return PluginCase(case.path, case.body, method=draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"])))
    path = draw(st.sampled_from(["/NetworkDriver.Nope", "/Plugin.Activate/x", "/", "/ipamdriver.requestpool"]))
    return PluginCase(path, case.body)


@st.composite
def replayed_windows(draw: st.DrawFn) -> list[PluginCase]:
    start = draw(st.integers(0, len(RECORDED) - 1))
    window = RECORDED[start : start + draw(st.integers(1, 14))]
    cases = []
    for record in window:
        case = PluginCase(record["path"], translate(record["request"], record["path"]), replayed=True)
        if draw(v.rarely(7)):
            case = draw(hostile_variants(case))
        cases.append(case)
    return cases


@st.composite
def drawn_requests(draw: st.DrawFn) -> list[PluginCase]:
    cases = []
    for _ in range(draw(st.integers(1, 4))):
        record = draw(st.sampled_from(RECORDED))
        case = PluginCase(record["path"], draw(redrawn(translate(record["request"], record["path"]))))
        if draw(st.booleans()):
            case = draw(hostile_variants(case))
        cases.append(case)
    return cases


def plugin_sequences() -> st.SearchStrategy[list[PluginCase]]:
    return st.one_of(replayed_windows(), drawn_requests())


def to_http(case: PluginCase, resolver: Resolver) -> tuple[HTTPCase, Any]:
    """The HTTP request, and the body as the plugin will see it (None when raw)."""
    if case.raw is not None:
        return HTTPCase(case.method, case.path, case.raw, [("Content-Type", CONTENT_TYPE)]), None
    body = resolver.resolve(case.path, case.body)
    raw = b"" if body is None else json.dumps(body).encode()
    return HTTPCase(case.method, case.path, raw, [("Content-Type", CONTENT_TYPE)]), body
