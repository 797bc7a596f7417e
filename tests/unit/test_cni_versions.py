"""podnet's CNI plugin at every spec version it claims, in chains, and CHECK against the pod's namespace
(real agent, kernel faked). Each test protects a rule of `lab conformance cni` podnet once failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.conformance.cni.rules_chain import previous_result
from lab.conformance.cni.spec import result_problems
from podnet.cmd.cni import run
from podnet.cni.result import merged, shaped
from podnet.cni.spec import SUPPORTED_VERSIONS
from podnet.datapath.protocol import PodLink
from tests.agent_harness import RunningAgent, running_agent

NETNS = "/var/run/netns/pod1"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/29") as running:
        yield running


def cni(agent: RunningAgent, command: str, version: str = "1.1.0", cid: str = "c1", **extra: Any) -> tuple[int, Any]:
    conf = {"cniVersion": version, "name": "podnet", "type": "podnet", "agentSocket": agent.socket, **extra}
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0"}
    return run(json.dumps(conf).encode(), env)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_answers_the_result_shape_of_the_version_asked_for(env: RunningAgent, version: str) -> None:
    status, result = cni(env, "ADD", version)
    assert status == 0, result
    assert result_problems(result, version) == []
    assert ("version" in result["ips"][0]) == version.startswith("0."), result["ips"]
    if version.startswith("0."):
        assert result["ips"][0]["version"] == "4"


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_keeps_a_chains_prev_result_and_moves_its_own_indexes(env: RunningAgent, version: str) -> None:
    prev = previous_result(version)
    status, result = cni(env, "ADD", version, prevResult=prev)
    assert status == 0, result
    assert result_problems(result, version) == []
    assert result["interfaces"][0]["name"] == "cfprev0" and result["interfaces"][2]["name"] == "eth0"
    assert (result["ips"][0]["address"], result["ips"][0]["interface"]) == ("192.0.2.10/32", 0)
    assert result["ips"][1]["interface"] == 2 and result["ips"][1]["address"].startswith("10.44.0.")
    assert result["routes"][0] == {"dst": "198.51.100.0/24"} and result["dns"]["nameservers"] == ["192.0.2.53"]
    if version >= "0.4.0":  # CHECK judges only what podnet made: the chain's 192.0.2.10 on cfprev0 is not its
        assert cni(env, "CHECK", version, prevResult=result) == (0, None)


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_version_answers_the_version_asked_for(version: str) -> None:
    status, reply = run(json.dumps({"cniVersion": version}).encode(), {"CNI_COMMAND": "VERSION"})
    assert status == 0 and reply == {"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}
    assert run(b"", {"CNI_COMMAND": "VERSION"})[1] == {"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS}
    assert run(b'{"cniVersion": "9.9.9"}', {"CNI_COMMAND": "VERSION"})[1]["cniVersion"] == "1.1.0"


def test_network_name_with_forbidden_characters_is_code_7_from_1_0(env: RunningAgent) -> None:
    status, error = cni(env, "ADD", name="-bad name/x")
    assert status == 1 and error["code"] == 7 and "-bad name/x" in error["msg"], error
    assert cni(env, "ADD", "0.4.0", name="old style name")[0] == 0  # 0.4.0 put no rule on names


def test_check_without_prev_result_is_an_error(env: RunningAgent) -> None:
    assert cni(env, "ADD")[0] == 0
    status, error = cni(env, "CHECK")
    assert status == 1 and error["code"] == 7 and "prevResult" in error["msg"]


def test_check_names_the_address_removed_from_the_pod(env: RunningAgent) -> None:
    _, result = cni(env, "ADD")
    assert cni(env, "CHECK", prevResult=result) == (0, None)
    ((key, link),) = env.datapath.pods.items()
    env.datapath.pods[key] = PodLink(link.mac, (), link.routes)  # `ip addr del` in the pod
    status, error = cni(env, "CHECK", prevResult=result)
    assert status == 1 and error["code"] == 101, error
    assert result["ips"][0]["address"] in error["msg"] and "eth0" in error["msg"]


def test_check_names_the_interface_removed_from_the_pod(env: RunningAgent) -> None:
    _, result = cni(env, "ADD")
    env.datapath.pods.clear()  # `ip link del eth0` in the pod
    status, error = cni(env, "CHECK", prevResult=result)
    assert status == 1 and error["code"] == 101 and f"eth0 is missing in {NETNS}" in error["msg"], error


def test_the_agent_reads_the_pod_side_of_an_endpoint(env: RunningAgent) -> None:
    _, result = cni(env, "ADD")
    pod = env.client.request("GET", "/v1/endpoint/cni-c1-eth0/interface")
    assert pod["present"] and pod["name"] == "eth0" and pod["netns"] == NETNS
    assert pod["addresses"] == [result["ips"][0]["address"]]
    assert f"0.0.0.0/0 via {result['ips'][0]['gateway']}" in pod["routes"]


def test_shaped_and_merged_keep_every_field_of_the_version() -> None:
    own = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mtu": 1500}],
        "ips": [{"address": "10.0.0.2/32", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "table": 100}],
        "dns": {"nameservers": ["10.0.0.1"]},
    }
    assert shaped(own, "1.1.0")["routes"] == [{"dst": "0.0.0.0/0", "table": 100}]
    old = shaped(own, "0.4.0")
    assert old["ips"] == [{"address": "10.0.0.2/32", "interface": 0, "version": "4"}]
    assert old["interfaces"] == [{"name": "eth0"}] and old["routes"] == [{"dst": "0.0.0.0/0"}]
    assert result_problems(old, "0.4.0") == []
    assert shaped(old, "1.0.0")["ips"] == [{"address": "10.0.0.2/32", "interface": 0}]
    both = merged(previous_result("1.1.0"), own)
    assert both["ips"][1]["interface"] == 1 and both["dns"]["nameservers"] == ["192.0.2.53", "10.0.0.1"]
    assert merged(None, own) is own
