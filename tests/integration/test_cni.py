"""The podnet CNI plugin exec'd per spec on a real kernel, next to the reference plugins.

A node namespace runs the podnet agent; each pod is a network namespace of its
own. The reference plugins (Debian containernetworking-plugins: bridge +
host-local) run in the same node where their behaviour should match podnet's.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backends.netns import cniexec
from lab.backends.netns.node import NetnsNode
from tests.integration.nodes import assert_delivered_to, bare_node, in_pod, ipam_owners, pod_netns

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    with bare_node("cni") as n:
        n.start_agent(sys.executable, "--pod-cidr", "10.55.0.0/28")
        yield n


@pytest.fixture
def pod(node: NetnsNode) -> Iterator[str]:
    with pod_netns(node) as netns:
        yield netns


def podnet_conf(node: NetnsNode) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "agentSocket": str(node.agent_sock)}


def reference_conf(node: NetnsNode) -> dict[str, Any]:
    return cniexec.reference_conf(node, "10.66.0.0/24")


def exec_plugin(
    node: NetnsNode, plugin: str, command: str, conf: dict[str, Any], netns: str, cid: str, ifname: str = "eth0"
) -> tuple[int, Any]:
    argv = [sys.executable, "-m", "podnet.cmd.cni"] if plugin == "podnet" else [str(cniexec.REFERENCE / plugin)]
    status, output, _ = cniexec.exec_cni(node, argv, command, conf, netns, cid, ifname=ifname)
    return status, output


def test_add_configures_the_pod_as_in_the_seed(node: NetnsNode, pod: str) -> None:
    status, result = exec_plugin(node, "podnet", "ADD", podnet_conf(node), pod, "c1")
    assert status == 0, result
    ip = result["ips"][0]["address"]
    assert ip.startswith("10.55.0.") and ip.endswith("/32")
    # nsenter into the pod: eth0 with a /32 from the node's pod CIDR, default via the router IP
    addr = in_pod(pod, "ip", "-o", "-4", "addr", "show", "eth0")
    assert f"inet {ip} scope global eth0" in addr
    routes = in_pod(pod, "ip", "route")
    assert "default via 10.55.0.1 dev eth0 proto static" in routes
    assert "10.55.0.1 dev eth0 proto static scope link" in routes
    # the pod reaches its router IP (ARP answered by the node) and the node routes back
    ping = subprocess.run(
        ["nsenter", f"--net={pod}", "busybox", "ping", "-c", "1", "-W", "2", "10.55.0.1"],
        capture_output=True,
        text=True,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    host_if = result["interfaces"][0]["name"]
    assert_delivered_to(node, ip.split("/")[0], host_if, "10.55.0.0/28")
    assert exec_plugin(node, "podnet", "CHECK", {**podnet_conf(node), "prevResult": result}, pod, "c1") == (0, None)
    assert exec_plugin(node, "podnet", "DEL", podnet_conf(node), pod, "c1") == (0, None)
    assert host_if not in node.cmd("ip", "link").stdout


def test_two_pods_reach_each_other(node: NetnsNode, pod: str) -> None:
    other = pod + "b"
    subprocess.run(["ip", "netns", "add", Path(other).name], check=True)
    try:
        exec_plugin(node, "podnet", "ADD", podnet_conf(node), pod, "pa")
        _, b = exec_plugin(node, "podnet", "ADD", podnet_conf(node), other, "pb")
        target = b["ips"][0]["address"].split("/")[0]
        ping = subprocess.run(
            ["nsenter", f"--net={pod}", "busybox", "ping", "-c", "1", "-W", "2", target], capture_output=True, text=True
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        exec_plugin(node, "podnet", "DEL", podnet_conf(node), pod, "pa")
        exec_plugin(node, "podnet", "DEL", podnet_conf(node), other, "pb")
        subprocess.run(["ip", "netns", "del", Path(other).name], check=False)


@pytest.mark.parametrize("plugin", ["podnet", "bridge"])
def test_del_is_idempotent_even_without_the_netns(node: NetnsNode, plugin: str) -> None:
    conf = podnet_conf(node) if plugin == "podnet" else reference_conf(node)
    name = f"{node.netns}-gone{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    netns = f"/run/netns/{name}"
    try:
        status, result = exec_plugin(node, plugin, "ADD", conf, netns, f"{plugin}-del")
        assert status == 0, result
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)  # the pod's netns is gone before DEL
    assert exec_plugin(node, plugin, "DEL", conf, netns, f"{plugin}-del") == (0, None)
    assert exec_plugin(node, plugin, "DEL", conf, netns, f"{plugin}-del") == (0, None)
    if plugin == "podnet":
        assert ipam_owners(node) == ["router"], "DEL without a netns must still release the IP"


@pytest.mark.parametrize("plugin", ["podnet", "bridge"])
def test_add_onto_an_existing_interface_fails_and_leaks_nothing(node: NetnsNode, pod: str, plugin: str) -> None:
    conf = podnet_conf(node) if plugin == "podnet" else reference_conf(node)
    assert exec_plugin(node, plugin, "ADD", conf, pod, f"{plugin}-first")[0] == 0
    status, error = exec_plugin(node, plugin, "ADD", conf, pod, f"{plugin}-second")  # eth0 exists in the pod
    assert status != 0 and error["code"] > 0 and error["msg"]
    exec_plugin(node, plugin, "DEL", conf, pod, f"{plugin}-first")
    exec_plugin(node, plugin, "DEL", conf, pod, f"{plugin}-second")
    if plugin == "podnet":
        assert error["code"] == 101 and "eth0" in error["msg"]
        assert ipam_owners(node) == ["router"]
        assert "lxc" not in node.cmd("ip", "link").stdout


# -- the compiled podnet-cni (what a CNI bin dir holds) ------------------------------------------


def exec_shim(node: NetnsNode, command: str, conf: dict[str, Any], netns: str, cid: str) -> tuple[int, Any]:
    from podnet.cni.shim import binary

    status, output, _ = cniexec.exec_cni(node, [str(binary())], command, conf, netns, cid)
    return status, output


def test_shim_version_matches_the_python_plugin(node: NetnsNode) -> None:
    from podnet.cmd.cni import run

    assert exec_shim(node, "VERSION", {}, "", "v")[1] == run(b"", {"CNI_COMMAND": "VERSION"})[1]


def test_shim_add_check_del_through_the_agent(node: NetnsNode, pod: str) -> None:
    status, result = exec_shim(node, "ADD", podnet_conf(node), pod, "shim1")
    assert status == 0, result
    assert result["cniVersion"] == "1.1.0" and result["ips"][0]["address"].startswith("10.55.0.")
    ip = result["ips"][0]["address"]
    assert f"inet {ip} scope global eth0" in in_pod(pod, "ip", "-o", "-4", "addr", "show", "eth0")
    assert exec_shim(node, "CHECK", {**podnet_conf(node), "prevResult": result}, pod, "shim1") == (0, None)
    assert exec_shim(node, "DEL", podnet_conf(node), pod, "shim1") == (0, None)
    assert exec_shim(node, "DEL", podnet_conf(node), pod, "shim1") == (0, None)


def test_del_returns_once_the_interface_is_gone_so_add_may_follow_at_once(node: NetnsNode, pod: str) -> None:
    """A runtime may ADD the same container and interface right after DEL. The agent deletes veths on
    a thread of its own; DEL used to answer before that deletion, so eth0 was still in the pod (the
    conformance rule del.removes-interface caught it) and an ADD at once could meet the old veth."""
    conf = podnet_conf(node)
    for i in range(15):
        status, result = exec_shim(node, "ADD", conf, pod, "again")
        assert status == 0, (i, result)
        assert exec_shim(node, "DEL", conf, pod, "again") == (0, None)
        assert " eth0" not in in_pod(pod, "ip", "-o", "link", "show"), f"cycle {i}: eth0 still in the pod after DEL"


def test_shim_passes_plugin_errors_through(node: NetnsNode, pod: str) -> None:
    status, error = exec_shim(
        node, "ADD", {"cniVersion": "9.9.9", "type": "podnet"} | {"agentSocket": str(node.agent_sock)}, pod, "bad"
    )
    assert status == 1 and error["code"] == 1 and "9.9.9" in error["msg"], error  # incompatible version
    status, error = exec_shim(node, "ADD", {**podnet_conf(node), "mtu": "big"}, pod, "bad")
    assert status == 1 and error["code"] == 7, error


def test_shim_reports_an_unreachable_agent_as_try_again(node: NetnsNode, pod: str) -> None:
    conf = {**podnet_conf(node), "agentSocket": "/nonexistent/podnet.sock"}
    status, error = exec_shim(node, "ADD", conf, pod, "down")
    assert status == 1 and error == {
        "cniVersion": "1.1.0",
        "code": 11,
        "msg": "podnet agent is unreachable at unix:///nonexistent/podnet.sock (No such file or directory); "
        "is podnet-agent running?",
    }
