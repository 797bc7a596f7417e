"""What the fuzzed node looks like, and the values every interface is fed: plausible ones drawn from a
small pool (so that generated requests meet each other's endpoints, IPs and networks) and hostile ones."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import strategies as st

POD_CIDR = "10.44.0.0/24"
ROUTER_IP = "10.44.0.1"
NETWORK = ipaddress.IPv4Network(POD_CIDR)

# The ids dockerd used in the recording (tests/fixtures/libnetwork), so that replayed and generated requests meet.
DOCKER_NET = [
    "d82677aa9b6b6a4d4558e95975a2c551717eca3e25f850a22d7a7db6dbd2169d",
    "e78a79ad774a4ade2c0c53f970876c8b5952766e5fd271866944bb84bfdeb932",
    "0499a74dfc58809fe20df6d7ab8dc0aaddd89f39bba7ff691764ab5f8230876d",
]
DOCKER_EP = [
    "0952f5a45eda58ff1cf22fde8753ef599a9ce44c16beae8c05f2c8636c0daacd",
    "6f10f9e3901a3c363cf9481510b0a51d501d48e1a144fc399fd83a23e274c5d9",
    "5e4e433820df56d37ec428d3b7c029e0148e350d4ef98499f1aa84a6c11bece1",
    "3be9f5a4d0df9388f2e101d22b1b9d33f557439f3d9b27373d64dba53ff5a705",
    "2c457f5ce7bb944e138a28bf6af37e1abe17a2b33ff0a11e8e7c78c543fdb432",
]
CONTAINER_IDS = ["c0ffee01", "c0ffee02", "5e4e433820df56d3" * 4]
ENDPOINT_IDS = ["ep1", "ep2", "cni-c0ffee01-eth0", *DOCKER_EP[:2]]
POLICY_NAMES = ["allow-web", "deny-all", "a.b-c"]
OWNERS = ["default/app1", "default/app2", "docker-ipam", "cni/c0ffee01"]
# Owners the agent writes itself: a client naming one pretends to be the agent.
RESERVED_OWNERS = ["router", "endpoint:ep1", "endpoint:ghost", "released-endpoint:ep2", "quarantined"]

# A few hosts of the pod CIDR (few, so that allocations collide), the addresses no pod may have, and others.
HOSTS = [str(NETWORK[i]) for i in range(2, 7)]
SPECIAL_ADDRESSES = [ROUTER_IP, str(NETWORK.network_address), str(NETWORK.broadcast_address)]
OTHER_ADDRESSES = ["10.45.0.5", "0.0.0.0", "255.255.255.255", "127.0.0.1", "169.254.0.1"]
ADDRESS_FORMS = ["10.44.0.5/32", " 10.44.0.5", "10.44.0.05", "10.44.0.5\n", "::1", "", "10.44.0", "4294967295"]

SMUGGLE = (
    "x HTTP/1.1\r\nHost: podnet\r\n\r\nDELETE /v1/policy HTTP/1.1\r\nHost: podnet\r\nContent-Length: 0\r\n\r\nGET /"
)
HOSTILE_TEXT = [
    SMUGGLE,
    "../../policy",
    "..",
    ".",
    "a/b",
    "ep?release-ip=true",
    "ep#frag",
    "a b",
    "a%2Fb",
    "%00",
    "ünïcode",
    "\u202eevil",
    "-leading",
    "_under",
    "x" * 129,
    "x" * 5000,
    "\x1b[31mred",
    "tab\there",
    "nul\x00byte",
    "'; DROP TABLE kv; --",
    "${HOME}",
    "\ufeffbom",
    "\U0001f600",
    "null",
    "0",
]

addresses = st.sampled_from(HOSTS + SPECIAL_ADDRESSES) | st.sampled_from(OTHER_ADDRESSES + ADDRESS_FORMS)
endpoint_ids = st.sampled_from(ENDPOINT_IDS)
network_ids = st.sampled_from(DOCKER_NET)
# Text of any kind; without lone surrogates where it must be UTF-8 (a path, a header, the environment).
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
hostile_text = st.sampled_from(HOSTILE_TEXT) | any_text
# Inside JSON, lone surrogates can travel (as \ud800 escapes): valid JSON, invalid Unicode.
json_text = st.sampled_from([*HOSTILE_TEXT, "\ud800", "id=\udfff"]) | st.text(max_size=40)
# No pod may have these: the router's, the network's and broadcast, outside the pod CIDR, not an address.
odd_addresses = st.sampled_from(SPECIAL_ADDRESSES) | st.sampled_from(OTHER_ADDRESSES + ADDRESS_FORMS) | hostile_text


def rarely(n: int) -> st.SearchStrategy[bool]:
    """True about once in `n` draws (hypothesis favours small integers: `integers(0, n) == 0` is far likelier)."""
    return st.sampled_from([False] * (n - 1) + [True])


def pick(pool: list[str], *, in_json: bool = False) -> st.SearchStrategy[str]:
    """Mostly a value from the pool, sometimes a hostile one (`in_json`: lone surrogates too)."""
    return st.one_of(st.sampled_from(pool), st.sampled_from(pool), json_text if in_json else hostile_text)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    json_text,
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=8,
)


def deep(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


# Bodies no JSON encoder writes: nesting past any limit, lone surrogates, other encodings, cut short.
HOSTILE_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,
    deep(65),
    deep(2000),
    b'{"labels": ["id=\\ud800"]}',
    b'{"\\udfff": 1}',
    b'"\\udc00"',
    b'{"name": "\xff\xfe"}',
    '{"name": "é"}'.encode("latin-1"),
    '{"name": "x"}'.encode("utf-16"),
    b'{"name": ',
    b"{",
    b"",
    b"null",
    b"[]",
    b"1e999999",
    b"NaN",
    b"-Infinity",
    b'{"a": 1, "a": 2}',
    b"\x00" * 64,
    b" " * 1024,
    b'{"x": "' + b"y" * (1 << 20) + b'"}',  # past the 1 MiB cap
]
hostile_bodies = st.sampled_from(HOSTILE_BODIES)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one part changed: replaced by any JSON value, removed, or joined by an unknown key."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, where: tuple[Any, ...]) -> None:
        paths.append(where)
        if isinstance(node, dict):
            for key, item in node.items():
                walk(item, (*where, key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*where, i))

    walk(value, ())
    where = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "remove", "extra"]))
    if not where:
        return draw(json_values) if action != "extra" or not isinstance(value, dict) else {**value, "x-extra": 1}
    copy = json.loads(json.dumps(value))
    parent = copy
    for step in where[:-1]:
        parent = parent[step]
    last = where[-1]
    if action == "replace":
        parent[last] = draw(json_values)
    elif action == "remove":
        del parent[last]
    elif isinstance(parent, dict):
        parent[draw(json_text.filter(lambda k: k not in parent))] = draw(json_values)
    else:
        parent.append(draw(json_values))
    return copy
