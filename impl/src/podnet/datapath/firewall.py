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


def plan(saved: str) -> str | None:
    """What `iptables-restore --noflush` must apply to the filter table `iptables-save` printed
    as `saved` for podnet's chain, rules and jump to be there; None when they are."""
    lines = set(saved.splitlines())
    missing = [f"-A {CHAIN} {' '.join(rule)}" for rule in RULES]
    missing = [line for line in missing if line not in lines]
    chain = any(line.startswith(f":{CHAIN} ") for line in lines)
    jump = f"-A FORWARD -j {CHAIN}" in lines
    if chain and not missing and jump:
        return None
    out = ["*filter", *([] if chain else [f":{CHAIN} - [0:0]"]), *missing]
    if not jump:
        out.append(f"-I FORWARD 1 -j {CHAIN}")
    return "\n".join([*out, "COMMIT", ""])


def ensure() -> None:
    """One `iptables-save` to look, one `iptables-restore --noflush` when anything is missing
    (each iptables command reads the whole ruleset: ten of them cost a start ~0.1 s)."""
    save, restore = shutil.which("iptables-save"), shutil.which("iptables-restore")
    if save is None or restore is None:
        return _ensure_one_by_one()
    looked = subprocess.run([save, "-t", "filter"], capture_output=True, text=True, check=False)
    if looked.returncode != 0:
        return _ensure_one_by_one()
    changes = plan(looked.stdout)
    if changes is None:
        return
    proc = subprocess.run([restore, "-w", "5", "--noflush"], input=changes, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DatapathError(f"iptables-restore of {CHAIN} failed: {proc.stderr.strip() or proc.returncode}")


def _ensure_one_by_one() -> None:
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
