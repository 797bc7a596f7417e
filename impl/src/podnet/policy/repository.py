"""Policy rules in the kvstore (one key per rule name), shared by every node."""

from __future__ import annotations

from pydantic import ValidationError

from podnet.kvstore import KVStore, keys
from podnet.policy.model import PolicyRule


class PolicyRepository:
    def __init__(self, store: KVStore):
        self.store = store

    def put(self, rules: list[PolicyRule]) -> int:
        revision = 0
        for rule in rules:
            revision = self.store.put(keys.policy(rule.name), rule.model_dump_json(by_alias=True, exclude_none=True))
        return revision

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
