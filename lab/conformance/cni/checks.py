"""Small judgements the CNI rules share: an error reply as the spec wants it, addresses compared."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from lab.conformance.cni.context import Call
from lab.conformance.cni.spec import error_problems
from lab.conformance.model import Failed

# How an error message may name an environment variable (the spec's code 4 asks it to name it).
ALIASES = {
    "CNI_COMMAND": ("cni_command",),
    "CNI_CONTAINERID": ("cni_containerid", "containerid", "container id"),
    "CNI_NETNS": ("cni_netns", "netns", "network namespace"),
    "CNI_IFNAME": ("cni_ifname", "ifname", "interface name"),
}


def expect_error(call: Call, code: int | None = None, names: Sequence[str] = ()) -> str:
    """Fail unless `call` exited non-zero with the spec's error structure on stdout (with `code`, and
    a msg/details naming each of `names`); a description of the error otherwise."""
    wanted = f"an error{f' with code {code}' if code is not None else ''}"
    if call.ok:
        raise Failed(f"{call.command} succeeded where it must fail", wanted, call.describe())
    if call.output is None:
        raise Failed(f"{call.command} failed without an error structure on stdout", wanted, call.describe())
    problems = error_problems(call.output)
    if problems:
        raise Failed(f"the error is not in the spec's form: {'; '.join(problems)}", wanted, call.describe())
    if code is not None and call.code != code:
        raise Failed(f"error code {call.code}, not {code}", wanted, call.describe())
    text = call.text.lower()
    for name in names:
        if not any(alias in text for alias in ALIASES.get(name, (name.lower(),))):
            raise Failed(f"the error does not name {name}", f"{wanted} naming {name}", call.describe())
    return f"code {call.code}: {call.text.strip()[:160]}"


def expect_ok(call: Call, what: str) -> None:
    if not call.ok:
        raise Failed(f"{what} failed", f"{call.command} exits 0", call.describe())


def same_address(a: str, b: str) -> bool:
    """Two CIDRs (or bare IPs) name the same address and prefix."""
    try:
        x, y = ipaddress.ip_interface(a), ipaddress.ip_interface(b)
    except ValueError:
        return False
    return x == y


def same_network(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return False


def bare(cidr: str) -> str:
    return cidr.split("/")[0]
