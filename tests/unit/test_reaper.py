"""The veth reaper (podnet.datapath.reaper) and a runtime's DEL waiting off the agent's worker:
DELs that come together have their veths deleted together, each DEL still answering only once
its veth is gone."""

from __future__ import annotations

import threading
from pathlib import Path

from podnet.datapath.errors import DatapathError
from podnet.datapath.reaper import Reaper


class Deleter:
    def __init__(self, *, refuse_batches: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.hold = threading.Event()
        self.entered = threading.Event()
        self.refuse_batches = refuse_batches

    def delete_endpoint(self, endpoint_id: str, ip: str | None) -> bool:
        self.entered.set()
        self.hold.wait(5)
        self.calls.append([endpoint_id])
        return True

    def delete_endpoints(self, endpoints: list[tuple[str, str | None]]) -> None:
        if self.refuse_batches:
            raise DatapathError("the kernel refused the group")
        self.calls.append([e for e, _ in endpoints])

    def close(self) -> None:
        pass


def test_what_queues_while_the_reaper_deletes_is_deleted_in_one_batch_and_each_wait_ends() -> None:
    deleter = Deleter()
    reaper = Reaper(lambda: deleter)
    try:
        reaper.submit("a", "10.0.0.2")  # the reaper takes it alone and blocks in delete_endpoint
        assert deleter.entered.wait(5)
        for name in "bcd":
            reaper.submit(name, None)
        assert not reaper.wait("d", 0.05)  # not deleted yet: its DEL would still wait
        deleter.hold.set()
        assert all(reaper.wait(name, 5) for name in "abcd")
        assert reaper.wait_idle(5) and reaper.pending == 0
        assert deleter.calls == [["a"], ["b", "c", "d"]]
    finally:
        reaper.close()


def test_a_batch_the_kernel_refuses_is_deleted_one_by_one() -> None:
    deleter = Deleter(refuse_batches=True)
    reaper = Reaper(lambda: deleter)
    try:
        reaper.submit("a", None)
        reaper.submit("b", None)
        reaper.submit("c", None)
        deleter.hold.set()
        assert all(reaper.wait(name, 5) for name in "abc") and reaper.wait_idle(5)
        assert sorted(name for call in deleter.calls for name in call) == ["a", "b", "c"]
        assert all(len(call) == 1 for call in deleter.calls)
    finally:
        reaper.close()


def test_a_runtimes_del_on_the_worker_leaves_the_wait_to_its_caller(tmp_path: Path) -> None:
    """The /v1/cni job's calls (LocalAgentCalls with `deleted`) list a DEL's endpoint instead of waiting
    on the agent's worker; the handler waits for it off the worker before it answers."""
    from podnet.agent.local import LocalAgentCalls, inline, no_health
    from tests.agent_harness import running_agent

    with running_agent(tmp_path, pod_cidr="10.99.0.0/28") as env:
        env.client.endpoint_create("cni1", {"addressing": {"ipv4": "10.99.0.2"}})
        env.client.endpoint_create("cni2", {"addressing": {"ipv4": "10.99.0.3"}})
        deleted: list[str] = []
        calls = LocalAgentCalls(env.agent, inline, no_health, timeout=5, deleted=deleted)
        calls.endpoint_delete("cni1", release_ip=True)
        calls.for_cleanup(5).endpoint_delete("cni2", release_ip=True)  # a stale endpoint's cleanup too
        assert deleted == ["cni1", "cni2"] and env.datapath.waited == []
        env.agent.wait_endpoints_deleted(deleted)
        assert env.datapath.waited == ["cni1", "cni2"]
