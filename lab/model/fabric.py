"""What a topology derives (see topology.py's docstring for the rules): routers and their tiers, links
and their addresses and interface names, node IPs, AS numbers; and the checks that need them, each
error naming its field."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lab.model.files import FieldError

if TYPE_CHECKING:
    from lab.model.topology import Topology

Tier = Literal["tor", "leaf", "spine"]
PRIVATE_ASNS = ((64512, 65534), (4200000000, 4294967294))  # RFC 6996: 2- and 4-byte private ranges


@dataclass(frozen=True)
class Router:
    name: str
    tier: Tier
    asn: int


@dataclass(frozen=True)
class Link:
    """A point-to-point underlay link: the upper end (ToR, leaf, spine) holds its first address."""

    index: int
    upper: str
    lower: str
    upper_ip: str
    lower_ip: str
    prefixlen: int
    upper_if: str  # the interface's name on the upper end: to-<lower>
    lower_if: str  # uplink (a node's only one), or to-<upper>
    lower_is_router: bool = False  # a leaf's link to a spine

    @property
    def subnet(self) -> str:
        return str(ipaddress.ip_interface(f"{self.upper_ip}/{self.prefixlen}").network)

    # The names of the one-ToR days (the Vagrant backend and older tests use them).
    @property
    def node(self) -> str:
        return self.lower

    @property
    def tor_ip(self) -> str:
        return self.upper_ip

    @property
    def node_ip(self) -> str:
        """The lower end's address on this link (a dual-homed node's node IP is elsewhere)."""
        return self.lower_ip


def routers(topology: Topology) -> list[Router]:
    if not topology.is_fabric():
        return [Router(topology.tor.name, "tor", topology.asn_base)]
    spine_asn = topology.asn_base
    first_leaf = topology.asn_base + (1 if topology.spines else 0)
    return [Router(s.name, "spine", spine_asn) for s in topology.spines] + [
        Router(leaf.name, "leaf", first_leaf + j) for j, leaf in enumerate(topology.leaves)
    ]


def uplink_names(topology: Topology, index: int) -> list[str]:
    """The routers node `index` is wired to (one ToR: the ToR)."""
    return topology.nodes[index].uplinks or ([topology.tor.name] if not topology.is_fabric() else [])


def links(topology: Topology) -> list[Link]:
    underlay = ipaddress.ip_network(topology.underlay)
    size = 4 if topology.link_prefix == 30 else 2
    first = 1 if topology.link_prefix == 30 else 0
    pairs: list[tuple[str, str, str, bool]] = []  # upper, lower, lower's interface name, lower is a router
    for i, node in enumerate(topology.nodes):
        ups = uplink_names(topology, i)
        for up in ups:
            pairs.append((up, node.name, "uplink" if len(ups) == 1 else f"to-{up}", False))
    for leaf in topology.leaves:
        for spine in topology.spines:
            pairs.append((spine.name, leaf.name, f"to-{spine.name}", True))
    found = []
    for index, (upper, lower, lower_if, router) in enumerate(pairs):
        base = underlay.network_address + size * index
        found.append(
            Link(
                index,
                upper,
                lower,
                str(base + first),
                str(base + first + 1),
                topology.link_prefix,
                f"to-{lower}",
                lower_if,
                router,
            )
        )
    return found


def node_ip(topology: Topology, name: str) -> str:
    uplinks = topology.uplinks(name)
    if len(uplinks) == 1:
        return uplinks[0].lower_ip
    assert topology.loopbacks is not None, "validated: a dual-homed node needs loopbacks"
    index = next(i for i, n in enumerate(topology.nodes) if n.name == name)
    return str(ipaddress.ip_network(topology.loopbacks).network_address + 1 + index)


def asn(topology: Topology, name: str) -> int:
    for router in topology.routers():
        if router.name == name:
            return router.asn
    index = next(i for i, n in enumerate(topology.nodes) if n.name == name)
    return _first_node_asn(topology) + index


def next_hops(topology: Topology, router: str, node: str) -> set[str]:
    direct = {link.lower_ip for link in topology.downlinks(router) if link.lower == node}
    if direct:
        return direct
    if topology.router(router).tier == "spine":
        leaves = {link.upper for link in topology.uplinks(node)}
        return {link.lower_ip for link in topology.downlinks(router) if link.lower in leaves}
    return {link.upper_ip for link in topology.uplinks(router)}


def _first_node_asn(topology: Topology) -> int:
    return max(r.asn for r in topology.routers()) + 1


# -- checks (each error names its field) ---------------------------------------------------
def check_routers(topology: Topology) -> None:
    if topology.spines and not topology.leaves:
        raise FieldError(("spines",), "spines need leaves below them (give leaves)")
    if len(topology.leaves) > 1 and not topology.spines:
        raise FieldError(("leaves",), "two or more leaves need spines to reach each other (give spines)")
    if topology.is_fabric() and "tor" in topology.model_fields_set and topology.tor.name != "tor":
        raise FieldError(("tor",), "a fabric has no single ToR: its routers are its leaves and spines")


def check_uplinks(topology: Topology) -> None:
    leaves = [leaf.name for leaf in topology.leaves]
    for i, node in enumerate(topology.nodes):
        where = ("nodes", i, "uplinks")
        if not topology.is_fabric():
            if node.uplinks not in ([], [topology.tor.name]):
                raise FieldError(where, f"with one ToR a node's only uplink is the ToR ({topology.tor.name})")
            continue
        if not node.uplinks:
            raise FieldError(where, f"in a fabric each node names its leaf or two leaves (leaves: {', '.join(leaves)})")
        for j, up in enumerate(node.uplinks):
            if up not in leaves:
                raise FieldError((*where, j), f"no leaf {up!r} (leaves: {', '.join(leaves)})")
        if len(set(node.uplinks)) != len(node.uplinks):
            raise FieldError(where, f"{node.uplinks[0]} twice: a dual-homed node's two uplinks go to two leaves")
        if len(node.uplinks) == 2 and topology.loopbacks is None:
            raise FieldError(where, "a node with two uplinks needs `loopbacks`: where its /32 node IP comes from")


def check_addressing(topology: Topology) -> None:
    underlay = ipaddress.ip_network(topology.underlay)
    count = sum(len(uplink_names(topology, i)) for i in range(len(topology.nodes)))
    count += len(topology.leaves) * len(topology.spines)
    room = underlay.num_addresses // (4 if topology.link_prefix == 30 else 2)
    if count > room:
        raise FieldError(
            ("underlay",),
            f"{topology.underlay} has room for {room} links (/{topology.link_prefix} each), not {count}"
            + (" (node links)" if not topology.is_fabric() else " (node uplinks and leaf–spine links)"),
        )
    if topology.loopbacks is not None:
        loopbacks = ipaddress.ip_network(topology.loopbacks)
        if loopbacks.overlaps(underlay):
            raise FieldError(("loopbacks",), f"{loopbacks} overlaps the underlay {underlay}")
        if loopbacks.num_addresses - 2 < len(topology.nodes):
            raise FieldError(("loopbacks",), f"{loopbacks} has room for {loopbacks.num_addresses - 2} node IPs")
    last = _first_node_asn(topology) + len(topology.nodes) - 1
    for low, high in PRIVATE_ASNS:
        if low <= topology.asn_base <= high:
            if last > high:
                raise FieldError(("asn_base",), f"AS numbers {topology.asn_base}–{last} run past {high}")
            return
    raise FieldError(("asn_base",), "must be a private AS number (64512–65534 or 4200000000–4294967294)")


def check_hosts(topology: Topology) -> None:
    """Placement: a node or router names one of `hosts` (or none: this machine); hosts are distinct."""
    names = [h.name for h in topology.hosts]
    for field in ("name", "uri", "address"):
        values = [getattr(h, field) for h in topology.hosts]
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise FieldError(("hosts",), f"each host's {field} must be unique: {', '.join(twice)} used twice")
    groups: list[tuple[str, list[tuple[int, str | None]]]] = [
        ("nodes", [(i, n.host) for i, n in enumerate(topology.nodes)]),
        ("spines", [(i, s.host) for i, s in enumerate(topology.spines)]),
        ("leaves", [(i, leaf.host) for i, leaf in enumerate(topology.leaves)]),
    ]
    if not topology.is_fabric():
        groups.append(("tor", [(-1, topology.tor.host)]))
    for group, entries in groups:
        for i, host in entries:
            if host is not None and host not in names:
                known = ", ".join(names) or "none: add a `hosts` list"
                where = (group, "host") if i < 0 else (group, i, "host")
                raise FieldError(where, f"no host {host!r} (hosts: {known})")
