"""The CNI plugin given what a runtime should never send: a CNI error, nothing smuggled, nothing leaked (issue 13)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.cmd.cni import run
from tests.agent_harness import RunningAgent, running_agent
from tests.interfaces import assert_cni_error, assert_store_invariants

CID = "c0ffee" * 10 + "abcd"
RULE = {"name": "allow-web", "endpointSelector": {"matchLabels": {"id": "app1"}}, "ingress": [{}]}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/28") as running:
        yield running
        assert_store_invariants(running.agent)  # whatever the test sent


def conf(socket_path: str, **extra: Any) -> bytes:
    return json.dumps({"cniVersion": "1.1.0", "name": "podnet", "agentSocket": socket_path, **extra}).encode()


def cni(agent: RunningAgent, command: str, *, stdin: bytes | None = None, **env: str) -> tuple[int, Any]:
    environment = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": "/var/run/netns/pod1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        **env,
    }
    return run(conf(agent.socket) if stdin is None else stdin, environment)


def leftovers(agent: RunningAgent) -> tuple[list[str], list[str], list[str]]:
    """(IP owners but the router, endpoint ids, host veths): what a refused call must not leave."""
    owners = sorted(a.owner for a in agent.agent.ipam.allocations() if a.owner != "router")
    return owners, [e.id for e in agent.agent.endpoints.list()], agent.datapath.host_veths()


SMUGGLE = (
    "x HTTP/1.1\r\nHost: podnet\r\n\r\nDELETE /v1/policy HTTP/1.1\r\nHost: podnet\r\nContent-Length: 0\r\n\r\nGET /"
)


@pytest.mark.parametrize("command", ["CHECK", "DEL", "ADD"])
def test_crlf_in_a_container_id_cannot_smuggle_a_policy_delete(env: RunningAgent, command: str) -> None:
    env.client.request("PUT", "/v1/policy", body=[RULE])
    status, output = cni(env, command, CNI_CONTAINERID=SMUGGLE)
    assert_cni_error(status, output, 4)
    assert "contains a control character" in output["msg"]
    assert [r["name"] for r in env.client.request("GET", "/v1/policy")["rules"]] == ["allow-web"]
    assert leftovers(env) == ([], [], [])


@pytest.mark.parametrize(
    "container_id",
    ["abc?x", "abc#frag", "a b", "ünïcode", "-leading-dash", "_underscore", "a/b", "a;b", "a%2Fb", "a:b"],
)
def test_container_ids_the_spec_forbids_are_code_4_for_add_and_del(env: RunningAgent, container_id: str) -> None:
    status, output = cni(env, "ADD", CNI_CONTAINERID=container_id)
    assert_cni_error(status, output, 4)
    assert "CNI_CONTAINERID" in output["msg"] and "is not a valid container id" in output["msg"]
    assert leftovers(env) == ([], [], [])
    status, output = cni(env, "DEL", CNI_CONTAINERID=container_id)  # the same answer, not an agent error
    assert_cni_error(status, output, 4)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        ("K8S_POD_NAME=endpoint:x", "K8S_POD_NAME"),
        ("K8S_POD_NAME=a/b", "K8S_POD_NAME"),
        ("K8S_POD_NAME=-x", "K8S_POD_NAME"),
        ("K8S_POD_NAMESPACE=ns/other;K8S_POD_NAME=app1", "K8S_POD_NAMESPACE"),
        (f"K8S_POD_NAMESPACE={'a' * 64};K8S_POD_NAME=app1", "K8S_POD_NAMESPACE"),
    ],
)
def test_pod_names_no_runtime_would_make_are_code_4(env: RunningAgent, args: str, what: str) -> None:
    """They name the IP's owner (<namespace>/<pod>): refused by the plugin with the field, not by the agent."""
    status, output = cni(env, "ADD", CNI_ARGS=f"IgnoreUnknown=1;{args}")
    assert_cni_error(status, output, 4)
    assert what in output["msg"]
    assert leftovers(env) == ([], [], [])


@pytest.mark.parametrize(
    ("ifname", "why"),
    [
        ("é" * 8, "16 bytes (at most 15)"),  # 8 characters: counted in characters, it passed
        ("eth0123456789abc", "16 bytes"),
        ("a:b", "no '/', ':' or whitespace"),
        ("a b", "no '/', ':' or whitespace"),
        ("a\u00a0b", "no '/', ':' or whitespace"),
        ("a/b", "no '/', ':' or whitespace"),
        (".", "not '.' or '..'"),
        ("..", "not '.' or '..'"),
    ],
)
def test_interface_names_linux_refuses_are_code_4(env: RunningAgent, ifname: str, why: str) -> None:
    status, output = cni(env, "ADD", CNI_IFNAME=ifname)
    assert_cni_error(status, output, 4)
    assert "CNI_IFNAME" in output["msg"] and why in output["msg"]
    assert leftovers(env) == ([], [], [])


def test_unusual_interface_names_linux_takes_get_their_own_endpoints(env: RunningAgent) -> None:
    for ifname in ("net@1", "é1", "eth0"):
        status, result = cni(env, "ADD", CNI_IFNAME=ifname)
        assert status == 0, result
        assert result["interfaces"][1]["name"] == ifname
    ids = sorted(e.id for e in env.agent.endpoints.list())
    assert ids == sorted([f"cni-{CID}-eth0", f"cni-{CID}-net:401", f"cni-{CID}-:c3:a91"])
    for ifname in ("net@1", "é1", "eth0"):
        assert cni(env, "DEL", CNI_IFNAME=ifname) == (0, None)
    assert leftovers(env) == ([], [], [])


