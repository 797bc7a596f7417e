"""The podnet plugin driven through libcni (lab/libcni/main.go), as containerd and CRI-O drive plugins.

libcni loads the conflist, checks the plugin's VERSION, chains prevResult into
the next plugin, caches the ADD result and hands it to CHECK and DEL. The
same runtime drives the reference bridge + host-local network for the parts
where behaviour should match.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from lab.backends.netns.cniexec import reference_conf
from lab.backends.netns.libcni import LibCNI
from lab.backends.netns.node import NetnsNode
from podnet.cni.shim import binary
from tests.integration.nodes import bare_node, in_pod, ipam_owners, pod_netns

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    with bare_node("libcni") as n:
        n.start_agent(sys.executable, "--pod-cidr", "10.58.0.0/28")
        yield n


@pytest.fixture(scope="module")
def runtime(node: NetnsNode) -> LibCNI:
    cni = LibCNI(node, binary())
    podnet = {"type": "podnet", "agentSocket": str(node.agent_sock)}
    cni.write_conflist("podnet", [podnet])
    cni.write_conflist(
        "podnet-tuned", [podnet, {"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}]
    )
    bridge = {k: v for k, v in reference_conf(node, "10.68.0.0/24").items() if k not in ("cniVersion", "name")}
    cni.write_conflist("reference", [bridge])
    return cni


@pytest.fixture
def pod(node: NetnsNode) -> Iterator[str]:
    with pod_netns(node) as netns:
        yield netns


def test_validate_negotiates_the_version(runtime: LibCNI) -> None:
    status, out, _ = runtime.call("validate", "podnet", "/dev/null", "v")
    assert status == 0 and out["cniVersion"] == "1.0.0", out


@pytest.mark.parametrize("network", ["podnet", "reference"])
def test_add_check_del_del(node: NetnsNode, runtime: LibCNI, pod: str, network: str) -> None:
    status, result, _ = runtime.call("add", network, pod, f"{network}-c1", pod="web")
    assert status == 0, result
    assert result["cniVersion"] == "1.0.0"
    ip = result["ips"][0]["address"]
    assert f"inet {ip}" in in_pod(pod, "ip", "-o", "-4", "addr", "show", "eth0")
    assert runtime.call("check", network, pod, f"{network}-c1")[:2] == (0, None)  # from libcni's result cache
    assert runtime.call("del", network, pod, f"{network}-c1")[:2] == (0, None)
    assert runtime.call("del", network, pod, f"{network}-c1")[:2] == (0, None)  # idempotent
    if network == "podnet":
        assert ip.startswith("10.58.0.") and ip.endswith("/32")
        assert ipam_owners(node) == ["router"]
        assert "lxc" not in node.cmd("ip", "link").stdout


def test_chained_plugin_gets_podnets_result(node: NetnsNode, runtime: LibCNI, pod: str) -> None:
    status, result, _ = runtime.call("add", "podnet-tuned", pod, "tuned")
    assert status == 0, result
    link = in_pod(pod, "ip", "-o", "link", "show", "eth0")
    assert "mtu 1400" in link  # tuning found eth0 through podnet's prevResult
    assert in_pod(pod, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").strip() == "1"
    assert runtime.call("check", "podnet-tuned", pod, "tuned")[:2] == (0, None)
    assert runtime.call("del", "podnet-tuned", pod, "tuned")[:2] == (0, None)
    assert ipam_owners(node) == ["router"]


def test_plugin_error_reaches_the_runtime(node: NetnsNode, runtime: LibCNI, pod: str) -> None:
    assert runtime.call("add", "podnet", pod, "first")[0] == 0
    status, error, _ = runtime.call("add", "podnet", pod, "second")  # eth0 already exists in the pod
    assert status == 1 and error["code"] == 101, error
    assert error["msg"] == f"interface eth0 already exists in {pod}", error
    runtime.call("del", "podnet", pod, "second")
    runtime.call("del", "podnet", pod, "first")
    assert ipam_owners(node) == ["router"]
