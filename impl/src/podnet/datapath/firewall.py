"""Let endpoint traffic through dockerd's FORWARD policy DROP.

podnet keeps its rules in its own chain, PODNET-FORWARD, jumped to from the
top of FORWARD: accept what enters or leaves a host-side endpoint veth
(`lxc+`), and what the node forwards to `podnet_host` (with the eBPF
datapath the whole pod CIDR is routed there and a program hands each packet
to its endpoint). Idempotent; `ensure` is cheap when everything is in place.
"""

from __future__ import annotations

import shutil
import subprocess

from podnet.datapath.errors import DatapathError

CHAIN = "PODNET-FORWARD"
RULES = (
    ["-i", "lxc+", "-j", "ACCEPT"],
    ["-o", "lxc+", "-j", "ACCEPT"],
    ["-o", "podnet_host", "-j", "ACCEPT"],
)


def _iptables(*args: str, check: bool = True) -> bool:
    binary = shutil.which("iptables") or "/usr/sbin/iptables"
    proc = subprocess.run([binary, "-w", "5", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise DatapathError(f"iptables {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.returncode == 0


def ensure() -> None:
    if not _iptables("-t", "filter", "-L", CHAIN, "-n", check=False):
        _iptables("-t", "filter", "-N", CHAIN)
    for rule in RULES:
        if not _iptables("-t", "filter", "-C", CHAIN, *rule, check=False):
            _iptables("-t", "filter", "-A", CHAIN, *rule)
    if not _iptables("-t", "filter", "-C", "FORWARD", "-j", CHAIN, check=False):
        _iptables("-t", "filter", "-I", "FORWARD", "1", "-j", CHAIN)


def is_installed() -> bool:
    return _iptables("-t", "filter", "-C", "FORWARD", "-j", CHAIN, check=False)


def remove() -> None:
    while _iptables("-t", "filter", "-D", "FORWARD", "-j", CHAIN, check=False):
        pass
    if _iptables("-t", "filter", "-L", CHAIN, "-n", check=False):
        _iptables("-t", "filter", "-F", CHAIN)
        _iptables("-t", "filter", "-X", CHAIN)
