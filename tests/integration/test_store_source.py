"""The pieces a dual-homed node's store connections follow their source address with, on the real
kernel and a real etcd: the source the kernel picks (`Rtnl.source_for`, as `ip route get` says)
changes when a better route names another, and the etcd store's `reconnect` closes its pooled
connection so the next call opens a new one."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from podnet.datapath.rtnl import Rtnl
from podnet.kvstore import open_store


@pytest.fixture
def node() -> Iterator[str]:
    """A namespace shaped like a dual-homed node: an uplink with its own /30, the node IP on lo, and
    the lab's fallback default (metric 1024, no source)."""
    name = f"pn-src-{secrets.token_hex(3)}"
    peer = f"{name}-r"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "add", peer], check=True)
    try:
        script = (
            f"ip link add up0 netns {name} type veth peer name down0 netns {peer}"
            f" && ip -n {name} addr add 192.0.2.2/30 dev up0 && ip -n {name} link set up0 up"
            f" && ip -n {name} link set lo up && ip -n {name} addr add 198.51.100.7/32 dev lo"
            f" && ip -n {peer} addr add 192.0.2.1/30 dev down0 && ip -n {peer} link set down0 up"
            f" && ip -n {name} route add default metric 1024 via 192.0.2.1"
        )
        subprocess.run(["sh", "-c", script], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        subprocess.run(["ip", "netns", "del", peer], check=False)


def test_the_source_follows_the_best_route(node: str) -> None:
    fd = os.open(f"/var/run/netns/{node}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Rtnl.in_netns(fd) as rtnl:
            assert rtnl.source_for("203.0.113.9") == "192.0.2.2"  # the uplink's own address
            subprocess.run(  # what the agent's speaker installs from its leaves
                [
                    "ip",
                    "-n",
                    node,
                    "route",
                    "add",
                    "default",
                    "metric",
                    "32",
                    "via",
                    "192.0.2.1",
                    "src",
                    "198.51.100.7",
                ],
                check=True,
            )
            assert rtnl.source_for("203.0.113.9") == "198.51.100.7"
            subprocess.run(["ip", "-n", node, "route", "flush", "default"], check=True)
            assert rtnl.source_for("203.0.113.9") is None  # no route
    finally:
        os.close(fd)


def my_connections(port: int) -> set[int]:
    """This process's established TCP connections to `port`: their local ports."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dport", "=", f":{port}"], capture_output=True, text=True, check=True
    ).stdout
    mine = f"pid={os.getpid()},"
    return {int(re.split(r"\s+", line.strip())[2].rsplit(":", 1)[1]) for line in out.splitlines() if mine in line}


def test_reconnect_closes_the_pooled_connection_and_the_store_goes_on(etcd_url: str) -> None:
    port = int(etcd_url.rsplit(":", 1)[1])
    with open_store(etcd_url) as store:
        store.put("t/src", "one")
        before = my_connections(port)
        assert len(before) == 1
        store.reconnect()
        assert my_connections(port) == set()
        entry = store.get("t/src")  # a new connection, from the source the routes give now
        assert entry is not None and entry.value == b"one"
        after = my_connections(port)
        assert len(after) == 1 and after != before
