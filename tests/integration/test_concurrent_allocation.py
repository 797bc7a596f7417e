"""Several processes allocating from one store at once: no duplicates, ever.

8 workers x 500 allocations in a /20 (4093 pod IPs), against SQLite and a real
etcd. Afterwards a fresh allocator must find exactly the remaining 93 addresses
and then report exhaustion, which proves the stored state is exact. One test
SIGKILLs a worker mid-run and checks the store is still consistent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from podnet.ipam import DurableNodeAllocator, PodCIDRExhaustedError
from podnet.kvstore import keys, open_store
from podnet.kvstore.sqlite import SQLiteStore

WORKERS = 8
PER_WORKER = 500
POD_CIDR = "10.44.0.0/20"
POD_IPS = 4093  # 4096 - network - broadcast - router
REPO = Path(__file__).resolve().parents[2]


def start_workers(url: str, count: int = PER_WORKER) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.alloc_worker", url, POD_CIDR, f"worker{i}", str(count)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr and p.stderr.read()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def finish(p: subprocess.Popen[str]) -> list[str]:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, f"worker failed ({p.returncode}): {err}"
    return out.split()


def stored_owners(url: str) -> dict[str, str]:
    """ip -> owner, reading every record and checking each is well-formed."""
    with open_store(url) as store:
        owners = {}
        for entry in store.list_prefix(f"{keys.POD_IPS}10.44.0.0_20/"):
            record = json.loads(entry.value)
            assert entry.key.endswith("/" + record["ip"]), f"record {entry.key} holds {record['ip']}"
            owners[record["ip"]] = record["owner"]
        return owners


def assert_exact_remainder(url: str, expected_free: int) -> None:
    with open_store(url) as store:
        alloc = DurableNodeAllocator(store, POD_CIDR)
        extra = [alloc.allocate("filler").ip for _ in range(expected_free)]
        assert len(set(extra)) == expected_free
        with pytest.raises(PodCIDRExhaustedError, match=r"pod CIDR 10.44.0.0/20 is exhausted \(4094/4094 in use\)"):
            alloc.allocate("one-too-many")


def run_race(url: str) -> None:
    outputs = [finish(p) for p in start_workers(url)]
    everything = [ip for out in outputs for ip in out]
    duplicates = [ip for ip, n in Counter(everything).items() if n > 1]
    assert duplicates == []
    assert len(everything) == WORKERS * PER_WORKER
    owners = stored_owners(url)
    for i, out in enumerate(outputs):
        assert all(owners[ip] == f"worker{i}" for ip in out)
    assert len(owners) == WORKERS * PER_WORKER + 1  # + the router IP
    assert_exact_remainder(url, POD_IPS - WORKERS * PER_WORKER)


def test_race_sqlite(tmp_path: Path) -> None:
    run_race(f"sqlite://{tmp_path}/state.db")
    assert SQLiteStore(tmp_path / "state.db").integrity_check() == "ok"


@pytest.mark.etcd
def test_race_etcd(etcd_url: str) -> None:
    run_race(etcd_url)


def kill_one_mid_run(url: str) -> None:
    procs = start_workers(url)
    victim = procs[3]
    assert victim.stdout is not None
    printed = [victim.stdout.readline().strip() for _ in range(50)]
    os.kill(victim.pid, signal.SIGKILL)
    # Read through the same buffered reader as above (communicate() would skip its buffer).
    printed += victim.stdout.read().split()
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the worker finished before it could be killed mid-run"
    assert len(printed) < PER_WORKER
    survivors = [finish(p) for i, p in enumerate(procs) if i != 3]
    owners = stored_owners(url)
    everything = printed + [ip for out in survivors for ip in out]
    assert len(everything) == len(set(everything))
    assert all(owners[ip] == "worker3" for ip in printed)
    held_by_victim = sum(1 for o in owners.values() if o == "worker3")
    # Killed between its commit and its print, the victim may hold one IP it never printed.
    assert held_by_victim in (len(printed), len(printed) + 1)
    assert len(owners) == 7 * PER_WORKER + held_by_victim + 1
    assert_exact_remainder(url, POD_IPS - 7 * PER_WORKER - held_by_victim)


def test_sigkill_mid_run_sqlite(tmp_path: Path) -> None:
    kill_one_mid_run(f"sqlite://{tmp_path}/state.db")
    assert SQLiteStore(tmp_path / "state.db").integrity_check() == "ok"


@pytest.mark.etcd
def test_sigkill_mid_run_etcd(etcd_url: str) -> None:
    kill_one_mid_run(etcd_url)
