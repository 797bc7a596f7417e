"""Not any file is a netns, on a real kernel: a real agent in a node namespace, real pod namespaces.

What a path's text decides is in tests/unit/test_netns_guard.py; here what
only the kernel can say: a FIFO or a file where namespaces are kept, the
node's own namespace (by its /run/netns name and by /proc/<pid>/ns/net), and
a pod namespace that vanished before DEL.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backends.netns.node import NetnsNode
from podnet.api.client import AgentClient, AgentError
from tests.integration.nodes import bare_node, ipam_owners, pod_netns

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    with bare_node("nsguard") as n:
        n.start_agent(sys.executable, "--pod-cidr", "10.57.0.0/28", "--datapath", "routes")
        yield n


@contextlib.contextmanager
def planted(node: NetnsNode, make: str) -> Iterator[str]:
    """A FIFO or a regular file where network namespaces are kept (named so `lab clean` finds it)."""
    path = Path(f"/run/netns/{node.netns}-{make}{secrets.token_hex(2)}")
    if make == "fifo":
        os.mkfifo(path)
    else:
        path.write_text("not a namespace\n")
    try:
        yield str(path)
    finally:
        path.unlink(missing_ok=True)


def create(node: NetnsNode, endpoint_id: str, netns: str) -> tuple[AgentClient, str, AgentError | None]:
    client = AgentClient(str(node.agent_sock))
    ip = client.ipam_allocate("cni-test", expiration=True)["address"]["ipv4"]
    body = {"addressing": {"ipv4": ip}, "netns": netns, "interface-name": "eth0"}
    try:
        client.endpoint_create(endpoint_id, body)
    except AgentError as err:
        return client, ip, err
    return client, ip, None


def refused(node: NetnsNode, netns: str, says: str) -> None:
    started = time.monotonic()
    client, ip, err = create(node, "refused", netns)
    assert time.monotonic() - started < 2, "the agent's worker was held"
    assert err is not None, f"{netns} was accepted"
    assert (err.status, err.reason) == (400, "invalid-netns") and says in str(err), err
    assert "lxc" not in node.cmd("ip", "-o", "link").stdout
    client.ipam_release(ip)
    assert client.healthz()["state"] == "ok"


def test_a_fifo_where_namespaces_are_kept_is_refused_without_blocking(node: NetnsNode) -> None:
    with planted(node, "fifo") as fifo:
        refused(node, fifo, "it is a FIFO, not an nsfs file")


def test_a_file_where_namespaces_are_kept_is_refused(node: NetnsNode) -> None:
    with planted(node, "file") as path:
        refused(node, path, "it is a file, not an nsfs file")


def test_the_nodes_own_namespace_is_never_a_pods(node: NetnsNode) -> None:
    refused(node, node.netns_path, "is the node's own network namespace")
    agent_pid = node.processes()["podnet-agent"].pid
    refused(node, f"/proc/{agent_pid}/ns/net", "is the node's own network namespace")
    refused(node, "/proc/1/ns/net", "")  # init's, or one the agent may not open


def test_a_pods_namespace_by_its_proc_path_is_accepted(node: NetnsNode) -> None:
    with pod_netns(node) as pod:
        sleeper = subprocess.Popen(["ip", "netns", "exec", Path(pod).name, "sleep", "30"])
        try:
            time.sleep(0.3)
            client, ip, err = create(node, "by-proc", f"/proc/{sleeper.pid}/ns/net")
            assert err is None, err
            addr = subprocess.run(
                ["nsenter", f"--net={pod}", "ip", "-o", "-4", "addr", "show", "eth0"], capture_output=True, text=True
            ).stdout
            assert f"inet {ip}/32" in addr
            client.endpoint_delete("by-proc", release_ip=True)
        finally:
            sleeper.kill()
            sleeper.wait()


def test_del_whose_namespace_is_gone_still_releases_the_ip(node: NetnsNode) -> None:
    with pod_netns(node) as pod:
        client, ip, err = create(node, "gone", pod)
        assert err is None, err
    # the runtime removed the namespace first (the pod side of the veth, and with it the pair, is gone)
    client.endpoint_delete("gone", release_ip=True)
    assert ip not in {a["ip"] for a in client.request("GET", "/v1/ipam")["allocations"]}
    assert ipam_owners(node) == ["router"]
