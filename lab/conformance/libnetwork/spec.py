"""Where the libnetwork rules come from: libnetwork's docs/remote.md and docs/ipam.md (at its last
commit, the 20.10 line dockerd 20.10 is built from), and the source documents in ../shared/seeds/."""

from __future__ import annotations

import ipaddress

from lab.conformance.model import Citation

BASE = (
    "https://github.com/moby/libnetwork/blob/3797618f9a38372e8107d8c06f6ae199e1133ae8/docs"  # its last commit (20.10)
)


def remote(section: str, anchor: str, text: str) -> Citation:
    return Citation("libnetwork docs/remote.md", section, f"{BASE}/remote.md#{anchor}", text)


def ipam(section: str, anchor: str, text: str) -> Citation:
    return Citation("libnetwork docs/ipam.md", section, f"{BASE}/ipam.md#{anchor}", text)


def seed(name: str, section: str, text: str) -> Citation:
    return Citation(f"source document {name} (paraphrased from the Chinese)", section, f"../shared/seeds/{name}", text)


def is_cidr(text: object) -> bool:
    try:
        return isinstance(text, str) and "/" in text and bool(ipaddress.ip_interface(text))
    except ValueError:
        return False


def is_ip(text: object) -> bool:
    try:
        return isinstance(text, str) and bool(ipaddress.ip_address(text))
    except ValueError:
        return False
