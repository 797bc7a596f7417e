"""`store_connections`: a node's open connections to the cluster's store, and the address each comes
from — its node IP, e.g. on a dual-homed node, whose first connections at boot leave over one
uplink's own address and must move to the node IP once its agent has its BGP-learned routes (an
uplink's address has no way back when that uplink's leaf fails)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class StoreConnections(Strict):
    node: str
    min_count: int = Field(default=1, ge=0, description="at least this many connections open")


def local_addresses(ss_output: str) -> list[str]:
    """The local address of each connection `ss -Htn` lists (state, queues, local, peer)."""
    found = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found.append(fields[-2].rsplit(":", 1)[0])
    return found


def evaluate(ctx: Context, check: StoreConnections) -> CheckResult:
    node = ctx.node(check.node)
    store = urlsplit(ctx.lab.store_url)
    if store.scheme != "etcd" or store.hostname is None:
        return CheckResult(
            "store_connections", f"{node.name}'s store connections", False, "a cluster store (etcd)", ctx.lab.store_url
        )
    command = ["ss", "-Htn", "state", "established", "dst", store.hostname, "dport", "=", f":{store.port or 2379}"]
    proc = node.cmd(*command, check=False)
    want = ctx.lab.topology.node_ip(node.name)
    sources = local_addresses(proc.stdout)
    ok = proc.returncode == 0 and len(sources) >= check.min_count and all(s == want for s in sources)
    actual = ", ".join(sources) if sources else proc.stderr.strip() or "no connection"
    return CheckResult(
        "store_connections",
        f"{node.name}'s connections to the store at {store.hostname}",
        ok,
        f"at least {check.min_count}, each from {want} (its node IP)",
        actual,
        f"{node.name}: {' '.join(command)}",
    )


KIND = CheckKind("store_connections", StoreConnections, evaluate)
