"""Agent REST requests generated from the agent's OpenAPI document (docs/agent-openapi.json).

Every operation of the document: its path parameters, query parameters and headers, and a body drawn
from its request schema (a small walker over the JSON schema; property names pick plausible values
from tests.fuzz.values), or that body with one part changed, any JSON, or bytes no encoder writes.
Now and then a method the route does not take, a path the API does not have, or a request no HTTP
client sends (framing "malformed") or whose body never arrives in full (framing "short").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from tests.fuzz import values as v
from tests.fuzz.cni import cni_calls
from tests.fuzz.outcomes import ENDPOINT_CHANGES
from tests.fuzz.wire import HTTPCase

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "agent-openapi.json"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    name: str
    params: tuple[tuple[str, str], ...]  # (in, name)
    body: dict[str, Any] | None


def load() -> tuple[list[Operation], dict[str, Any]]:
    document = json.loads(DOCUMENT.read_text())
    operations = []
    for path, methods in sorted(document["paths"].items()):
        for method, op in sorted(methods.items()):
            params = tuple((p["in"], p["name"]) for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            operations.append(Operation(method.upper(), path, op["operationId"], params, body))
    return operations, document["components"]["schemas"]


def allowed_changes(method: str, route: str) -> frozenset[str]:
    """What a request to `route` may change (see outcomes.Snapshot.changes): reads change nothing."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return frozenset()
    if route.startswith("/v1/ipam"):
        return frozenset({"ips"})
    if route.startswith(("/v1/endpoint", "/v1/cni")):
        return ENDPOINT_CHANGES
    if route.startswith("/v1/docker/network"):
        return frozenset({"networks"})
    if route.startswith("/v1/policy"):
        return frozenset({"policies", "policy-maps"})
    return frozenset()


# -- values by name: what a property, path segment, query parameter ("?name") or header holds ---------
# PLAUSIBLE: what a correct client sends (the node may still refuse it: taken, absent…); ODD: the rest.
# A request has at most one odd field (or a mutated body), so that it gets past the first check.

LABELS = ["id=app1", "id=app2", "role=web", "id=app2;role=x", "K8S_POD_NAME=p1", "k", "a=b=c", "é=ü"]
ODD_LABELS = ["", "x y", "x" * 254, "id=\u2028", v.SMUGGLE]
NETNS = ["/var/run/netns/pod1", "/run/netns/pod2"]
ODD_NETNS = ["/proc/1/ns/net", "/etc/shadow", "relative/netns", "/dev/zero", "/", ""]
IFNAMES = ["eth0", "net1"]
ODD_IFNAMES = ["eth0123456789abc", "é" * 8, "a/b", ".", "lo", ""]
QUERY_POOLS = ["10.44.0.0/28", "10.44.0.128/25", v.POD_CIDR]
ODD_POOLS = ["10.45.0.0/24", "10.44.0.5/32", "10.44.0.0/33", "0.0.0.0/0", "10.44.0.1/24"]
LABEL_KEYS = st.sampled_from(["id", "role"])
LABEL_VALUES = st.sampled_from(["app1", "app2", "web"])

PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "ipv4": st.sampled_from(v.HOSTS),
    "labels": st.lists(st.sampled_from(LABELS), max_size=3),
    "netns": st.sampled_from(NETNS),
    "interface-name": st.sampled_from(IFNAMES),
    "container-id": st.sampled_from(v.CONTAINER_IDS),
    "docker-endpoint-id": st.sampled_from(v.DOCKER_EP),
    "docker-network-id": st.sampled_from(v.DOCKER_NET),
    "sandbox-key": st.sampled_from(["/var/run/docker/netns/cd78ee2a9450", *NETNS]),
    "pod-name": st.sampled_from(v.OWNERS),
    "pool": st.sampled_from(["0.0.0.0/0", v.POD_CIDR]),
    "gateway": st.just(f"{v.ROUTER_IP}/32"),
    "name": st.sampled_from(v.POLICY_NAMES),
    "matchLabels": st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=2),
    "port": st.integers(0, 65535) | st.just("80"),
    "protocol": st.sampled_from(["TCP", "UDP", "ANY"]),
    "?owner": st.sampled_from(v.OWNERS),
    "?family": st.just("ipv4"),
    "?pool": st.sampled_from(QUERY_POOLS),
    "?release-ip": st.sampled_from(["true", "false"]),
    "?recent": st.sampled_from(["false", "true"]),
    "?type": st.sampled_from(["drop", "trace", "all"]),
    "?Expiration": st.sampled_from(["true", "false"]),
    "/ip": st.sampled_from(v.HOSTS),
    "/name": st.sampled_from(v.POLICY_NAMES),
}
ODD: dict[str, st.SearchStrategy[Any]] = {
    "ipv4": v.odd_addresses,
    "labels": st.lists(st.sampled_from(ODD_LABELS) | v.json_text, min_size=1, max_size=3),
    "netns": v.pick(ODD_NETNS, in_json=True),
    "interface-name": v.pick(ODD_IFNAMES, in_json=True),
    "name": v.pick(["UPPER", "-x", "a" * 64, ""], in_json=True),
    "matchLabels": st.dictionaries(v.json_text, v.json_text, min_size=1, max_size=2),
    "port": st.sampled_from([-1, 65536, "http", "0x50", "", 2**64]),
    "protocol": st.sampled_from(["tcp", "SCTP", "", "TCP\n"]),
    "?owner": v.pick([*v.RESERVED_OWNERS, "", " ", "a" * 300]),
    "?family": v.pick(["ipv6", "IPV4", "", "inet"]),
    "?pool": v.pick(ODD_POOLS),
    "?release-ip": v.pick(["maybe", "", "TRUE", "2"]),
    "?recent": v.pick(["maybe", ""]),
    "?type": v.pick(["everything", ""]),
    "?Expiration": v.pick(["maybe", "", "1", "yes"]),
    "/ip": v.odd_addresses,
    "/name": v.hostile_text,
}


