"""An agent in operator mode whose store is down at start waits and says so, then starts when it returns."""

from __future__ import annotations

import asyncio
import json
import socket as sockets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from podnet.agent.config import AgentConfig
from podnet.agent.waiting import wait_for_pod_cidr
from podnet.api import unixhttp
from podnet.api.client import AgentClient, AgentUnreachableError
from podnet.kvstore import KVStore, KVStoreError, open_store
from podnet.operator.registry import NodeStatus, write_status


@contextmanager
def waiting(config: AgentConfig, store: Any) -> Iterator[Future[str | None]]:
    """`wait_for_pod_cidr` running on a loop of its own thread (the test's thread stays free to call
    it), polling every 50 ms; its result: the pod CIDR. Stopped, with its loop, on the way out."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stop = asyncio.Event()
    try:
        yield asyncio.run_coroutine_threadsafe(wait_for_pod_cidr(config, store, stop, interval_s=0.05), loop)
    finally:
        loop.call_soon_threadsafe(stop.set)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


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
    client = AgentClient(socket)
    try:
        with waiting(config, store) as pending:
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
            assert pending.result(10) == "10.20.30.0/26"
    finally:
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
    try:
        with waiting(config, store) as pending:
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
            assert pending.result(10) == "10.20.30.0/26"
    finally:
        store.hang.clear()
        real.close()


def test_the_plugin_socket_answers_while_the_node_waits_for_its_pod_cidr(tmp_path: Path) -> None:
    """An agent serving the docker plugin: while it waits, dockerd can activate the plugin, and a call
    that needs the agent gets libnetwork's error with the reason (not a missing plugin); once the pod
    CIDR arrives the waiting plugin is gone (the agent proper serves the socket)."""

    plugin = tmp_path / "plugins" / "podnet.sock"
    config = AgentConfig(
        node_name="node1",
        socket=str(tmp_path / "agent.sock"),
        store=f"sqlite://{tmp_path}/s.db",
        ipam_mode="operator",
        node_ip="10.0.0.11",
        docker_plugin_socket=str(plugin),
    )
    store = open_store(config.store)

    def call(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = unixhttp.request(str(plugin), "POST", path, body=json.dumps(body).encode(), host="x")
        return response.status, json.loads(response.body)

    try:
        with waiting(config, store) as pending:
            deadline = time.monotonic() + 10
            while not plugin.exists():
                assert time.monotonic() < deadline, "no plugin socket while the node waits"
                time.sleep(0.05)
            assert call("/Plugin.Activate", {}) == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
            status, reply = call("/IpamDriver.RequestPool", {"AddressSpace": "podnet", "Pool": "", "Options": {}})
            assert (
                status == 500 and "node1 is not ready: waiting for podnet-operator to assign a pod CIDR" in reply["Err"]
            )
            write_status(store, NodeStatus("node1", ["10.20.30.0/26"], None))
            assert pending.result(10) == "10.20.30.0/26"
            assert not plugin.exists() or call_refused(str(plugin))
    finally:
        store.close()


def call_refused(path: str) -> bool:
    with sockets.socket(sockets.AF_UNIX) as sock:
        try:
            sock.connect(path)
        except OSError:
            return True
    return False
