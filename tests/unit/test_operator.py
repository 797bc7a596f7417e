"""The operator on the seed example: 9 nodes, 8 node CIDRs, conditions, deletion, restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podnet.cli import main
from podnet.ipam import ClusterPool
from podnet.kvstore import Entry
from podnet.kvstore.sqlite import SQLiteStore
from podnet.operator.reconcile import Operator, Outcome
from podnet.operator.registry import deregister_node, node_status, register_node
from tests.seed import SEED_CLUSTER_CIDRS, SEED_NODE_CIDRS

SEED = SEED_CLUSTER_CIDRS
EXPECTED = SEED_NODE_CIDRS


def nine_nodes(store: SQLiteStore) -> None:
    for i in range(1, 10):
        register_node(store, f"node{i}", f"192.168.50.{4 * i - 2}")
        time.sleep(0.001)  # registration order is the allocation order


def test_seed_example_in_registration_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    nine_nodes(store)
    outcome = Operator(store, ClusterPool(SEED, 26)).reconcile()
    assert [outcome.allocated[f"node{i}"] for i in range(1, 9)] == EXPECTED
    status = node_status(store, "node9")
    assert status is not None and status.pod_cidrs == [] and status.condition is not None
    assert (status.condition.status, status.condition.reason) == (False, "ClusterPoolExhausted")
    assert (
        status.condition.message
        == "cluster pool exhausted: 8 of 8 node CIDRs in use (10.20.30.0/24, 50.60.70.0/24 at /26)"
    )
    ok = node_status(store, "node5")
    assert ok is not None and ok.pod_cidrs == ["50.60.70.0/26"] and ok.condition is not None and ok.condition.status


def test_deleted_node_releases_its_cidr_to_the_waiting_node(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    nine_nodes(store)
    operator = Operator(store, ClusterPool(SEED, 26))
    operator.reconcile()
    assert deregister_node(store, "node2")
    outcome = operator.reconcile()
    assert outcome.released == {"node2": ["10.20.30.64/26"]}
    assert outcome.allocated["node9"] == "10.20.30.64/26"
    assert node_status(store, "node2") is None


def test_restart_restores_before_allocating(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    nine_nodes(store)
    first = Operator(store, ClusterPool(SEED, 26)).reconcile().allocated
    again = Operator(store, ClusterPool(SEED, 26)).reconcile().allocated  # a new operator process
    assert again == first
    register_node(store, "node1", "192.168.50.2")  # re-registering keeps the node's CIDR
    assert Operator(store, ClusterPool(SEED, 26)).reconcile().allocated["node1"] == "10.20.30.0/26"


def test_a_node_registered_while_reconciling_is_seen_next_turn(tmp_path: Path) -> None:
    """The revision is read before reconciling: a registration landing mid-reconcile is not lost."""
    store = SQLiteStore(tmp_path / "s.db")
    register_node(store, "node1", "192.168.50.2")

    class RacingOperator(Operator):
        calls = 0

        def reconcile(self) -> Outcome:
            outcome = super().reconcile()
            RacingOperator.calls += 1
            if RacingOperator.calls == 1:  # lands after this reconcile read the registrations
                register_node(store, "node2", "192.168.50.6")
            return outcome

    turns = iter(range(6))
    RacingOperator(store, ClusterPool(SEED, 26)).run(lambda: next(turns, None) is None, interval_s=0)
    node2 = node_status(store, "node2")
    assert node2 is not None and node2.pod_cidrs == ["10.20.30.64/26"]
    assert RacingOperator.calls == 3  # node1; node2 (and node1's status write); nothing left to write


def test_operator_process_and_node_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite://{tmp_path}/s.db"
    store = SQLiteStore(tmp_path / "s.db")
    register_node(store, "node1", "192.168.50.2")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podnet.cmd.operator",
            "--store",
            url,
            "--mask-size",
            "26",
            "--cluster-cidr",
            SEED[0],
            "--interval",
            "0.05",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (node_status(store, "node1") is None):
            time.sleep(0.05)
        register_node(store, "node2", "192.168.50.6")  # the operator notices the change
        while time.monotonic() < deadline and (node_status(store, "node2") is None):
            time.sleep(0.05)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "10.20.30.40/24 has host bits set; using its network 10.20.30.0/24" in err
    assert main(["node", "list", "--store", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["pod-cidrs"]) for r in rows] == [("node1", ["10.20.30.0/26"]), ("node2", ["10.20.30.64/26"])]
    assert main(["node", "list", "--store", url]) == 0
    assert "Allocated: pod CIDR 10.20.30.64/26 from 10.20.30.0/24" in capsys.readouterr().out


def test_bad_registrations(tmp_path: Path) -> None:
    from podnet.ipam import IPAMError

    store = SQLiteStore(tmp_path / "s.db")
    with pytest.raises(IPAMError, match="invalid node name"):
        register_node(store, "Node_1", "192.168.50.2")
    with pytest.raises(IPAMError, match="invalid node IP 'nope'"):
        register_node(store, "node1", "nope")


def test_node_register_and_delete_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite://{tmp_path}/s.db"
    assert main(["node", "register", "node2", "--node-ip", "192.168.50.6", "--store", url]) == 0
    time.sleep(0.001)
    assert main(["node", "register", "node1", "--node-ip", "192.168.50.2", "--store", url]) == 0
    assert "node node1 registered with node IP 192.168.50.2" in capsys.readouterr().out
    store = SQLiteStore(tmp_path / "s.db")
    outcome = Operator(store, ClusterPool(SEED, 26)).reconcile()
    assert outcome.allocated == {"node2": "10.20.30.0/26", "node1": "10.20.30.64/26"}  # the admin's order
    assert main(["node", "delete", "node2", "--store", url]) == 0
    assert Operator(store, ClusterPool(SEED, 26)).reconcile().released == {"node2": ["10.20.30.0/26"]}
    capsys.readouterr()
    assert main(["node", "delete", "node2", "--store", url]) == 1
    assert f"podnet: error: no node 'node2' is registered in {url}" in capsys.readouterr().err
    assert main(["node", "register", "Bad_Name", "--node-ip", "192.168.50.2", "--store", url]) == 1
    assert "invalid node name" in capsys.readouterr().err


def test_operator_collects_identities_no_endpoint_uses(tmp_path: Path) -> None:
    from podnet.identity import IdentityAllocator

    store = SQLiteStore(tmp_path / "s.db")
    node = IdentityAllocator(store, "node1")
    numbers = [node.identity_for([f"id=v{i}"]) for i in range(5)]
    node.release_unused({numbers[2]})
    operator = Operator(store, ClusterPool(SEED, 26), identity_grace_s=0)
    calls = iter([False, True])
    operator.run(lambda: next(calls), interval_s=0)
    assert sorted(node.all()) == [numbers[2], numbers[4]]  # in use; the highest


def test_node_register_takes_several_nodes_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A lab registers 64 workers in one command (one Python start, not 64), in the order given."""
    url = f"sqlite://{tmp_path}/s.db"
    argv = ["node", "register", "node3", "node1", "node2", "--store", url]
    ips = ["--node-ip", "192.168.50.10", "--node-ip", "192.168.50.2", "--node-ip", "192.168.50.6"]
    assert main([*argv, *ips]) == 0
    assert "node node2 registered with node IP 192.168.50.6" in capsys.readouterr().out
    outcome = Operator(SQLiteStore(tmp_path / "s.db"), ClusterPool(SEED, 26)).reconcile()
    assert list(outcome.allocated.items()) == [
        ("node3", "10.20.30.0/26"),
        ("node1", "10.20.30.64/26"),
        ("node2", "10.20.30.128/26"),
    ]


