"""The ADD result in the shape of the version asked for, with a chain's prevResult kept.

podnet builds its result in the 1.1 shape; `shaped` rewrites it for the
configuration's cniVersion: 0.3.x and 0.4.0 carry `ips[].version` ("4"/"6"),
1.0.0 and earlier lack 1.1's interface `mtu`/`socketPath`/`pciID` and route
`mtu`/`advmss`/`priority`/`table`/`scope`. `merged` puts a prevResult (what the
plugins before podnet in a chain returned) first, podnet's own after it, its IP
indexes moved along.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_INTERFACE_11 = ("mtu", "socketPath", "pciID")
_ROUTE_11 = ("mtu", "advmss", "priority", "table", "scope")


def _key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def _items(value: Any) -> list[dict[str, Any]]:
    return [dict(item) for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def merged(prev: Any, own: dict[str, Any]) -> dict[str, Any]:
    """`own` after a prevResult's interfaces, IPs, routes and DNS (no prevResult: `own`)."""
    if not isinstance(prev, dict):
        return own
    interfaces = _items(prev.get("interfaces"))
    shift = len(interfaces)
    ips = _items(prev.get("ips"))
    for ip in _items(own.get("ips")):
        if isinstance(ip.get("interface"), int):
            ip["interface"] += shift
        ips.append(ip)
    dns = dict(prev["dns"]) if isinstance(prev.get("dns"), dict) else {}
    for name, value in (own.get("dns") or {}).items():
        if isinstance(value, list):
            dns[name] = [*dns.get(name, []), *(v for v in value if v not in dns.get(name, []))]
        else:
            dns.setdefault(name, value)
    return {
        **own,
        "interfaces": interfaces + _items(own.get("interfaces")),
        "ips": ips,
        "routes": _items(prev.get("routes")) + _items(own.get("routes")),
        "dns": dns,
    }


def shaped(result: dict[str, Any], version: str) -> dict[str, Any]:
    """`result` (any version's shape) as a result of `version`."""
    old = _key(version) < (1, 0, 0)
    latest = _key(version) >= (1, 1, 0)
    ips = []
    for ip in _items(result.get("ips")):
        ip.pop("version", None)
        if old:
            try:
                ip["version"] = str(ipaddress.ip_interface(ip.get("address", "")).version)
            except ValueError:
                ip["version"] = "4"
        ips.append(ip)
    interfaces = _items(result.get("interfaces"))
    routes = _items(result.get("routes"))
    if not latest:
        for item, fields in [*((i, _INTERFACE_11) for i in interfaces), *((r, _ROUTE_11) for r in routes)]:
            for field in fields:
                item.pop(field, None)
    return {**result, "cniVersion": version, "interfaces": interfaces, "ips": ips, "routes": routes}
