"""Node pod CIDRs kept in the kvstore: one key per node CIDR, safe with several processes.

    podnet/ipam/nodecidrs/<node-cidr>    {"node", "cidr"}

Unknown fields are ignored. A record that cannot be read is quarantined (see
podnet.kvstore.quarantine): left as it is, and the CIDR its key names stays
occupied, nobody's, so neither an agent nor the operator hands it out again.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass

from podnet.ipam.cidr import Network, parse_cidr
from podnet.ipam.clusterpool import ClusterPool
from podnet.ipam.errors import IPAMError, NotInRangeError
from podnet.kvstore import Entry, KVStore, keys
from podnet.kvstore.quarantine import Quarantine, UnreadableRecordError, json_object

_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def validate_node_name(name: object) -> str:
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise IPAMError(
            f"invalid node name {name!r}: use lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (at most 253 characters)"
        )
    return name


@dataclass(frozen=True)
class NodeCIDR:
    node: str
    cidr: Network


class DurableClusterPool:
    """Node pod CIDRs from a `ClusterPool`, one kvstore key per node CIDR."""

    def __init__(self, store: KVStore, pool: ClusterPool, *, quarantine: Quarantine | None = None):
        self.store = store
        self.pool = pool
        self.quarantine = quarantine if quarantine is not None else Quarantine()
        self._by_cidr: dict[Network, str] = {}
        #: Stored node CIDRs that no configured cluster CIDR contains (config changed).
        self.orphans: list[NodeCIDR] = []
        self.restore()

    @staticmethod
    def _node_cidr(entry: Entry) -> NodeCIDR:
        """The node CIDR a record holds, or `UnreadableRecordError` saying why it cannot be used."""
        data = json_object(entry)
        try:
            cidr = parse_cidr(data.get("cidr"), what="its cidr").network
            node = validate_node_name(data.get("node"))
        except IPAMError as err:
            raise UnreadableRecordError(str(err)) from None
        if keys.node_cidr(cidr) != entry.key:
            raise UnreadableRecordError(f"it holds {cidr} under the key of another CIDR")
        return NodeCIDR(node, cidr)

    def _occupy_quarantined(self, entry: Entry, reason: str) -> None:
        """Keep the CIDR an unreadable record's key names out of every allocation."""
        self.quarantine.add(entry.key, reason)
        with contextlib.suppress(IPAMError):  # else the key names no CIDR of this pool: nothing to keep out
            self.pool.occupy(parse_cidr(keys.cidr_of_component(keys.last_component(entry.key))).network)

    def restore(self) -> None:
        """Re-read every node CIDR from the store before handing out new ones."""
        self._by_cidr.clear()
        self.orphans = []
        found: dict[str, str] = {}
        for entry in self.store.list_prefix(keys.NODE_CIDRS):
            try:
                record = self._node_cidr(entry)
            except UnreadableRecordError as err:
                found[entry.key] = str(err)
                self._occupy_quarantined(entry, str(err))
                continue
            try:
                self.pool.occupy(record.cidr)
            except NotInRangeError:
                self.orphans.append(record)
                continue
            self._by_cidr[record.cidr] = record.node
        self.quarantine.reset(keys.NODE_CIDRS, found)

    def node_cidrs(self) -> list[NodeCIDR]:
        return sorted(
            (NodeCIDR(n, c) for c, n in self._by_cidr.items()), key=lambda nc: (nc.node, int(nc.cidr.network_address))
        )

    def cidrs_of(self, node: str) -> list[Network]:
        return [c for c, n in self._by_cidr.items() if n == node]

    def allocate(self, node: str) -> Network:
        """The node's pod CIDR: its existing one, else the next free one."""
        validate_node_name(node)
        existing = self.cidrs_of(node)
        if existing:
            return existing[0]
        refreshed = False
        while True:
            if self.pool.is_full():
                if refreshed:
                    raise self.pool.exhausted_error()
                self.restore()
                refreshed = True
                if self.cidrs_of(node):
                    return self.cidrs_of(node)[0]
                continue
            cidr = self.pool.allocate()
            key = keys.node_cidr(cidr)
            if self.store.create(key, json.dumps({"node": node, "cidr": str(cidr)})):
                self._by_cidr[cidr] = node
                return cidr
            entry = self.store.get(key)
            if entry is None:
                self.pool.release(cidr)
                continue
            try:
                self._by_cidr[cidr] = self._node_cidr(entry).node
            except UnreadableRecordError as err:
                self._occupy_quarantined(entry, str(err))  # stays occupied, nobody's

    def release_node(self, node: str) -> list[Network]:
        """Free every CIDR held by `node` (a deleted node); returns them."""
        released = []
        for cidr in self.cidrs_of(node):
            self.store.delete(keys.node_cidr(cidr))
            self.pool.release(cidr)
            del self._by_cidr[cidr]
            released.append(cidr)
        return released
