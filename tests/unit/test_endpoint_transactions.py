"""An endpoint's IP claim and its record are one store transaction (issue 17: one write per ADD's
endpoint, one per DEL), and a failure after that transaction still leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.api.client import AgentError
from podnet.datapath.errors import DatapathError
from podnet.kvstore import KVStore, KVStoreError, keys
from tests.agent_harness import RunningAgent, running_agent

WRITES = ("put", "create", "compare_and_swap", "delete", "commit")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/24") as running:
        yield running


def count_writes(store: KVStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the store's write methods as they are called, in order."""
    calls: list[str] = []
    for name in WRITES:
        method = getattr(store, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
            calls.append(_name)
            return _method(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    return calls


def allocations(env: RunningAgent) -> dict[str, dict[str, Any]]:
    return {a["ip"]: a for a in env.client.request("GET", "/v1/ipam")["allocations"]}


def records(env: RunningAgent) -> list[str]:
    return [e.key for e in env.agent.store.list_prefix(keys.endpoints("node1"))]


def test_endpoint_create_claims_the_ip_and_writes_the_record_in_one_transaction(
    env: RunningAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = env.client.ipam_allocate("default/pod1", expiration=True)["address"]["ipv4"]
    writes = count_writes(env.agent.store, monkeypatch)
    env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    assert writes == ["commit"]
    assert allocations(env)[ip]["owner"] == "endpoint:ep1" and "expires-at" not in allocations(env)[ip]
    assert records(env) == [keys.endpoint("node1", "ep1")]


@pytest.mark.parametrize("release_ip", [True, False])
def test_endpoint_delete_removes_the_record_and_gives_back_the_ip_in_one_transaction(
    env: RunningAgent, monkeypatch: pytest.MonkeyPatch, release_ip: bool
) -> None:
    ip = env.client.ipam_allocate("default/pod1", expiration=True)["address"]["ipv4"]
    env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    writes = count_writes(env.agent.store, monkeypatch)
    env.client.endpoint_delete("ep1", release_ip=release_ip)
    assert writes == ["commit"]
    assert records(env) == [] and env.client.endpoint_list() == []
    if release_ip:
        assert ip not in allocations(env)
    else:
        assert allocations(env)[ip]["owner"] == "released-endpoint:ep1" and "expires-at" in allocations(env)[ip]


def test_a_failure_after_the_record_was_written_leaves_no_record_veth_or_claim(
    env: RunningAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy fails once the claim and the record are stored: both are undone (with the veth)."""
    ip = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]

    def broken(endpoint: object) -> None:
        raise DatapathError("writing the policy map: boom")

    monkeypatch.setattr(env.agent.policy, "regenerate_for", broken)
    with pytest.raises(AgentError) as err:
        env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    assert "boom" in str(err.value)
    assert records(env) == [] and env.client.endpoint_list() == []
    assert env.datapath.host_veths() == []
    held = allocations(env)[ip]
    assert held["owner"] == "docker-ipam" and "expires-at" in held  # the runtime's again, still expiring
    monkeypatch.undo()
    assert env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})["id"] == "ep1"


def fail_next_commit(env: RunningAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's next transaction fails as a locked store does; the ones after it go through."""
    store = env.agent.store
    real_commit = store.commit

    def locked(*args: Any, **kwargs: Any) -> int:
        monkeypatch.setattr(store, "commit", real_commit)  # once
        raise KVStoreError("kvstore is locked by another writer")

    monkeypatch.setattr(store, "commit", locked)


def test_a_store_failure_in_the_transaction_leaves_no_veth_record_or_claim(
    env: RunningAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    fail_next_commit(env, monkeypatch)
    with pytest.raises(AgentError) as err:
        env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    assert err.value.status == 503
    assert records(env) == [] and env.client.endpoint_list() == [] and env.datapath.host_veths() == []
    assert allocations(env)[ip]["owner"] == "docker-ipam"
    assert env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})["id"] == "ep1"


def test_a_claim_at_a_stale_revision_reads_the_record_again(env: RunningAgent) -> None:
    """The claim first swaps at the revision the agent last saw, without reading: when another
    writer changed the record since, it reads it and decides again (here: same owner, new expiry)."""
    ip = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    key = keys.pod_ip(env.agent.ipam.pod_cidr, env.agent.ipam.mem.check_pod_ip(ip))
    entry = env.agent.store.get(key)
    assert entry is not None
    env.agent.store.put(key, entry.value)  # another writer: the same record, a newer revision
    env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    assert allocations(env)[ip]["owner"] == "endpoint:ep1"
    env.agent.store.put(key, b'{"ip": "%s", "owner": "someone-else"}' % ip.encode())
    env.client.endpoint_delete("ep1")  # the record goes; the IP, someone else's now, is left alone
    assert records(env) == [] and allocations(env)[ip]["owner"] == "someone-else"


def test_a_failure_after_another_writer_took_the_ip_still_removes_the_record(
    env: RunningAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Undoing a create whose IP changed hands meanwhile: the IP stays the other writer's, and the
    record (written with the claim) is removed all the same."""
    ip = env.client.ipam_allocate("default/pod1", expiration=True)["address"]["ipv4"]
    key = keys.pod_ip(env.agent.ipam.pod_cidr, env.agent.ipam.mem.check_pod_ip(ip))

    def taken_then_broken(endpoint: object) -> None:
        env.agent.store.put(key, b'{"ip": "%s", "owner": "someone-else"}' % ip.encode())
        raise DatapathError("writing the policy map: boom")

    monkeypatch.setattr(env.agent.policy, "regenerate_for", taken_then_broken)
    with pytest.raises(AgentError):
        env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    assert records(env) == [] and env.client.endpoint_list() == [] and env.datapath.host_veths() == []
    assert allocations(env)[ip]["owner"] == "someone-else"


def test_an_endpoint_whose_identity_is_compiled_leaves_the_policy_entries_alone(env: RunningAgent) -> None:
    """Creating an endpoint changes its own map entry only: the allow entries are not synced again
    (on the eBPF datapath that reads the whole policy map, a syscall per entry, on every ADD)."""
    rule = {
        "name": "app1-from-app2",
        "endpointSelector": {"matchLabels": {"id": "app1"}},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}]}],
    }
    env.client.request("PUT", "/v1/policy", body=rule)
    for n, app in ((1, "app1"), (2, "app2")):
        ip = env.client.ipam_allocate(f"default/pod{n}", expiration=True)["address"]["ipv4"]
        env.client.endpoint_create(f"ep{n}", {"addressing": {"ipv4": ip}, "labels": [f"id={app}"]})
    applied = set(env.datapath.policy_entries)
    assert applied  # app2 -> app1
    sentinel = (1, 2, 3, 4)
    env.datapath.policy_entries = {sentinel}  # what the datapath holds, as far as the agent knows: as applied
    ip = env.client.ipam_allocate("default/pod3", expiration=True)["address"]["ipv4"]
    endpoint = env.client.endpoint_create("ep3", {"addressing": {"ipv4": ip}, "labels": ["id=app1"]})
    assert env.datapath.policy_entries == {sentinel}
    assert env.datapath.policy_endpoints[ip] == (endpoint["identity"], True)  # its own entry: enforced


def test_a_store_failure_in_delete_keeps_record_and_ip_together_and_a_retry_finishes(
    env: RunningAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = env.client.ipam_allocate("default/pod1", expiration=True)["address"]["ipv4"]
    env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    fail_next_commit(env, monkeypatch)
    with pytest.raises(AgentError) as err:
        env.client.endpoint_delete("ep1", release_ip=True)
    assert err.value.status == 503
    assert records(env) == [keys.endpoint("node1", "ep1")] and allocations(env)[ip]["owner"] == "endpoint:ep1"
    env.client.endpoint_delete("ep1", release_ip=True)  # the runtime's DEL again
    assert records(env) == [] and ip not in allocations(env) and env.datapath.host_veths() == []
