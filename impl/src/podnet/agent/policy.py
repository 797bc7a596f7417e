"""Identities and policy on this node: label sets -> identities, rules -> datapath entries.

`regenerate` recompiles every rule for this node's endpoints and writes the
result to the datapath; it runs after each policy or endpoint change and
periodically (with the IP cache of other nodes' pods, `full`).
"""

from __future__ import annotations

from podnet.agent.datapath import DatapathStatus
from podnet.agent.endpoints import EndpointStore
from podnet.agent.errors import BadRequestError, NotFoundError
from podnet.agent.identities import IdentityNames
from podnet.api.models import Endpoint, PolicyDeleted, PolicyState
from podnet.datapath.protocol import Datapath
from podnet.identity import IDENTITY_HOST, IDENTITY_INIT
from podnet.kvstore import KVStore, keys
from podnet.policy.compile import CompiledPolicy, compile_policy
from podnet.policy.model import PolicyRule
from podnet.policy.repository import PolicyRepository


class PolicyEngine:
    def __init__(
        self,
        store: KVStore,
        datapath: Datapath,
        status: DatapathStatus,
        endpoints: EndpointStore,
        identities: IdentityNames,
        host_ips: list[str],
    ):
        self.store = store
        self.datapath = datapath
        self.status = status
        self.endpoints = endpoints
        self.identities = identities
        self.host_ips = host_ips  # this node's own addresses: identity host
        self.rules = PolicyRepository(store)
        self.compiled = CompiledPolicy()
        self._compiled_for: set[int] | None = None  # destinations the policy was compiled for; None: no rules

    # -- the API --------------------------------------------------------------------
    def state(self, message: str = "") -> PolicyState:
        enforced = self.datapath.bpf() is not None
        if not enforced and not message:
            message = "not enforced on this node: the routes datapath has no policy" + self.status.suffix()
        rules = [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in self.rules.list()]
        return PolicyState(revision=self.store.revision(), rules=rules, enforced=enforced, message=message)

    def put(self, rules: list[PolicyRule]) -> PolicyState:
        """Import rules: every one checked first, then all stored in one transaction (or none)."""
        names = [r.name for r in rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise BadRequestError(f"policy rule names must be unique; repeated: {', '.join(duplicates)}")
        unstorable = []
        for rule in rules:
            try:
                self.rules.encode(rule)
            except ValueError as err:
                unstorable.append(f"{rule.name}: {err}")
        if unstorable:
            raise BadRequestError(f"no rule imported; cannot store {'; '.join(unstorable)}")
        self.rules.put(rules)
        compiled = self.regenerate()
        selected = sorted(
            e.id for e in self.endpoints.list() if e.identity is not None and e.identity in compiled.enforced
        )
        return self.state(
            f"imported {len(rules)} rule(s); {len(selected)} endpoint(s) of this node under policy"
            + (f": {', '.join(selected)}" if selected else "")
        )

    def delete(self, name: str | None) -> PolicyDeleted:
        if name is None:
            deleted = self.rules.delete_all()
        elif self.rules.delete(name):
            deleted = [name]
        else:
            raise NotFoundError(f"policy rule {name} not found")
        self.regenerate()
        return PolicyDeleted(deleted=deleted, revision=self.store.revision())

    # -- compiling to the datapath ------------------------------------------------------
    def regenerate(self, *, full: bool = False) -> CompiledPolicy:
        """Recompile policy for this node's endpoints and write it to the datapath.

        Runs after every endpoint or policy change, and periodically (gc, `full`:
        with the IP cache) to pick up identities, endpoints and rules other
        nodes added."""
        known = self.identities.refresh()
        local = self.endpoints.list()
        local_ids = {e.identity for e in local if e.identity is not None}
        rules = self.rules.list()
        compiled = compile_policy(rules, known, local_ids)
        states = {
            ip: (e.identity or IDENTITY_INIT, (e.identity or 0) in compiled.enforced)
            for e in local
            if (ip := e.networking.addressing[0].ipv4)
        }
        self.datapath.apply_policy(states, compiled.entries, self._ipcache(local) if full else None)
        self.compiled = compiled
        self._compiled_for = local_ids if rules else None
        return compiled

    def regenerate_for(self, endpoint: Endpoint) -> None:
        """After one endpoint was added or relabelled. Recompiling reads every rule and
        identity from the store; that is only needed when rules exist and this
        identity was not among the compiled destinations. Otherwise the
        endpoint's own map entry is all that changes."""
        identity = endpoint.identity or IDENTITY_INIT
        if self._compiled_for is not None and identity not in self._compiled_for:
            self.regenerate()
            return
        ip = endpoint.networking.addressing[0].ipv4
        if ip:  # the allow entries are as compiled and applied: only this endpoint's entry changes
            self.datapath.apply_policy({ip: (identity, identity in self.compiled.enforced)}, None, None)

    def _ipcache(self, local: list[Endpoint]) -> dict[str, int]:
        """IP -> identity for what is not a local endpoint: this node's own addresses, other nodes' pods."""
        cache = dict.fromkeys(self.host_ips, IDENTITY_HOST)
        mine = {e.id for e in local}
        for entry in self.store.list_prefix(keys.NODES):
            if not keys.is_endpoint(entry.key) or entry.key.startswith(self.endpoints.prefix):
                continue
            try:
                endpoint = Endpoint.model_validate_json(entry.value)
            except ValueError:
                continue
            ip = endpoint.networking.addressing[0].ipv4
            if ip and endpoint.identity is not None and endpoint.id not in mine:
                cache[ip] = endpoint.identity
        return cache
