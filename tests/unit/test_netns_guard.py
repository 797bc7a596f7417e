"""Not any file is a netns: an absolute path in an allowed place, an nsfs network namespace, not the node's own.

The kernel checks that need no root run here on this process's own namespace
files; a real pod namespace (and the agent's own and a FIFO through a real
agent) is in tests/integration/test_netns_guard.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from podnet.agent.config import ConfigError, load_config
from podnet.api.client import AgentError
from podnet.cmd.cni import run as run_cni
from podnet.datapath import netns as guard
from tests.agent_harness import RunningAgent, running_agent


def _owners(env: RunningAgent) -> dict[str, str]:
    return {str(a.ip): a.owner for a in env.agent.ipam.allocations()}


@pytest.mark.parametrize(
    ("netns", "says"),
    [
        ("var/run/netns/pod1", "is not an absolute path"),
        ("/etc/shadow", "is not in a place network namespaces are kept"),
        ("/run/netns/../../etc/shadow", "is not a normalised path"),
        ("/run/netns//pod1", "is not a normalised path"),
        ("/run/netns", "is not in a place network namespaces are kept"),
        ("/tmp/fifo", "is not in a place network namespaces are kept"),
    ],
)
def test_any_file_is_not_a_netns(tmp_path: Path, netns: str, says: str) -> None:
    with running_agent(tmp_path, pod_cidr="10.99.0.0/29") as env:
        ip = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
        body = {"addressing": {"ipv4": ip}, "netns": netns, "interface-name": "eth0"}
        with pytest.raises(AgentError) as caught:
            env.client.endpoint_create("ep1", body)
        assert (caught.value.status, caught.value.reason) == (400, "invalid-netns")
        assert says in str(caught.value)
        assert _owners(env)[ip] == "docker-ipam" and env.datapath.host_veths() == []


def test_default_places_cover_what_runtimes_use() -> None:
    for path in (
        "/run/netns/cni-1234",
        "/var/run/netns/cni-5678",
        "/run/user/1000/netns/netns-abc",
        "/proc/4242/ns/net",
        "/proc/4242/task/4243/ns/net",
        "/var/run/docker/netns/1a2b3c4d5e6f",
        "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/netns",
    ):
        assert guard.check_netns_path(path, guard.DEFAULT_NETNS_PATHS) == path
    for path in ("/proc/4242/ns/mnt", "/run/netns/a/b", "/run/user/1000/netns", "/root/netns"):
        with pytest.raises(guard.NetnsError):
            guard.check_netns_path(path, guard.DEFAULT_NETNS_PATHS)


def test_netns_places_are_configurable(tmp_path: Path) -> None:
    config = load_config(None, {"netns_paths": ["/srv/sandboxes/*/net"]})
    assert guard.check_netns_path("/srv/sandboxes/a/net", config.netns_paths)
    with pytest.raises(guard.NetnsError):
        guard.check_netns_path("/run/netns/x", config.netns_paths)
    with pytest.raises(ConfigError, match="must be an absolute path pattern"):
        load_config(None, {"netns_paths": ["run/netns/*"]})


def test_open_netns_refuses_files_fifos_devices_and_the_nodes_own(tmp_path: Path) -> None:
    regular = tmp_path / "shadow"
    regular.write_text("root:x\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {
        str(regular): "is not a network namespace: it is a file, not an nsfs file",
        str(fifo): "is not a network namespace: it is a FIFO, not an nsfs file",
        "/dev/null": "is not a network namespace: it is a device, not an nsfs file",
        str(tmp_path): "is not a network namespace: it is a directory, not an nsfs file",
        str(tmp_path / "gone"): "does not exist",
        "/proc/self/ns/net": "is the node's own network namespace, never a pod's",
        f"/proc/{os.getpid()}/ns/net": "is the node's own network namespace, never a pod's",
        "/proc/self/ns/uts": "is a namespace, but not a network namespace",
    }
    open_before = sorted(os.listdir("/proc/self/fd"))
    for path, says in cases.items():
        started = time.monotonic()
        with pytest.raises(guard.NetnsError) as caught:
            os.close(guard.open_netns(path))
        assert says in str(caught.value), path
        assert caught.value.reason == "invalid-netns"
        assert time.monotonic() - started < 1, f"{path} blocked"
    assert sorted(os.listdir("/proc/self/fd")) == open_before  # nothing left open


def test_cni_add_with_a_refused_netns_fails_with_code_4_and_del_still_releases(tmp_path: Path) -> None:
    with running_agent(tmp_path, pod_cidr="10.99.0.0/29") as env:
        conf = (
            b'{"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "agentSocket": "'
            + env.socket.encode()
            + b'"}'
        )
        environment = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/etc/shadow", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}
        status, output = run_cni(conf, {**environment, "CNI_COMMAND": "ADD"})
        assert status == 1 and output is not None
        assert output["code"] == 4 and "/etc/shadow is not in a place network namespaces are kept" in output["msg"]
        assert _owners(env) == {"10.99.0.1": "router"}  # the IP ADD took is back
        assert run_cni(conf, {**environment, "CNI_COMMAND": "DEL"}) == (0, None)
        assert _owners(env) == {"10.99.0.1": "router"} and env.datapath.host_veths() == []
