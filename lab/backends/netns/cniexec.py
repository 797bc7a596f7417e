"""Exec a CNI plugin the way a runtime does: CNI_* in the environment, the config on stdin.

Used by the CNI tests and bench/cni_add.py, for podnet's plugin and for the
reference plugins (Debian containernetworking-plugins) alike.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from lab.backends.netns.node import NetnsNode

REFERENCE = Path("/usr/lib/cni")


def link_plugin(bin_dir: Path, plugin: Path) -> Path:
    """Make `plugin` the CNI plugin `podnet` in `bin_dir` (what `podnet cni install` does on a real node)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "podnet"
    link.unlink(missing_ok=True)
    link.symlink_to(plugin)
    return link


def reference_conf(node: NetnsNode, subnet: str) -> dict[str, Any]:
    """bridge + host-local, the reference podnet is compared with."""
    return {
        "cniVersion": "1.0.0",
        "name": "ref",
        "type": "bridge",
        "bridge": "cniref0",
        "isGateway": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": str(node.path("host-local"))},
    }


def exec_cni(
    node: NetnsNode,
    argv: list[str],
    command: str,
    conf: dict[str, Any],
    netns: str,
    container_id: str,
    *,
    ifname: str = "eth0",
    pod: str | None = None,
) -> tuple[int, Any, float]:
    """(exit status, decoded stdout or None, seconds) of one plugin call in `node`'s namespace."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(REFERENCE),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod or container_id[:8]}",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["nsenter", f"--net={node.netns_path}", "env", *(f"{k}={v}" for k, v in env.items()), *argv],
        input=json.dumps(conf),
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - t0
    out = proc.stdout.strip()
    return proc.returncode, json.loads(out) if out else None, elapsed
