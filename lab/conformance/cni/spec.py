"""The CNI spec as data: its versions, where each is published, the error codes, and the shape of a
result per version (fields, their types, which are required) with a checker that names every deviation.

Versions differ in their ADD result: 0.3.x and 0.4.0 carry `ips[].version`
("4"/"6"), 1.0.0 dropped it, 1.1.0 added interface `mtu`/`socketPath`/`pciID`
and route `mtu`/`advmss`/`priority`/`table`/`scope`. A field of another
version is a deviation: a result has the shape of the version it was asked for.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from lab.conformance.model import Citation

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]  # the ones this suite knows (0.1/0.2 predate results)
SEMVER = re.compile(r"\d+\.\d+\.\d+")

# Well-known error codes (spec 1.1 §5 Error).
INCOMPATIBLE_VERSION, INVALID_ENVIRONMENT, DECODING_FAILURE, INVALID_CONFIG = 1, 4, 6, 7
NOT_AVAILABLE = 50


def key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def at_least(version: str, floor: str) -> bool:
    return key(version) >= key(floor)


def cite(section: str, anchor: str, text: str, version: str = "1.1.0") -> Citation:
    return Citation(
        f"CNI spec {version}",
        section,
        f"https://github.com/containernetworking/cni/blob/spec-v{version}/SPEC.md#{anchor}",
        text,
    )


# field -> (JSON type, required). Types: "str", "int", "list[str]", "dict".
Fields = dict[str, tuple[str, bool]]

_IP_OLD: Fields = {
    "version": ("str", True),
    "address": ("str", True),
    "gateway": ("str", False),
    "interface": ("int", False),
}
_IP_NEW: Fields = {"address": ("str", True), "gateway": ("str", False), "interface": ("int", False)}
_IFACE: Fields = {"name": ("str", True), "mac": ("str", False), "sandbox": ("str", False)}
_IFACE_11: Fields = {**_IFACE, "mtu": ("int", False), "socketPath": ("str", False), "pciID": ("str", False)}
_ROUTE: Fields = {"dst": ("str", True), "gw": ("str", False)}
_ROUTE_11: Fields = {**_ROUTE, **{k: ("int", False) for k in ("mtu", "advmss", "priority", "table", "scope")}}
_DNS: Fields = {
    "nameservers": ("list[str]", False),
    "domain": ("str", False),
    "search": ("list[str]", False),
    "options": ("list[str]", False),
}
_TOP: Fields = {
    "cniVersion": ("str", True),
    "interfaces": ("list", False),
    "ips": ("list", False),
    "routes": ("list", False),
    "dns": ("dict", False),
}


def result_fields(version: str) -> dict[str, Fields]:
    """The ADD result's parts and their fields at `version`."""
    new = at_least(version, "1.0.0")
    latest = at_least(version, "1.1.0")
    return {
        "result": _TOP,
        "interfaces": _IFACE_11 if latest else _IFACE,
        "ips": _IP_NEW if new else _IP_OLD,
        "routes": _ROUTE_11 if latest else _ROUTE,
        "dns": _DNS,
    }


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, dict)


def _fields(where: str, item: Any, fields: Fields, version: str) -> list[str]:
    if not isinstance(item, dict):
        return [f"{where}: not a JSON object"]
    problems = []
    for name, (kind, required) in fields.items():
        if name not in item:
            if required:
                problems.append(f"{where}: '{name}' is missing (required at {version})")
        elif not _type_ok(item[name], kind):
            problems.append(f"{where}.{name}: {item[name]!r} is not {kind}")
    for name in item:
        if name not in fields:
            problems.append(f"{where}.{name}: not a field of a {version} result")
    return problems


def _ip(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _cidr(text: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    try:
        return ipaddress.ip_interface(text) if isinstance(text, str) and "/" in text else None
    except ValueError:
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def result_problems(result: Any, version: str) -> list[str]:
    """Every way `result` departs from an ADD result of `version` (empty: it conforms)."""
    parts = result_fields(version)
    problems = _fields("result", result, parts["result"], version)
    if not isinstance(result, dict):
        return problems
    if result.get("cniVersion") != version:
        problems.append(f"result.cniVersion: {result.get('cniVersion')!r}, asked for {version!r}")
    interfaces = _list(result.get("interfaces"))
    for part in ("interfaces", "ips", "routes"):
        for i, item in enumerate(_list(result.get(part))):
            problems += _fields(f"{part}[{i}]", item, parts[part], version)
    for i, ip in enumerate(_list(result.get("ips"))):
        if not isinstance(ip, dict):
            continue
        address = _cidr(ip.get("address"))
        if address is None:
            problems.append(f"ips[{i}].address: {ip.get('address')!r} is not an address in CIDR notation")
        elif "version" in ip and ip["version"] != str(address.version):
            problems.append(f"ips[{i}].version: {ip['version']!r} but the address is IPv{address.version}")
        if "gateway" in ip and _ip(ip["gateway"]) is None:
            problems.append(f"ips[{i}].gateway: {ip['gateway']!r} is not an IP address")
        index = ip.get("interface")
        if isinstance(index, int) and not 0 <= index < len(interfaces):
            problems.append(f"ips[{i}].interface: {index} points past the {len(interfaces)} interfaces")
    for i, route in enumerate(_list(result.get("routes"))):
        if not isinstance(route, dict):
            continue
        if _cidr(route.get("dst")) is None:
            problems.append(f"routes[{i}].dst: {route.get('dst')!r} is not in CIDR notation")
        if "gw" in route and _ip(route["gw"]) is None:
            problems.append(f"routes[{i}].gw: {route['gw']!r} is not an IP address")
    if isinstance(result.get("dns"), dict):
        problems += _fields("dns", result["dns"], parts["dns"], version)
    return problems


def error_problems(output: Any) -> list[str]:
    """How an error reply departs from the spec's error structure: `code`, `msg`, `details` (its
    `cniVersion` is judged on its own, by rule error.cniversion)."""
    if not isinstance(output, dict):
        return [f"stdout is not a JSON object: {output!r:.120}"]
    problems = []
    code = output.get("code")
    if not isinstance(code, int) or isinstance(code, bool) or code <= 0:
        problems.append(f"code: {code!r} is not a positive integer")
    if not isinstance(output.get("msg"), str) or not output.get("msg"):
        problems.append(f"msg: {output.get('msg')!r} is not a non-empty string")
    if "details" in output and not isinstance(output["details"], str):
        problems.append(f"details: {output['details']!r} is not a string")
    return problems


def default_route(dst: str) -> bool:
    return dst in ("0.0.0.0/0", "::/0", "default")