def value_of(name: str, odd: bool) -> st.SearchStrategy[Any] | None:
    if odd:
        return ODD.get(name, v.hostile_text if name[:1] in "?/" else v.json_text | v.json_values)
    return PLAUSIBLE.get(name)


def path_value(operation: Operation, name: str, odd: bool) -> st.SearchStrategy[str]:
    if name == "id":
        pool = v.DOCKER_NET if "/docker/network" in operation.path else v.ENDPOINT_IDS
        return v.hostile_text if odd else st.sampled_from(pool)
    chosen = value_of("/" + name, odd)
    return chosen if chosen is not None else v.hostile_text


def from_schema(
    schema: dict[str, Any], components: dict[str, Any], name: str | None = None, odd: str | None = None
) -> st.SearchStrategy[Any]:
    """Values of a JSON schema (the subset pydantic writes); a property named in PLAUSIBLE takes those
    values, and the property named `odd` an ODD one."""
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[-1]], components, name, odd)
    if name is not None:
        named = value_of(name, odd == name)
        if named is not None:
            return named
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of(*(from_schema(s, components, None, odd) for s in schema[key]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        return st.text(max_size=min(schema.get("maxLength", 40), 40))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**40)), schema.get("maximum", 2**40))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), components, None, odd)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=3)
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {k: from_schema(s, components, k, odd) for k, s in properties.items()}
        more = schema.get("additionalProperties", False)
        if not properties and more is not False:
            inner = v.json_values if more is True else from_schema(more, components, None, odd)
            return st.dictionaries(v.json_text, inner, max_size=3)
        return st.fixed_dictionaries(
            {k: s for k, s in fields.items() if k in required},
            optional={k: s for k, s in fields.items() if k not in required},
        )
    return v.json_values


