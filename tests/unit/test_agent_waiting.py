"""An agent in operator mode whose store is down at start waits and says so, then starts when it returns."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from podnet.agent.config import AgentConfig
from podnet.agent.waiting import wait_for_pod_cidr
from podnet.api.client import AgentClient, AgentUnreachableError
from podnet.kvstore import KVStore, KVStoreError, open_store
from podnet.operator.registry import NodeStatus, write_status


class FlakyStore:
    """A real store that is 'down' (raises as an unreachable etcd does) while `down` is set."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.down = True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise KVStoreError(f"kvstore {self.store.url} is unreachable (connection refused)")
            return attr(*args, **kwargs)

        return call


def test_a_store_down_at_start_is_waited_for_and_said(tmp_path: Path) -> None:
    socket = str(tmp_path / "agent.sock")
    config = AgentConfig(
        node_name="node1", socket=socket, store=f"sqlite://{tmp_path}/s.db", ipam_mode="operator", node_ip="10.0.0.11"
    )
    real = open_store(config.store)
    store = FlakyStore(real)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stop = asyncio.Event()
    waiting = asyncio.run_coroutine_threadsafe(wait_for_pod_cidr(config, store, stop, interval_s=0.05), loop)  # type: ignore[arg-type]
    client = AgentClient(socket)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                health = client.healthz()
                break
            except AgentUnreachableError:
                assert time.monotonic() < deadline, "no healthz while the store is down: the agent gave up"
                time.sleep(0.05)
        assert health["store"]["state"] == "failure" and "unreachable" in health["store"]["message"]
        assert (
            health["ipam"]["reason"] == "store-unavailable"
            and "cannot reach the cluster store" in health["ipam"]["message"]
        )
        store.down = False  # etcd is back; the operator assigns a pod CIDR
        deadline = time.monotonic() + 10
        while not real.list_prefix("podnet/cluster/nodes/"):
            assert time.monotonic() < deadline, "the agent never registered once the store was back"
            time.sleep(0.05)
        write_status(real, NodeStatus("node1", ["10.20.30.0/26"], None))
        assert waiting.result(10) == "10.20.30.0/26"
    finally:
        loop.call_soon_threadsafe(stop.set)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        real.close()


class HangingStore:
    """A real store whose calls hang (as an etcd that does not answer does, until its timeout) while `hang` is set."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.hang = threading.Event()
        self.hang.set()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            deadline = time.monotonic() + 10
            while self.hang.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            return attr(*args, **kwargs)

        return call


def test_healthz_answers_while_a_store_call_hangs(tmp_path: Path) -> None:
    """The waiting agent asks the store from a thread: a store call that hangs (etcd not answering, or
    its client being imported by the first call) does not hold healthz."""
    socket = str(tmp_path / "agent.sock")
    config = AgentConfig(
        node_name="node1", socket=socket, store=f"sqlite://{tmp_path}/s.db", ipam_mode="operator", node_ip="10.0.0.11"
    )
    real = open_store(config.store)
    store = HangingStore(real)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stop = asyncio.Event()
    waiting = asyncio.run_coroutine_threadsafe(wait_for_pod_cidr(config, store, stop, interval_s=0.05), loop)  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 10
        while not store.calls or not Path(socket).exists():
            assert time.monotonic() < deadline, "the waiting agent never served nor called its store"
            time.sleep(0.01)
        started = time.monotonic()
        health = AgentClient(socket, timeout=2.0).healthz()  # AgentTimeoutError while the call holds it
        assert time.monotonic() - started < 1.0
        assert health["state"] == "failure" and health["ipam"]["reason"] == "agent-not-ready"
        store.hang.clear()
        write_status(real, NodeStatus("node1", ["10.20.30.0/26"], None))
        assert waiting.result(10) == "10.20.30.0/26"
    finally:
        store.hang.clear()
        loop.call_soon_threadsafe(stop.set)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        real.close()
