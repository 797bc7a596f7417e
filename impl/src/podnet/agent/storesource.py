"""A dual-homed node's store connections follow the kernel's choice of source address.

Such a node's own address (its node IP) is a /32 on a host device, announced over BGP to both of
its leaves. At boot its agent must reach the store before its BGP sessions are up, so the first
connections leave over the lab's static fallback route, from one uplink's own address; once the
speaker has learned its default from the leaves (a route whose source is the node IP), new
connections would come from the node IP, but the pooled ones keep the uplink's address for their
whole life. Were that uplink's leaf to fail, the replies to that address would have no way back and
every store call would stall until the connection timed out.

`SourceFollower` looks up, every `interval_s`, the source address the kernel would give a new
connection to the store; whenever it differs from the last one seen (and once at the start, when
the pooled connections' source is not known), it has the store close its pooled connections, so
the next call opens one from the address the routes choose now.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable

from podnet.datapath.rtnl import Rtnl
from podnet.kvstore.base import KVStore

log = logging.getLogger("podnet.agent.storesource")

#: The source address the kernel would use towards an IP (None: no route, or it names none).
SourceLookup = Callable[[str], str | None]


class SourceFollower:
    def __init__(
        self,
        peer: str,
        lookup: SourceLookup,
        reconnect: Callable[[], None],
        *,
        interval_s: float = 1.0,
    ):
        self.peer = peer
        self.lookup = lookup
        self.reconnect = reconnect
        self.interval_s = interval_s
        self.source: str | None = None  # the source of the pooled connections, as far as known
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """One look; True when the source changed and the store was told to reconnect."""
        try:
            now = self.lookup(self.peer)
        except OSError as err:
            log.debug("looking up the source address towards the store at %s: %s", self.peer, err)
            return False
        if now is None or now == self.source:
            return False
        if self.source is not None:
            log.info("store connections to %s: the source address is now %s (was %s)", self.peer, now, self.source)
        self.reconnect()
        self.source = now
        self.reconnects += 1
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-source", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval_s + 1)


def follow_store_source(store: KVStore) -> SourceFollower | None:
    """A follower for `store`'s connections, or None: a store without connections, or one named by a
    host name (the routes are looked up for an address)."""
    peer = store.peer
    if peer is None:
        return None
    try:
        address = ipaddress.IPv4Address(peer[0])
    except ValueError:
        log.info("store at %s: not an IPv4 address, its connections keep their first source address", peer[0])
        return None
    rtnl = Rtnl()
    return SourceFollower(str(address), rtnl.source_for, store.reconnect)
