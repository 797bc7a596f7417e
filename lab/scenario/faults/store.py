"""`store`: the cluster's store out of service — etcd stopped where it runs (the control node, or the
ToR on VMs without one), or, when the lab's agents share a SQLite file (no control node on namespaces),
that file write-locked by an open exclusive transaction. Restored by starting etcd / releasing the lock."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlparse

from lab.model.files import Strict
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import FaultKind, Undo


class Store(Strict):
    """No fields: the lab's store is the one."""


def _etcd_node(ctx: Context) -> str:
    candidates = ([ctx.lab.control.name] if ctx.lab.control is not None else []) + [ctx.lab.tor.name]
    for name in candidates:
        if "etcd" in ctx.node(name).processes():
            return name
    raise StepFailed(f"no node of this lab runs etcd (looked at {', '.join(candidates)})")


def apply(ctx: Context, spec: Store) -> Undo:
    url = urlparse(ctx.lab.store_url)
    if url.scheme == "etcd":
        name = _etcd_node(ctx)
        ctx.lab.stop_process(name, "etcd")
        return Undo(f"start etcd on {name}", lambda: ctx.lab.start_process(name, "etcd"))
    if url.scheme == "sqlite":
        lock = sqlite3.connect(url.path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            lock.execute("BEGIN EXCLUSIVE")
        except sqlite3.Error as err:
            lock.close()
            raise StepFailed(f"could not lock {url.path}: {err}") from None

        def release() -> None:
            lock.execute("ROLLBACK")
            lock.close()

        return Undo(f"release the exclusive lock on {url.path}", release)
    raise StepFailed(f"no store fault for {ctx.lab.store_url}")


KIND = FaultKind("store", Store, apply)
