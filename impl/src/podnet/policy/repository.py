"""Policy rules in the kvstore (one key per rule name), shared by every node.

An import writes all its rules in one store transaction, and deleting every
rule deletes them in one: the policy in force is never part of a request.
"""

from __future__ import annotations

import builtins

from pydantic import ValidationError

from podnet.kvstore import Delete, KVStore, Put, keys
from podnet.policy.model import PolicyRule


class PolicyRepository:
    def __init__(self, store: KVStore):
        self.store = store

    @staticmethod
    def encode(rule: PolicyRule) -> bytes:
        """The stored form of a rule (ValueError if it has none, e.g. text that is not UTF-8)."""
        return rule.model_dump_json(by_alias=True, exclude_none=True).encode()

    def put(self, rules: list[PolicyRule]) -> int:
        """Store every rule, or none (one transaction); returns the store revision."""
        writes = [Put(keys.policy(rule.name), self.encode(rule)) for rule in rules]
        return self.store.commit([], writes)

    def list(self) -> list[PolicyRule]:
        rules = []
        for entry in self.store.list_prefix(keys.POLICIES):
            try:
                rules.append(PolicyRule.model_validate_json(entry.value))
            except ValidationError:
                continue  # written by something else; never enforce half a rule
        return rules

    def delete(self, name: str) -> bool:
        return self.store.delete(keys.policy(name))

    def delete_all(self) -> builtins.list[str]:
        """Delete every rule at once (one transaction); their names."""
        entries = self.store.list_prefix(keys.POLICIES)
        if entries:
            self.store.commit([], [Delete(e.key) for e in entries])
        return [e.key.removeprefix(keys.POLICIES) for e in entries]
