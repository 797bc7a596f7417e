"""podman 4.3 with its CNI backend drives the podnet plugin, next to the reference plugins.

podman sends VERSION, then ADD and DEL with `K8S_POD_NAME=<container name>`
in CNI_ARGS; it never sends CHECK, STATUS or GC (tests/integration/test_cni.py
covers those at the spec level). The same podman, on the same node, also runs
a bridge + host-local network (Debian containernetworking-plugins) where the
behaviour should match: a container gets an IP and reaches another over HTTP,
stop/start gives it networking back, rm leaves nothing.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from lab.backends.netns.cniexec import reference_conf
from lab.backends.netns.node import NetnsNode
from lab.backends.netns.podman import Podman
from lab.image import IMAGE, build_rootfs_tar
from podnet.api.client import AgentClient
from podnet.cni.shim import binary
from tests.integration.nodes import bare_node, ipam_owners

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman missing: ci/bootstrap installs it"),
]

POD_CIDR = "10.57.0.0/28"
PLUGIN = binary()


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    with bare_node("podman") as n:
        n.start_agent(sys.executable, "--pod-cidr", POD_CIDR)
        yield n


@pytest.fixture(scope="module", params=["podnet", "reference"])
def podman(request: pytest.FixtureRequest, node: NetnsNode) -> Iterator[Podman]:
    runtime = Podman(node, PLUGIN, network=request.param)
    plugin: dict[str, Any]
    if request.param == "podnet":
        plugin = {"type": "podnet", "agentSocket": str(node.agent_sock)}
    else:
        plugin = {k: v for k, v in reference_conf(node, "10.67.0.0/24").items() if k not in ("cniVersion", "name")}
    runtime.write_conflist(plugin)
    if runtime.run("image", "exists", IMAGE, check=False).returncode != 0:
        runtime.import_image(build_rootfs_tar(node.path("busybox.tar")), IMAGE)
    yield runtime
    runtime.remove_all()


def ip_of(podman: Podman, name: str) -> str:
    return podman.run(
        "inspect", name, "--format", f"{{{{.NetworkSettings.Networks.{podman.network}.IPAddress}}}}"
    ).stdout.strip()


@pytest.fixture(autouse=True)
def no_containers_left(podman: Podman) -> Iterator[None]:
    yield
    podman.remove_all()


def test_run_gets_an_ip_and_serves_http(node: NetnsNode, podman: Podman) -> None:
    started = podman.run_container("web", IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc")
    assert started.returncode == 0, started.stderr
    ip = ip_of(podman, "web")
    inside = podman.run("exec", "web", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    fetch = podman.run_container("client", IMAGE, "wget", "-qO-", f"http://{ip}/hostname", detach=False)
    assert fetch.returncode == 0, fetch.stderr
    if podman.network == "podnet":
        assert ip.startswith("10.57.0.") and f"inet {ip}/32 scope global eth0" in inside
        routes = podman.run("exec", "web", "ip", "route").stdout
        assert "default via 10.57.0.1 dev eth0" in routes
        endpoints = AgentClient(str(node.agent_sock)).request("GET", "/v1/endpoint")
        assert [(e["pod-name"], e["labels"]) for e in endpoints] == [("default/web", ["K8S_POD_NAME=web"])]
    else:
        assert ip.startswith("10.67.0.") and f"inet {ip}/24" in inside
    podman.run("rm", "-f", "-t", "0", "web")


def test_stop_start_and_rm_leave_nothing(node: NetnsNode, podman: Podman) -> None:
    links_before = node.cmd("ip", "-o", "link").stdout.count("\n")
    assert podman.run_container("cycle", IMAGE, "sleep", "600").returncode == 0
    first = ip_of(podman, "cycle")
    podman.run("stop", "-t", "0", "cycle")  # CNI DEL
    if podman.network == "podnet":
        assert "default/cycle" not in ipam_owners(node)
    podman.run("start", "cycle")  # CNI ADD again
    again = ip_of(podman, "cycle")
    assert again and podman.run("exec", "cycle", "ip", "-o", "-4", "addr", "show", "eth0").stdout.count(again) == 1
    podman.run("rm", "-f", "-t", "0", "cycle")
    if podman.network == "podnet":
        assert ipam_owners(node) == ["router"]
        assert first.startswith("10.57.0.") and "lxc" not in node.cmd("ip", "link").stdout
        assert node.cmd("ip", "-o", "link").stdout.count("\n") == links_before
    else:
        leases = node.path("host-local", "reference")
        assert not [p for p in leases.glob("10.*")] if leases.is_dir() else True


def test_agent_down_fails_the_run_with_podnet_message(node: NetnsNode, podman: Podman) -> None:
    if podman.network != "podnet":
        pytest.skip("podnet's agent only")
    node.stop("podnet-agent")
    try:
        failed = podman.run_container("orphan", IMAGE, "sleep", "60")
        assert failed.returncode != 0
        assert "podnet agent is unreachable at unix://" in failed.stderr, failed.stderr
        podman.run("rm", "-f", "-t", "0", "orphan", check=False)
    finally:
        node.start_agent(sys.executable, "--pod-cidr", POD_CIDR)
    assert ipam_owners(node) == ["router"]
    assert "lxc" not in node.cmd("ip", "link").stdout
