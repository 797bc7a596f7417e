"""Policy import is all or nothing: every rule validated first, then all written in one store transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podnet.api.client import AgentError
from podnet.kvstore import KVStore, keys
from tests.agent_harness import RunningAgent, running_agent


def rule(name: str, app: str = "app1") -> dict[str, Any]:
    return {
        "name": name,
        "endpointSelector": {"matchLabels": {"id": app}},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}]}],
    }


def stored(env: RunningAgent) -> list[str]:
    return [e.key.removeprefix(keys.POLICIES) for e in env.agent.store.list_prefix(keys.POLICIES)]


def lock_after_first_write(env: RunningAgent, monkeypatch: pytest.MonkeyPatch, db: Path) -> sqlite3.Connection:
    """Another process takes the SQLite write lock right after the agent's first write of the import."""
    other = sqlite3.connect(db, timeout=0, isolation_level=None, check_same_thread=False)
    store: KVStore = env.agent.store

    def after(write: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = write(*args, **kwargs)
            if not other.in_transaction:
                other.execute("BEGIN IMMEDIATE")
            return result

        return wrapped

    for name in ("put", "commit", "create", "compare_and_swap", "delete"):
        if hasattr(store, name):
            monkeypatch.setattr(store, name, after(getattr(store, name)))
    return other


def test_policy_import_is_all_or_nothing_when_the_store_fails_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old import wrote rule by rule: a store failure after the first left half the policy in force."""
    with running_agent(
        tmp_path, pod_cidr="10.99.0.0/29", store=f"sqlite://{tmp_path}/state.db?busy_timeout=0.2"
    ) as env:
        other = lock_after_first_write(env, monkeypatch, tmp_path / "state.db")
        try:
            try:
                env.client.request("PUT", "/v1/policy", body=[rule("first"), rule("second"), rule("third")])
            except AgentError as err:
                assert err.reason == "store-unavailable"
            assert stored(env) in ([], ["first", "second", "third"])  # never a part
        finally:
            if other.in_transaction:
                other.execute("ROLLBACK")
            other.close()


def test_policy_import_with_a_bad_rule_stores_none(tmp_path: Path) -> None:
    with running_agent(tmp_path, pod_cidr="10.99.0.0/29") as env:
        env.client.request("PUT", "/v1/policy", body=[rule("kept")])
        for bad in (
            [rule("good"), {"name": "Bad_Name", "endpointSelector": {}}],
            [rule("good"), rule("good", "app3")],
            [rule("good"), {**rule("bad"), "ingress": [{"toPorts": [{"ports": [{"port": "http"}]}]}]}],
        ):
            with pytest.raises(AgentError) as caught:
                env.client.request("PUT", "/v1/policy", body=bad)
            assert caught.value.status == 400, caught.value
            assert stored(env) == ["kept"]


def test_deleting_every_rule_is_all_or_nothing_when_the_store_fails_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_agent(
        tmp_path, pod_cidr="10.99.0.0/29", store=f"sqlite://{tmp_path}/state.db?busy_timeout=0.2"
    ) as env:
        env.client.request("PUT", "/v1/policy", body=[rule("first"), rule("second"), rule("third")])
        other = lock_after_first_write(env, monkeypatch, tmp_path / "state.db")
        try:
            try:
                env.client.request("DELETE", "/v1/policy")
            except AgentError as err:
                assert err.reason == "store-unavailable"
            assert stored(env) in ([], ["first", "second", "third"])
        finally:
            if other.in_transaction:
                other.execute("ROLLBACK")
            other.close()