def property_names(schema: dict[str, Any], components: dict[str, Any], seen: frozenset[str] = frozenset()) -> set[str]:
    """Every property name a body of `schema` can have, nested ones too."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        return set() if ref in seen else property_names(components[ref], components, seen | {ref})
    names: set[str] = set()
    for sub in [*schema.get("anyOf", []), *schema.get("oneOf", []), *([schema["items"]] if "items" in schema else [])]:
        names |= property_names(sub, components, seen)
    for key, sub in schema.get("properties", {}).items():
        names |= {key} | property_names(sub, components, seen)
    return names


# -- requests -------------------------------------------------------------------------------------

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
]
METHODS = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]
MALFORMED = [
    b"GET /v1/endpoint/a b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/endpoint/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/ipam?owner=x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /v1/ipam?owner=x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /v1/ipam?owner=x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /v1/policy HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n Folded: header\r\n\r\n",
]


def _header_safe(text: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


# What the agent's own clients send ("$name": a value of that name): most plausible bodies follow these.
RULE = {
    "name": "$name",
    "endpointSelector": {"matchLabels": "$matchLabels"},
    "ingress": [{"fromEndpoints": [{"matchLabels": "$matchLabels"}], "toPorts": [{"ports": [{"port": "$port"}]}]}],
}
TEMPLATES: dict[str, list[Any]] = {
    "endpoint_create": [
        {
            "addressing": {"ipv4": "$ipv4"},
            "container-id": "$container-id",
            "netns": "$netns",
            "interface-name": "$interface-name",
            "pod-name": "$pod-name",
            "labels": "$labels",
        },
        {"addressing": {"ipv4": "$ipv4"}, "docker-endpoint-id": "$docker-endpoint-id", "docker-network-id": "$id"},
    ],
    "endpoint_patch": [
        {"container-id": "$container-id", "container-name": "$container-name", "labels": "$labels"},
        {"sandbox-key": "$sandbox-key"},
        {"labels": "$labels"},
    ],
    "network_put": [{"id": "$id", "pool": "$pool", "gateway": "$gateway", "options": {}}],
    "policy_put": [RULE, [RULE, {**RULE, "ingress": []}]],
}


INTERESTING = ["ipv4", "netns", "labels", "matchLabels"]  # where a mistake bypasses policy or steals an IP


def leaves(template: Any) -> list[str]:
    if isinstance(template, dict):
        return [name for item in template.values() for name in leaves(item)]
    if isinstance(template, list):
        return [name for item in template for name in leaves(item)]
    return [template[1:]] if isinstance(template, str) and template.startswith("$") else []


@st.composite
def filled(draw: st.DrawFn, template: Any, odd: str | None, path_id: str | None) -> Any:
    if isinstance(template, dict):
        return {k: draw(filled(item, odd, path_id)) for k, item in template.items()}
    if isinstance(template, list):
        return [draw(filled(item, odd, path_id)) for item in template]
    if not (isinstance(template, str) and template.startswith("$")):
        return template
    name = template[1:]
    if name == "id" and odd != "id":
        return path_id if path_id is not None else draw(st.sampled_from(v.DOCKER_NET))
    chosen = value_of(name, odd == name)
    return draw(chosen if chosen is not None else st.text(max_size=30))


@st.composite
def bodies(draw: st.DrawFn, operation: Operation, components: dict[str, Any], path_id: str | None, odd: bool) -> bytes:
    """A body for `operation`: as its clients send it or from its schema, with one property odd, mutated,
    any JSON or hostile bytes when `odd`."""
    if operation.body is None:
        return b"" if not odd else draw(st.sampled_from([b"", b"{}"]) | v.hostile_bodies | v.json_values.map(v.encode))
    kind = draw(st.sampled_from(["odd-property"] * 3 + ["mutated", "json", "hostile"])) if odd else "plain"
    if kind == "hostile":
        return draw(v.hostile_bodies)
    if kind == "json":
        return v.encode(draw(v.json_values))
    templates = TEMPLATES.get(operation.name, [])
    value: Any
    if operation.name == "cni" and kind != "odd-property":
        value = draw(cni_calls())
    elif templates and not draw(v.rarely(3)):
        template = draw(st.sampled_from(templates))
        names = sorted(set(leaves(template)))
        odd_name = (
            draw(st.sampled_from([n for n in INTERESTING if n in names] + names)) if kind == "odd-property" else None
        )
        value = draw(filled(template, odd_name, path_id))
    else:
        names = sorted(property_names(operation.body, components))
        odd_name = draw(st.sampled_from(names)) if kind == "odd-property" else None
        value = draw(from_schema(operation.body, components, odd=odd_name))
        if isinstance(value, dict) and "id" in value and path_id is not None and odd_name != "id":
            value["id"] = path_id  # a docker network's id is its path's
    if kind == "mutated":
        value = draw(v.mutated(value))
    return v.encode(value)


@st.composite
def operation_requests(draw: st.DrawFn, operation: Operation, components: dict[str, Any]) -> HTTPCase:
    """A request for `operation` with every field plausible, or all but one (a parameter, or the body)."""
    fields = [f"{where}:{name}" for where, name in operation.params] + ["body"] * (2 if operation.body else 1)
    odd = draw(st.sampled_from([None, None, *fields]))
    target, path_id = operation.path, None
    query: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    for where, name in operation.params:
        is_odd = odd == f"{where}:{name}"
        if where == "path":
            value = draw(path_value(operation, name, is_odd))
            path_id = value
            keep_slash = is_odd and draw(st.booleans())  # as the old client did
            target = target.replace("{" + name + "}", quote(value, safe="/" if keep_slash else ""))
            continue
        if not is_odd and draw(v.rarely(10)):
            continue  # left out
        chosen = value_of("?" + name, is_odd)
        value = draw(chosen if chosen is not None else v.hostile_text)
        if where == "query":
            query.append((name, value))
        elif _header_safe(value):
            headers.append((name, value))
    if odd is not None and draw(v.rarely(5)):
        query.append((draw(v.hostile_text), draw(v.hostile_text)))  # one the route does not know
    if query:
        target += "?" + urlencode(query, quote_via=quote)
    body = draw(bodies(operation, components, path_id, odd == "body"))
    if body:
        headers.append(("Content-Type", draw(st.sampled_from(CONTENT_TYPES[:2] * 4 + CONTENT_TYPES))))
    method = draw(st.sampled_from(METHODS)) if draw(v.rarely(20)) else operation.method
    framing = "short" if body and draw(v.rarely(50)) else "ok"
    return HTTPCase(method, target, body, headers, framing)


@st.composite
def unknown_paths(draw: st.DrawFn) -> HTTPCase:
    path = "/" + "/".join(quote(draw(v.hostile_text), safe="") for _ in range(draw(st.integers(1, 3))))
    prefix = draw(st.sampled_from(["", "/v1", "/v1/endpoint", "/v2", "//v1"]))
    return HTTPCase(draw(st.sampled_from(METHODS)), prefix + path)


def rest_requests() -> st.SearchStrategy[HTTPCase]:
    """Requests of every operation, those that change something four times as often as reads."""
    operations, components = load()
    weighted = [op for op in operations for _ in range(1 if op.method == "GET" else 4)]
    per_operation = [operation_requests(op, components) for op in weighted]
    malformed = st.sampled_from(MALFORMED).map(lambda raw: HTTPCase("RAW", "", framing="malformed", raw=raw))
    return st.one_of(*per_operation, unknown_paths(), malformed)
