"""From rules and identities to what the datapath enforces.

Pure: given the rules, every known identity with its labels and the
identities of this node's endpoints, decide which endpoints are under policy
and which (source identity, destination identity, protocol, port) tuples are
allowed. Identity 0 and port/protocol 0 are wildcards in the policy map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from podnet.identity import labels_dict
from podnet.policy.model import PolicyRule

ANY = 0
PROTOCOLS = {"TCP": 6, "UDP": 17, "ANY": 0}


class PolicyEntry(NamedTuple):
    src_identity: int
    dst_identity: int
    proto: int
    port: int


@dataclass
class CompiledPolicy:
    enforced: set[int] = field(default_factory=set)  # destination identities some rule selects
    entries: set[PolicyEntry] = field(default_factory=set)
    selected_by: dict[int, list[str]] = field(default_factory=dict)  # identity -> rule names


def compile_policy(rules: list[PolicyRule], identities: dict[int, list[str]], local: set[int]) -> CompiledPolicy:
    """`identities`: every identity known to the cluster; `local`: those of this node's endpoints."""
    labelled = {number: labels_dict(labels) for number, labels in identities.items()}
    out = CompiledPolicy()
    for rule in rules:
        selected = [n for n in sorted(local) if n in labelled and rule.endpoint_selector.matches(labelled[n])]
        for dst in selected:
            out.enforced.add(dst)
            out.selected_by.setdefault(dst, []).append(rule.name)
            for ingress in rule.ingress:
                if ingress.from_endpoints is None:
                    sources = [ANY]
                else:
                    sources = sorted(
                        n for n, labels in labelled.items() if any(s.matches(labels) for s in ingress.from_endpoints)
                    )
                ports = (
                    [(PROTOCOLS[p.protocol], p.port) for pr in ingress.to_ports for p in pr.ports]
                    if ingress.to_ports
                    else [(ANY, ANY)]
                )
                for src in sources:
                    for proto, port in ports:
                        if proto == ANY and port != ANY:
                            # "port 80, any protocol": TCP and UDP both.
                            out.entries.add(PolicyEntry(src, dst, PROTOCOLS["TCP"], port))
                            out.entries.add(PolicyEntry(src, dst, PROTOCOLS["UDP"], port))
                        else:
                            out.entries.add(PolicyEntry(src, dst, proto, port))
    return out
