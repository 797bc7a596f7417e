"""Policy rules: validation, compilation to policy-map entries, identities from labels."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from podnet.identity import IdentityAllocator, security_labels
from podnet.kvstore import open_store
from podnet.policy.compile import PolicyEntry, compile_policy
from podnet.policy.model import PolicyRule

APP1, APP2, APP3 = 256, 257, 258
IDENTITIES = {APP1: ["id=app1", "tier=web"], APP2: ["id=app2"], APP3: ["id=app3"]}


def rule(**fields: Any) -> PolicyRule:
    data: dict[str, Any] = {"name": "r", "endpointSelector": {"matchLabels": {"id": "app1"}}, **fields}
    return PolicyRule.model_validate(data)


def test_no_rules_enforce_nothing() -> None:
    compiled = compile_policy([], IDENTITIES, {APP1, APP2})
    assert compiled.enforced == set() and compiled.entries == set()


def test_from_endpoints_and_tcp_port() -> None:
    r = rule(
        ingress=[
            {
                "fromEndpoints": [{"matchLabels": {"id": "app2"}}],
                "toPorts": [{"ports": [{"port": "80", "protocol": "tcp"}]}],
            }
        ]
    )
    compiled = compile_policy([r], IDENTITIES, {APP1, APP2, APP3})
    assert compiled.enforced == {APP1}
    assert compiled.entries == {PolicyEntry(APP2, APP1, 6, 80)}
    assert compiled.selected_by == {APP1: ["r"]}


def test_any_source_any_port_and_port_without_protocol() -> None:
    r = rule(ingress=[{}, {"toPorts": [{"ports": [{"port": 53}]}]}])
    compiled = compile_policy([r], IDENTITIES, {APP1})
    assert compiled.entries == {PolicyEntry(0, APP1, 0, 0), PolicyEntry(0, APP1, 6, 53), PolicyEntry(0, APP1, 17, 53)}


def test_empty_ingress_denies_all_and_unselected_stay_open() -> None:
    compiled = compile_policy([rule(ingress=[])], IDENTITIES, {APP1, APP2})
    assert compiled.enforced == {APP1} and compiled.entries == set()


def test_rules_only_compile_for_this_nodes_endpoints() -> None:
    r = rule(ingress=[{"fromEndpoints": [{"matchLabels": {"id": "app2"}}]}])
    assert compile_policy([r], IDENTITIES, {APP2}).enforced == set()


def test_selector_with_several_labels_and_empty_selector() -> None:
    two = rule(endpointSelector={"matchLabels": {"id": "app1", "tier": "db"}})
    assert compile_policy([two], IDENTITIES, {APP1}).enforced == set()
    everyone = rule(endpointSelector={}, ingress=[{"fromEndpoints": [{}]}])
    compiled = compile_policy([everyone], IDENTITIES, {APP1, APP2})
    assert compiled.enforced == {APP1, APP2}
    assert {e.src_identity for e in compiled.entries} == {APP1, APP2, APP3}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Bad_Name"}, "policy name 'Bad_Name'"),
        ({"ingress": [{"toPorts": [{"ports": [{"port": "http"}]}]}]}, "named ports are not supported"),
        ({"ingress": [{"toPorts": [{"ports": [{"port": 70000}]}]}]}, "less than or equal to 65535"),
        ({"ingress": [{"toPorts": [{"ports": [{"port": 80, "protocol": "SCTP"}]}]}]}, "'TCP', 'UDP' or 'ANY'"),
        ({"ingress": [{"fromEndpoint": []}]}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_rules_say_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        rule(**fields)
    assert message in str(err.value)


def test_identities_are_shared_by_labels_and_ignore_pod_names(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/s.db")
    ids = IdentityAllocator(store, "node1")
    a = ids.identity_for(["id=app1", "K8S_POD_NAME=a"])
    b = ids.identity_for(["K8S_POD_NAME=b", "id=app1"])
    c = ids.identity_for(["id=app2"])
    assert a == b == 256 and c == 257
    assert ids.all() == {256: ["id=app1"], 257: ["id=app2"]}
    assert security_labels(["b=1", "a=2", "K8S_POD_INFRA_CONTAINER_ID=x"]) == ["a=2", "b=1"]


def test_concurrent_nodes_agree_on_one_identity(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db"
    open_store(url).close()
    results: list[int] = []

    def allocate(node: str) -> None:
        store = open_store(url)
        try:
            results.append(IdentityAllocator(store, node).identity_for(["id=shared"]))
        finally:
            store.close()

    threads = [threading.Thread(target=allocate, args=(f"node{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert list(IdentityAllocator(open_store(url), "node0").all().values()) == [["id=shared"]]
