"""A dual-homed node's store connections follow the kernel's choice of source address
(podnet.agent.storesource): the store reconnects when that source changes, and only then."""

from __future__ import annotations

import time

from podnet.agent.storesource import SourceFollower, follow_store_source
from podnet.kvstore import open_store
from podnet.kvstore.etcd import EtcdStore


class Routes:
    """The source the kernel would choose, as a test sets it; and the store's reconnects."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.reconnects = 0
        self.failing = False

    def lookup(self, peer: str) -> str | None:
        assert peer == "10.0.0.5"
        if self.failing:
            raise OSError(105, "no buffer space")
        return self.source

    def reconnect(self) -> None:
        self.reconnects += 1


def test_the_store_reconnects_once_at_the_start_and_then_only_when_the_source_changes() -> None:
    routes = Routes("192.168.50.2")  # the fallback's uplink address at boot
    follower = SourceFollower("10.0.0.5", routes.lookup, routes.reconnect)
    assert follower.check() is True  # the pooled connections' source is not known: once
    assert [follower.check(), follower.check()] == [False, False]
    routes.source = "10.9.9.1"  # the BGP-learned default, from the node IP
    assert follower.check() is True and follower.source == "10.9.9.1"
    assert follower.check() is False
    assert routes.reconnects == 2


def test_no_route_or_a_failed_lookup_changes_nothing() -> None:
    routes = Routes("10.9.9.1")
    follower = SourceFollower("10.0.0.5", routes.lookup, routes.reconnect)
    follower.check()
    routes.source = None  # no route at all: nothing to reconnect to
    assert follower.check() is False
    routes.source, routes.failing = "192.168.50.2", True
    assert follower.check() is False
    assert routes.reconnects == 1 and follower.source == "10.9.9.1"


def test_the_thread_follows_and_stops() -> None:
    routes = Routes("192.168.50.2")
    follower = SourceFollower("10.0.0.5", routes.lookup, routes.reconnect, interval_s=0.01)
    follower.start()
    try:
        time.sleep(0.05)
        routes.source = "10.9.9.1"
        deadline = time.monotonic() + 5
        while routes.reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        follower.stop()
    assert routes.reconnects == 2
    assert follower._thread is not None and not follower._thread.is_alive()


def test_only_a_store_with_connections_to_an_address_is_followed(tmp_path: object) -> None:
    with open_store(f"sqlite:///{tmp_path}/state.db") as sqlite:
        assert follow_store_source(sqlite) is None
    by_name = EtcdStore([("etcd.example", 2379)])
    assert follow_store_source(by_name) is None
    by_address = EtcdStore([("10.0.0.5", 2379)])
    follower = follow_store_source(by_address)
    assert follower is not None and follower.peer == "10.0.0.5"
