"""An agent in operator mode: registers, waits with a clear condition in healthz, starts once assigned."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from lab.backends.base import wait_for
from lab.backends.netns.node import NetnsNode
from lab.backends.netns.supervisor import ProcessSpec
from podnet.api.client import AgentClient, AgentError
from podnet.errors import PodnetError
from podnet.ipam import ClusterPool
from podnet.kvstore import open_store
from podnet.operator.reconcile import Operator
from podnet.operator.registry import deregister_node, node_status, register_node
from tests.integration.nodes import bare_node

pytestmark = pytest.mark.root


@pytest.fixture
def node() -> Iterator[NetnsNode]:
    with bare_node("opnode") as n:
        yield n


def health(node: NetnsNode) -> dict[str, object] | None:
    try:
        result: dict[str, object] = AgentClient(str(node.agent_sock), timeout=2).healthz()
    except PodnetError:
        return None
    return result


def test_agent_waits_for_the_operator(node: NetnsNode) -> None:
    store = open_store(node.state_url)
    operator = Operator(store, ClusterPool(["10.99.0.0/26"], 26))  # room for one node
    register_node(store, "other", "192.168.50.6")
    operator.reconcile()  # "other" takes the only pod CIDR
    node.define(
        "podnet-agent",
        ProcessSpec(
            [
                sys.executable,
                "-m",
                "podnet.cmd.agent",
                "--node-name",
                "opnode",
                "--socket",
                str(node.agent_sock),
                "--store",
                node.state_url,
                "--bpf-pin-dir",
                str(node.bpf_pin_dir),
                "--ipam-mode",
                "operator",
                "--node-ip",
                "192.168.50.2",
                "--cluster-cidr",
                "10.99.0.0/26",
                "--mask-size",
                "26",
            ]
        ),
    )
    node.spawn("podnet-agent")
    wait_for(lambda: health(node) is not None, 20, "the waiting agent's healthz")
    operator.reconcile()  # opnode registered: no room for it

    def says_exhausted() -> bool:
        h = health(node)
        return h is not None and "ClusterPoolExhausted" in str(h["ipam"])

    wait_for(says_exhausted, 10, "healthz to report the exhausted pool")
    h = health(node)
    assert h is not None and h["state"] == "failure" and h.get("pod-cidr") is None
    assert "cluster pool exhausted: 1 of 1 node CIDRs in use" in str(h["ipam"])
    with pytest.raises(AgentError) as err:
        AgentClient(str(node.agent_sock)).ipam_allocate("x")
    assert err.value.status == 503 and "not ready" in str(err.value)
    status = node_status(store, "opnode")
    assert status is not None and status.condition is not None and not status.condition.status
    shown = subprocess.run(
        [sys.executable, "-m", "podnet.cli", "status", "--socket", str(node.agent_sock)], capture_output=True, text=True
    )
    assert shown.returncode == 1 and "FAILURE" in shown.stdout and "ClusterPoolExhausted" in shown.stdout, shown
    assert "podnet node delete NAME" in shown.stdout and "no pod CIDR yet" in shown.stdout

    deregister_node(store, "other")  # the other node goes away: its CIDR is ours
    operator.reconcile()
    wait_for(lambda: (h := health(node)) is not None and h["state"] == "ok", 20, "the agent to start with its pod CIDR")
    h = health(node)
    assert h is not None and h["pod-cidr"] == "10.99.0.0/26"
    assert AgentClient(str(node.agent_sock)).ipam_allocate("x")["address"]["ipv4"] == "10.99.0.2"
    assert "podnet_host" in node.cmd("ip", "link").stdout