def test_node_register_refuses_names_and_ips_that_do_not_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite://{tmp_path}/s.db"
    assert main(["node", "register", "node1", "node2", "--node-ip", "192.168.50.2", "--store", url]) == 1
    assert "2 node names but 1 --node-ip: give one IP per name" in capsys.readouterr().err
    assert SQLiteStore(tmp_path / "s.db").list_prefix("") == []  # nothing half-registered


def test_operator_logs_each_pod_cidr_once_when_handed_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """bench/scale.py times the operator by these lines: one per node when its CIDR is handed out,
    none on later reconciles."""
    store = SQLiteStore(tmp_path / "s.db")
    nine_nodes(store)
    operator = Operator(store, ClusterPool(SEED, 26))
    with caplog.at_level("INFO", logger="podnet.operator"):
        operator.reconcile()
    lines = [r.getMessage() for r in caplog.records if ": pod CIDR " in r.getMessage()]
    assert lines[:2] == ["node node1: pod CIDR 10.20.30.0/26", "node node2: pod CIDR 10.20.30.64/26"]
    assert len(lines) == 8  # node9 got none
    caplog.clear()
    with caplog.at_level("INFO", logger="podnet.operator"):
        operator.reconcile()
    assert [r for r in caplog.records if ": pod CIDR " in r.getMessage()] == []


class CountingStore(SQLiteStore):
    """A real SQLite store that counts its single-key reads and its writes."""

    gets = 0
    puts = 0

    def get(self, key: str) -> Entry | None:
        self.gets += 1
        return super().get(key)

    def put(self, key: str, value: str | bytes) -> int:
        self.puts += 1
        return super().put(key, value)


def test_reconcile_reads_statuses_with_one_list_not_one_read_per_node(tmp_path: Path) -> None:
    """At scale (64 nodes, a reconcile on every store change while 64 agents start) a read per node per
    reconcile starved the operator: its 64 pod CIDRs took 9.8 s. Statuses are listed once and compared."""
    store = CountingStore(tmp_path / "s.db")
    nine_nodes(store)
    operator = Operator(store, ClusterPool(SEED, 26))
    store.gets = store.puts = 0
    operator.reconcile()
    assert store.puts == 9  # each node's status written once (8 CIDRs, node9's exhaustion)
    assert store.gets == 0
    store.gets = store.puts = 0
    operator.reconcile()  # nothing new: nothing read key by key, nothing written
    assert (store.gets, store.puts) == (0, 0)
    status = node_status(store, "node3")
    assert status is not None and status.pod_cidrs == ["10.20.30.128/26"]
