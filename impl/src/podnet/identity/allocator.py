"""A node's side of identities: label sets to numbers, and the node's references to them.

A new identity is one transaction: the counter moves on, ``ids/<N>``, the
label set's key and this node's reference are written together, or not at all.
A number in use by this node has this node's reference marked in use; the
collector (podnet.identity.collect) never removes an identity with such a
reference, and a reference is always written (at the revision of ``ids/<N>``
read) before the number is handed to an endpoint.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable

from podnet.identity.labels import (
    FIRST_IDENTITY,
    IdentityError,
    UnreadableIdentityError,
    encode_labels,
    legacy_canonical,
    number_in_key,
    parse_labels,
    parse_number,
    security_labels,
)
from podnet.kvstore import KVStore, Put, Unchanged, keys

Clock = Callable[[], float]
RETRIES = 100  # lost conditional writes in a row (each one is another node's progress)
CACHE_SIZE = 1024  # label sets whose number this node remembers (least recently used ones are forgotten)


def reference(node: str, in_use: bool, since: float) -> str:
    return json.dumps({"node": node, "in_use": in_use, "since": since})


class IdentityAllocator:
    def __init__(self, store: KVStore, node: str, *, cache_size: int = CACHE_SIZE, clock: Clock = time.time):
        self.store = store
        self.node = node
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, int] = OrderedDict()  # label-set key -> number (bounded)
        self._held: set[int] = set()  # numbers whose reference this node has marked in use
        self._parsed: dict[int, tuple[int, list[str]]] = {}  # number -> (mod revision, labels), for `all`

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    @property
    def cached(self) -> int:
        return len(self._cache)

    def identity_for(self, labels: list[str]) -> int:
        """The identity of these labels (security-relevant ones only), allocated on first use.

        This node holds a reference to the number when it is returned; `release_unused`
        gives it up once no endpoint of the node uses it."""
        wanted = security_labels(labels)
        key = keys.identity_by_labelset(encode_labels(wanted))
        number = self._cache.get(key)
        if number is not None and number in self._held:
            self._cache.move_to_end(key)
            return number
        for _ in range(RETRIES):
            if number is None:
                number = self._lookup(wanted, key)
            if number is None:
                number = self._allocate(wanted, key)
                if number is None:
                    continue  # another node named these labels first: look again
                self._held.add(number)
            elif not self._hold(number, wanted, recreate=False):
                number = None  # collected meanwhile (numbers are never reused): look again
                continue
            self._remember(key, number)
            return number
        raise IdentityError(f"could not allocate an identity for labels {wanted}: too much contention")

    def hold(self, number: int, labels: list[str]) -> bool:
        """Mark `number` in use by this node (an endpoint restored with it).

        Re-creates ``ids/<N>`` when it was collected meanwhile (a number is
        never given to other labels). False when ``ids/<N>`` holds other labels:
        the endpoint's identity must be resolved again."""
        wanted = security_labels(labels)
        for _ in range(RETRIES):
            held = self._hold(number, wanted, recreate=True)
            if held is not None:
                return held
        raise IdentityError(f"could not hold identity {number}: too much contention")

    def release_unused(self, in_use: set[int], *, stored: bool = False) -> list[int]:
        """Mark this node's references to numbers not in `in_use` unused, since now.

        `stored`: also the ones found in the store (at start-up, after a crash)."""
        mine = set(self._held)
        if stored:
            for entry in self.store.list_prefix(keys.IDENTITY_REFS):
                number = number_in_key(keys.identity_ref_number, entry.key)
                if number is not None and entry.key == keys.identity_ref(number, self.node) and _in_use(entry.value):
                    mine.add(number)
        released = sorted(mine - in_use)
        for number in released:
            self.store.put(keys.identity_ref(number, self.node), reference(self.node, False, self._clock()))
            self._held.discard(number)
        return released

    def all(self, unreadable: Callable[[str, str], None] | None = None) -> dict[int, list[str]]:
        """Every allocated identity and its labels (`unreadable(key, why)` for each record that cannot be read)."""
        found: dict[int, list[str]] = {}
        parsed: dict[int, tuple[int, list[str]]] = {}
        for entry in self.store.list_prefix(keys.IDENTITY_IDS):
            number = number_in_key(keys.identity_number, entry.key)
            if number is None:
                if unreadable is not None:
                    unreadable(entry.key, "its key names no identity number")
                continue
            known = self._parsed.get(number)
            if known is not None and known[0] == entry.mod_revision:
                labels: list[str] | None = known[1]
            else:
                labels = parse_labels(entry.value)
            if labels is not None:
                found[number] = labels
                parsed[number] = (entry.mod_revision, labels)
            elif unreadable is not None:
                unreadable(entry.key, f"its labels {entry.value[:64]!r} are not a JSON list of strings")
        self._parsed = parsed  # exactly what the store holds: bounded by it
        return found

    # -- internals -----------------------------------------------------------------
    def _remember(self, key: str, number: int) -> None:
        self._cache[key] = number
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _hold(self, number: int, wanted: list[str], *, recreate: bool) -> bool | None:
        """This node's reference, written at the revision of ids/<N> read.

        True: held; False: ids/<N> is gone (not `recreate`) or names other labels;
        None: lost a race, try again."""
        key = keys.identity_by_id(number)
        mark = Put(keys.identity_ref(number, self.node), reference(self.node, True, self._clock()))
        entry = self.store.get(key)
        if entry is None:
            if not recreate:
                return False
            done = self.store.commit([Unchanged(key, 0)], [Put(key, json.dumps(wanted)), mark])
        elif parse_labels(entry.value) != wanted:
            return False
        else:
            done = self.store.commit([Unchanged(key, entry.mod_revision)], [mark])
        if not done:
            return None if recreate else False
        self._held.add(number)
        return True

    def _lookup(self, wanted: list[str], key: str) -> int | None:
        entry = self.store.get(key)
        if entry is None:
            return self._adopt_legacy(wanted, key)
        number = parse_number(entry.value)
        if number is None:
            raise UnreadableIdentityError(
                key,
                f"identity record {key} holds {entry.value[:64]!r}, not an identity number; it is kept as it is: "
                "repair or delete it (no endpoint gets these labels' identity until then)",
            )
        return number

    def _adopt_legacy(self, wanted: list[str], key: str) -> int | None:
        """A version-1 key for these labels, if ids/<N> says it means exactly them."""
        legacy = self.store.get(keys.identity_by_labels(legacy_canonical(wanted)))
        number = parse_number(legacy.value) if legacy is not None else None
        if number is None:
            return None
        current = self.store.get(keys.identity_by_id(number))
        if current is None or parse_labels(current.value) != wanted:
            return None  # a ';' collision, or collected: never trusted
        done = self.store.commit(
            [Unchanged(key, 0), Unchanged(keys.identity_by_id(number), current.mod_revision)], [Put(key, str(number))]
        )
        return number if done else None

    def _allocate(self, wanted: list[str], key: str) -> int | None:
        """A new number for these labels; None when another node named them first."""
        for _ in range(RETRIES):
            counter = self.store.get(keys.IDENTITY_NEXT)
            start = parse_number(counter.value) if counter is not None else None
            if start is None:  # the first allocation by this version in this cluster (or an unreadable counter)
                start = self._highest() + 1
            number = max(start, FIRST_IDENTITY)
            while self.store.get(keys.identity_by_id(number)) is not None:
                number += 1  # taken by an agent of version 1 (which picks the highest + 1)
            done = self.store.commit(
                [
                    Unchanged(keys.IDENTITY_NEXT, counter.mod_revision if counter else 0),
                    Unchanged(key, 0),
                    Unchanged(keys.identity_by_id(number), 0),
                ],
                [
                    Put(keys.IDENTITY_NEXT, str(number + 1)),
                    Put(keys.identity_by_id(number), json.dumps(wanted)),
                    Put(key, str(number)),
                    Put(keys.identity_ref(number, self.node), reference(self.node, True, self._clock())),
                ],
            )
            if done:
                return number
            if self.store.get(key) is not None:
                return None
        raise IdentityError(f"could not allocate an identity for labels {wanted}: too much contention")

    def _highest(self) -> int:
        numbers = (number_in_key(keys.identity_number, e.key) for e in self.store.list_prefix(keys.IDENTITY_IDS))
        return max((n for n in numbers if n is not None), default=FIRST_IDENTITY - 1)


def _in_use(value: bytes) -> bool:
    try:
        data = json.loads(value)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("in_use") is True
