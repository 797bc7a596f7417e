"""How an answer is judged, what the state must look like afterwards, and the tally of it all.

Outcome classes (issue 13's table): a clean protocol error; accepted and fine; accepted but unsafe
(a store invariant broken, a refused input that changed state, an accepted one that changed more than
it is about); a crash (a 500, an internal error, a traceback, a sanitizer finding); a hang or a garbled
reply (no answer within the deadline, or one not in the protocol's form).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from podnet.agent.service import Agent
from podnet.identity import security_labels
from podnet.kvstore import keys
from tests.fakes import FakeDatapath
from tests.interfaces import assert_store_invariants


class Outcome(StrEnum):
    clean = "clean protocol error"
    fine = "accepted and fine"
    unsafe = "accepted but unsafe"
    crash = "crash (500 / traceback)"
    hang = "hang or garbled reply"


GOOD = (Outcome.clean, Outcome.fine)
INTERFACES = ("agent REST", "libnetwork plugin", "CNI (through the shim)")
SURVEY = os.environ.get("PODNET_FUZZ_SURVEY") == "1"
LOG = os.environ.get("PODNET_FUZZ_LOG")  # a file to append every input and its verdict to, one a line


@dataclass
class Verdict:
    outcome: Outcome
    why: str = ""


@dataclass
class Tally:
    counts: dict[str, Counter[Outcome]] = field(default_factory=dict)
    findings: dict[tuple[str, Outcome], list[str]] = field(default_factory=dict)

    def record(self, interface: str, verdict: Verdict, what: str) -> None:
        self.counts.setdefault(interface, Counter())[verdict.outcome] += 1
        if LOG:
            with open(LOG, "a") as log:
                log.write(json.dumps([interface, verdict.outcome.value, what[:400], verdict.why[:400]]) + "\n")
        if verdict.outcome not in GOOD:
            found = self.findings.setdefault((interface, verdict.outcome), [])
            if len(found) < 5:
                found.append(f"{what[:300]}: {verdict.why[:500]}")

    def table(self) -> list[str]:
        head = ["interface", "inputs", *[o.value for o in Outcome]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for interface in INTERFACES:
            if interface not in self.counts:
                continue
            c = self.counts[interface]
            lines.append(f"| {interface} | {sum(c.values())} | " + " | ".join(str(c[o]) for o in Outcome) + " |")
        for (interface, outcome), found in sorted(self.findings.items()):
            lines.append(f"{interface}, {outcome.value}:")
            lines.extend(f"  - {line}" for line in found)
        return lines


TALLY = Tally()


def judge(interface: str, verdict: Verdict, what: str) -> None:
    """Count the verdict; outside a survey, anything but a clean error or a fine success fails the test."""
    TALLY.record(interface, verdict, what)
    if not SURVEY:
        assert verdict.outcome in GOOD, f"{verdict.outcome.value}: {what}\n{verdict.why}"


def has_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text or "internal error" in text


# -- state ----------------------------------------------------------------------------------


def category(key: str) -> str:
    if key.startswith(keys.POD_IPS):
        return "ips"
    if keys.is_endpoint(key):
        return "endpoints"
    if "/docker-networks/" in key:
        return "networks"
    if key.startswith("podnet/identities/"):
        return "identities"
    if key.startswith(keys.POLICIES):
        return "policies"
    return "other"


@dataclass(frozen=True)
class Snapshot:
    store: dict[str, bytes]
    links: dict[str, int]
    routes: dict[str, str]
    policy: tuple[Any, ...]

    @classmethod
    def take(cls, agent: Agent, datapath: FakeDatapath) -> Snapshot:
        entries = {e.key: e.value for e in agent.store.list_prefix(keys.ROOT)}
        policy = (sorted(datapath.policy_endpoints.items()), sorted(datapath.policy_entries), sorted(datapath.ipcache))
        return cls(entries, dict(datapath.links), dict(datapath.routes), policy)

    def changes(self, after: Snapshot) -> set[str]:
        """What changed: store categories, and "veths"/"policy-maps" for the fake kernel."""
        changed = {category(k) for k in self.store.keys() ^ after.store.keys()}
        changed |= {category(k) for k in self.store.keys() & after.store.keys() if self.store[k] != after.store[k]}
        if self.links != after.links or self.routes != after.routes:
            changed.add("veths")
        if self.policy != after.policy:
            changed.add("policy-maps")
        return changed


ENDPOINT_CHANGES = frozenset({"endpoints", "ips", "identities", "veths", "policy-maps"})


def safety(agent: Agent) -> str:
    """'' when the node is safe; else what is wrong. The invariants of tests.interfaces, and more: only
    the router IP is the router's; an IP owned by endpoint X means X exists; no IP is held as
    quarantined (no stored record is unreadable here); no endpoint has the
    router IP, the network or broadcast address, or an address outside the pod CIDR; two endpoints
    with different security labels never share an identity."""
    try:
        assert_store_invariants(agent)
    except AssertionError as err:
        return f"store invariant: {err}"
    network = ipaddress.IPv4Network(agent.pod_cidr)
    endpoints = {e.id: e for e in agent.endpoints.list()}
    for allocation in agent.ipam.allocations():
        owner = allocation.owner
        if owner == "router" and str(allocation.ip) != agent.router_ip:
            return f"{allocation.ip} is owned by 'router' but the router IP is {agent.router_ip}"
        if owner.startswith("endpoint:") and owner.removeprefix("endpoint:") not in endpoints:
            return f"{allocation.ip} is owned by {owner!r}, and no such endpoint exists"
        if owner == "quarantined":  # the fuzzed store holds no record that cannot be read
            return f"{allocation.ip} is held as 'quarantined', and no stored record is"
    by_identity: dict[int, tuple[str, list[str]]] = {}
    for endpoint in endpoints.values():
        for pair in endpoint.networking.addressing:
            ip = ipaddress.IPv4Address(pair.ipv4 or "0.0.0.0")
            if ip not in network or ip in (network.network_address, network.broadcast_address):
                return f"endpoint {endpoint.id} has {ip}, not a pod address of {network}"
            if str(ip) == agent.router_ip:
                return f"endpoint {endpoint.id} has the router IP {ip}"
        if endpoint.identity is not None:
            labels = security_labels(endpoint.labels)
            seen = by_identity.setdefault(endpoint.identity, (endpoint.id, labels))
            if seen[1] != labels:
                return f"endpoints {seen[0]} {seen[1]} and {endpoint.id} {labels} share identity {endpoint.identity}"
    return ""


def after_request(
    agent: Agent, before: Snapshot, after: Snapshot, verdict: Verdict, allowed: frozenset[str]
) -> Verdict:
    """A clean error must have changed nothing; a success only what `allowed` names; both leave a safe node."""
    if verdict.outcome not in GOOD:
        return verdict
    problem = safety(agent)
    changed = before.changes(after)
    if not problem and verdict.outcome == Outcome.clean and changed:
        problem = f"refused ({verdict.why}) but changed {sorted(changed)}"
    if not problem and changed - allowed:
        problem = f"changed {sorted(changed - allowed)} (may change {sorted(allowed) or 'nothing'})"
    return Verdict(Outcome.unsafe, problem) if problem else verdict


def body_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None