def test_control_characters_anywhere_in_the_environment_are_code_4(env: RunningAgent) -> None:
    status, output = cni(env, "ADD", CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=app\r\nX: 1")
    assert_cni_error(status, output, 4)
    assert output["msg"].startswith("CNI_ARGS") and "control character" in output["msg"]
    status, output = cni(env, "ADD", CNI_NETNS="/var/run/netns/p\x00d")
    assert_cni_error(status, output, 4)
    assert leftovers(env) == ([], [], [])


def test_an_id_too_long_for_an_endpoint_is_code_4(env: RunningAgent) -> None:
    status, output = cni(env, "ADD", CNI_CONTAINERID="a" * 124)
    assert_cni_error(status, output, 4)
    assert "too long together" in output["msg"] and "(at most 128)" in output["msg"]
    assert leftovers(env) == ([], [], [])


@pytest.mark.parametrize(
    ("prev", "message"),
    [
        ("a string", "prevResult must be a JSON object, got str"),
        ([1, 2], "prevResult must be a JSON object, got list"),
        ({"ips": "10.44.0.2"}, "prevResult.ips must be a list, got str"),
        ({"ips": [1]}, "prevResult.ips[0] must be an object with an address string"),
        ({"ips": [{"address": 10}]}, "prevResult.ips[0] must be an object with an address string"),
    ],
)
def test_a_prev_result_of_the_wrong_shape_is_code_7(env: RunningAgent, prev: Any, message: str) -> None:
    assert cni(env, "ADD")[0] == 0
    status, output = cni(env, "CHECK", stdin=conf(env.socket, prevResult=prev))
    assert_cni_error(status, output, 7)
    assert message in output["msg"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"cniVersion": "1.1.0", "name": "x", "args": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"cniVersion": "1.1.0", "name": "x", "args": ' + "[" * 100 + "]" * 100 + "}", "nested too deeply"),
        ('{"cniVersion": "1.1.0", "name": "\\ud800"}', "lone surrogate \\ud800"),
        ('{"cniVersion": "1.1.0", "name": "x", "\\udfff": 1}', "lone surrogate \\udfff"),
    ],
)
def test_json_that_would_crash_later_is_a_decoding_error(env: RunningAgent, text: str, message: str) -> None:
    status, output = cni(env, "ADD", stdin=text.encode())
    assert_cni_error(status, output, 6)
    assert message in output["msg"]
    assert leftovers(env) == ([], [], [])


@pytest.mark.parametrize("timeout", [0, -1, "30", True, 3601, None])
def test_an_unusable_agent_timeout_is_code_7(env: RunningAgent, timeout: Any) -> None:
    status, output = cni(env, "ADD", stdin=conf(env.socket, agentTimeout=timeout))
    assert_cni_error(status, output, 7)
    assert "agentTimeout" in output["msg"]


def test_agent_timeout_from_the_network_config_bounds_the_whole_call(tmp_path: Path) -> None:
    """An agent that takes the connection and never answers: code 11 by the configured deadline."""
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(5)
        for _ in range(2):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        started = time.monotonic()
        status, output = run(
            conf(path, agentTimeout=1),
            {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": CID, "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0"},
        )
        elapsed = time.monotonic() - started
        assert_cni_error(status, output, 11)
        assert "did not answer within 0.9 s" in output["msg"], output
        assert elapsed < 1.3
    finally:
        for conn in held:
            conn.close()
        server.close()


def test_gc_ignores_attachments_it_cannot_match(env: RunningAgent) -> None:
    assert cni(env, "ADD")[0] == 0
    valid = [{"containerID": CID, "ifname": "eth0"}, {"containerID": 7, "ifname": None}, "junk"]
    assert cni(env, "GC", stdin=conf(env.socket, **{"cni.dev/valid-attachments": valid})) == (0, None)
    assert [e.id for e in env.agent.endpoints.list()] == [f"cni-{CID}-eth0"]


def test_a_bug_in_the_plugin_is_still_a_cni_error(env: RunningAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    from podnet.cni import plugin

    def broken(*args: object) -> None:
        raise KeyError("networking")

    monkeypatch.setattr(plugin, "status", broken)
    status, output = cni(env, "STATUS")
    assert_cni_error(status, output, 102)
    assert output["msg"] == "internal error in the podnet CNI plugin: KeyError: 'networking'"


def test_a_locked_store_is_code_11_well_before_the_deadline(tmp_path: Path) -> None:
    import sqlite3

    with running_agent(tmp_path, pod_cidr="10.44.0.0/28", store=f"sqlite://{tmp_path}/state.db?busy_timeout=1") as env:
        holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than anyone waits
        try:
            started = time.monotonic()
            status, output = cni(env, "ADD")
            assert time.monotonic() - started < 3
            assert_cni_error(status, output, 11)
            assert "is locked by another writer" in output["msg"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert_store_invariants(env.agent)
        assert leftovers(env) == ([], [], [])
        assert cni(env, "ADD")[0] == 0
        assert_store_invariants(env.agent)
