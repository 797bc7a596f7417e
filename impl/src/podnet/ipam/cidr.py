"""Parsing CIDRs the same way everywhere.

Policy for a CIDR with host bits set (the source document's
``cluster-pool-ipv4-cidr=10.20.30.40/24``): podnet does what Cilium does and
uses the enclosing network (``10.20.30.0/24``), but never silently: the parse
result carries a note, and every user-facing surface (``podnet ipam plan``, the
operator's log and node list, agent config) prints it. A CIDR without a prefix
length is an error, not a /32.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.ipam.errors import InvalidCIDRError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ParsedCIDR:
    network: Network
    given: str

    @property
    def masked(self) -> bool:
        """True when the text had host bits set and was masked to its network."""
        return str(self.network) != self.given

    @property
    def note(self) -> str | None:
        if not self.masked:
            return None
        return f"{self.given} has host bits set; using its network {self.network}"


def parse_cidr(text: object, *, what: str = "CIDR") -> ParsedCIDR:
    """Parse `text` as a CIDR; host bits are masked (see the module docstring)."""
    if not isinstance(text, str):
        raise InvalidCIDRError(f"invalid {what} {text!r}: expected a string like 10.0.0.0/16")
    given = text.strip()
    if "/" not in given:
        raise InvalidCIDRError(f"invalid {what} {text!r}: missing prefix length (for example {given or '10.0.0.0'}/24)")
    try:
        network = ipaddress.ip_network(given, strict=False)
    except ValueError as err:
        raise InvalidCIDRError(f"invalid {what} {text!r}: {err}") from None
    return ParsedCIDR(network, given)


def parse_address(text: object, *, what: str = "IP address") -> Address:
    if not isinstance(text, str):
        raise InvalidCIDRError(f"invalid {what} {text!r}: expected a string like 10.0.0.5")
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidCIDRError(f"invalid {what} {text!r}: not an IPv4 or IPv6 address") from None
