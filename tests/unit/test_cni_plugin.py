"""The CNI plugin at spec level: every command, error codes, no leaks (real agent, kernel faked).

Every test runs twice: the pure-Python plugin (its agent calls over the socket), and the agent's
`POST /v1/cni` as the C shim sends it (the plugin logic inside the agent, calling it directly).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.cmd.cni import run
from podnet.datapath.names import host_ifname
from tests.agent_harness import RunningAgent, running_agent

CID = "c0ffee" * 10 + "abcd"


VIA = {"path": "python plugin"}


@pytest.fixture(autouse=True, params=["python plugin", "agent /v1/cni"])
def via(request: pytest.FixtureRequest) -> Iterator[str]:
    VIA["path"] = request.param
    yield request.param
    VIA["path"] = "python plugin"


def post_cni(socket_path: str, stdin: bytes, environment: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
    """What the C shim does: the call to the agent's /v1/cni, its exit status from the header."""
    conn = http.client.HTTPConnection("podnet")
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(socket_path)
    body = {"env": environment, "stdin": stdin.decode()}
    conn.request("POST", "/v1/cni", json.dumps(body), {"Content-Type": "application/json"})
    reply = conn.getresponse()
    text = reply.read().decode()
    conn.close()
    assert reply.status == 200, text
    return int(reply.getheader("Podnet-CNI-Exit") or "-1"), json.loads(text) if text.strip() else None


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/29") as running:
        yield running


def conf(agent: RunningAgent, **extra: Any) -> bytes:
    return json.dumps(
        {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "agentSocket": agent.socket, **extra}
    ).encode()


def cni(
    agent: RunningAgent | None,
    command: str,
    *,
    cid: str = CID,
    ifname: str = "eth0",
    stdin: bytes | None = None,
    **extra_env: str,
) -> tuple[int, dict[str, Any] | None]:
    environment = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/pod1",
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=app1",
        **extra_env,
    }
    body = stdin if stdin is not None else (conf(agent) if agent else b"")
    if VIA["path"] == "agent /v1/cni" and agent is not None:
        return post_cni(agent.socket, body, environment)
    return run(body, environment)


def owners(agent: RunningAgent) -> dict[str, str]:
    return {a.ip.exploded: a.owner for a in agent.agent.ipam.allocations()}


def test_version() -> None:
    assert cni(None, "VERSION") == (
        0,
        {"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]},
    )


def test_add_result_and_endpoint(env: RunningAgent) -> None:
    status, result = cni(env, "ADD")
    assert status == 0 and result is not None
    ep_id = f"cni-{CID}-eth0"
    assert result["interfaces"] == [
        {"name": host_ifname(ep_id), "mac": result["interfaces"][0]["mac"]},
        {"name": "eth0", "mac": result["interfaces"][1]["mac"], "sandbox": "/var/run/netns/pod1"},
    ]
    assert result["ips"] == [{"address": "10.44.0.2/32", "gateway": "10.44.0.1", "interface": 1}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.44.0.1"}, {"dst": "10.44.0.1/32"}]
    endpoint = env.agent.endpoints.get(ep_id)
    assert endpoint.pod_name == "default/app1" and endpoint.sandbox_key == "/var/run/netns/pod1"
    assert endpoint.labels == ["K8S_POD_NAME=app1", "K8S_POD_NAMESPACE=default"] and endpoint.state == "ready"
    assert owners(env)["10.44.0.2"] == f"endpoint:{ep_id}"


def test_del_is_idempotent_and_releases(env: RunningAgent) -> None:
    cni(env, "ADD")
    assert cni(env, "DEL") == (0, None)
    assert owners(env) == {"10.44.0.1": "router"} and env.datapath.host_veths() == []
    assert cni(env, "DEL") == (0, None)
    assert cni(env, "DEL", cid="never-added") == (0, None)


def test_failures_release_the_ip(env: RunningAgent) -> None:
    env.datapath.fail_next = "creating veth lxc… <-> eth0 in /var/run/netns/pod1: File exists"
    status, error = cni(env, "ADD")
    assert status == 1 and error is not None and error["code"] == 101 and "File exists" in error["msg"]
    assert owners(env) == {"10.44.0.1": "router"}
    cni(env, "ADD")
    status, error = cni(env, "ADD")  # the same container again
    assert status == 1 and error is not None and error["code"] == 102 and "already exists" in error["msg"]
    assert len(owners(env)) == 2  # the first ADD's IP, the router; nothing leaked by the second


def test_cni_code_follows_the_agents_reason_not_its_message(env: RunningAgent) -> None:
    # A datapath failure whose message names no veth is still a datapath failure (101).
    env.datapath.fail_next = "attaching from_container to tc ingress of lxc1: Operation not permitted"
    status, error = cni(env, "ADD")
    assert status == 1 and error is not None and error["code"] == 101, error
    # A host veth already in the kernel (reason veth-exists) is one too; neither leaks the IP.
    env.datapath.links[host_ifname(f"cni-{CID}-eth0")] = 99
    status, error = cni(env, "ADD")
    assert status == 1 and error is not None and error["code"] == 101 and "already exists" in error["msg"], error
    assert owners(env) == {"10.44.0.1": "router"}


def test_exhaustion_is_code_100_naming_the_cidr(env: RunningAgent) -> None:
    for i in range(5):  # a /29: 6 usable, one is the router IP
        assert cni(env, "ADD", cid=f"pod{i}")[0] == 0
    status, error = cni(env, "ADD", cid="pod5")
    assert status == 1 and error is not None
    assert (error["code"], error["details"]) == (100, "allocating an IP")
    assert error["msg"].startswith("pod CIDR 10.44.0.0/29 is exhausted (6/6 in use): remove containers or pods")
    assert cni(env, "STATUS")[1] == {
        "cniVersion": "1.1.0",
        "code": 50,
        "msg": "pod CIDR 10.44.0.0/29: 6/6 in use (exhausted)",
    }
    assert cni(env, "DEL", cid="pod0") == (0, None)
    assert cni(env, "ADD", cid="pod5")[0] == 0


def test_check(env: RunningAgent) -> None:
    _, result = cni(env, "ADD")
    with_prev = conf(env, prevResult=result)
    assert cni(env, "CHECK", stdin=with_prev) == (0, None)
    env.datapath.links.pop(host_ifname(f"cni-{CID}-eth0"))
    status, error = cni(env, "CHECK", stdin=with_prev)
    assert status == 1 and error is not None and error["code"] == 101 and "is missing" in error["msg"]
    status, error = cni(env, "CHECK", cid="unknown", stdin=with_prev)
    assert status == 1 and error is not None and "not found" in error["msg"]


def test_status_and_gc(env: RunningAgent) -> None:
    assert cni(env, "STATUS") == (0, None)
    cni(env, "ADD", cid="keep")
    cni(env, "ADD", cid="stale")
    valid = conf(env, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]})
    assert cni(env, "GC", stdin=valid) == (0, None)
    assert [e.id for e in env.agent.endpoints.list()] == ["cni-keep-eth0"]
    assert len(owners(env)) == 2
    status, error = cni(env, "GC")
    assert status == 1 and error is not None and error["code"] == 7


def test_agent_down(tmp_path: Path) -> None:
    down = json.dumps({"cniVersion": "1.0.0", "name": "podnet", "agentSocket": str(tmp_path / "none.sock")}).encode()
    status, error = cni(None, "ADD", stdin=down)
    assert status == 1 and error is not None and error["code"] == 11 and error["cniVersion"] == "1.0.0"
    assert "podnet agent is unreachable" in error["msg"]
    status, error = cni(None, "STATUS", stdin=down)
    assert status == 1 and error is not None and error["code"] == 50


@pytest.mark.parametrize(
    ("stdin", "env_override", "code", "message"),
    [
        (b"{nope", {}, 6, "not JSON"),
        (b'{"name": "x"}', {}, 7, "lacks cniVersion"),
        (b'{"cniVersion": "9.9.9", "name": "x"}', {}, 1, "cniVersion 9.9.9 is not supported"),
        (b'{"cniVersion": "1.1.0"}', {}, 7, "lacks name"),
        (b'{"cniVersion": "1.1.0", "name": "x", "agentSocket": "relative"}', {}, 7, "must be an absolute path"),
        (b'{"cniVersion": "1.1.0", "name": "x", "mtu": 9}', {}, 7, "mtu 9"),
        (b'{"cniVersion": "1.1.0", "name": "x"}', {"CNI_COMMAND": ""}, 4, "CNI_COMMAND is not set"),
        (b'{"cniVersion": "1.1.0", "name": "x"}', {"CNI_NETNS": ""}, 4, "ADD needs CNI_NETNS"),
        (
            b'{"cniVersion": "1.1.0", "name": "x"}',
            {"CNI_IFNAME": "a-name-far-too-long"},
            4,
            "not a valid interface name",
        ),
        (b'{"cniVersion": "1.1.0", "name": "x"}', {"CNI_ARGS": "broken"}, 4, "is not KEY=VALUE"),
        (b'{"cniVersion": "1.1.0", "name": "x"}', {"CNI_COMMAND": "FROB"}, 4, "unknown CNI_COMMAND 'FROB'"),
        (
            b'{"cniVersion": "1.1.0", "name": "x", "args": {"cni": {"labels": "id=app1"}}}',
            {},
            7,
            "args.cni.labels must be a list",
        ),
        (
            b'{"cniVersion": "1.1.0", "name": "x", "args": {"cni": {"labels": [{"key": "a b", "value": "1"}]}}}',
            {},
            7,
            "args.cni.labels: invalid label",
        ),
    ],
)
def test_bad_input_gets_spec_error_codes(stdin: bytes, env_override: dict[str, str], code: int, message: str) -> None:
    env_override = dict(env_override)  # the parameter is shared by both runs of the test
    status, error = cni(
        None,
        env_override.pop("CNI_COMMAND", "ADD") if "CNI_COMMAND" in env_override else "ADD",
        stdin=stdin,
        **env_override,
    )
    assert status == 1 and error is not None and error["code"] == code and message in error["msg"], error


def test_labels_from_args_cni_labels_give_the_endpoint_its_identity(env: RunningAgent) -> None:
    labels = {"args": {"cni": {"labels": [{"key": "id", "value": "app1"}, {"key": "tier", "value": "web"}]}}}
    status, result = cni(env, "ADD", stdin=conf(env, **labels))
    assert status == 0, result
    [endpoint] = env.client.request("GET", "/v1/endpoint")
    assert endpoint["labels"] == ["K8S_POD_NAME=app1", "K8S_POD_NAMESPACE=default", "id=app1", "tier=web"]
    assert endpoint["state"] == "ready" and endpoint["identity"] >= 256
    # the pod's name is not part of its identity: a second pod with the same labels shares it
    status, _ = cni(env, "ADD", cid="b" * 64, stdin=conf(env, **labels), CNI_ARGS="K8S_POD_NAME=other")
    assert status == 0
    identities = {e["identity"] for e in env.client.request("GET", "/v1/endpoint")}
    assert len(identities) == 2  # K8S_POD_NAMESPACE differs (absent for the second pod)


def test_cni_in_the_agent_calls_it_directly_not_over_http(env: RunningAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C shim's path: the plugin logic inside the agent makes no HTTP call back into the agent
    (issue 17: two HTTP hops per ADD were most of its time)."""
    from podnet.api import unixhttp

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an HTTP call from inside the agent")

    monkeypatch.setattr(unixhttp, "request", refuse)
    environment = {"CNI_CONTAINERID": CID, "CNI_NETNS": "/var/run/netns/pod1", "CNI_IFNAME": "eth0"}
    status, result = post_cni(env.socket, conf(env), {**environment, "CNI_COMMAND": "ADD"})
    assert status == 0 and result is not None, result
    assert result["ips"][0]["address"] == "10.44.0.2/32"
    assert post_cni(env.socket, conf(env), {**environment, "CNI_COMMAND": "STATUS"}) == (0, None)
    assert post_cni(env.socket, conf(env), {**environment, "CNI_COMMAND": "DEL"}) == (0, None)
    assert owners(env) == {"10.44.0.1": "router"}


def test_cni_in_the_agent_keeps_the_calls_deadline_when_the_worker_is_stuck(env: RunningAgent) -> None:
    import threading
    import time

    stuck = threading.Event()
    env.api.worker.submit(stuck.wait, 30)  # the worker busy with something else (a locked store, say)
    try:
        environment = {"CNI_CONTAINERID": CID, "CNI_NETNS": "/var/run/netns/pod1", "CNI_IFNAME": "eth0"}
        started = time.monotonic()
        status, error = post_cni(env.socket, conf(env, agentTimeout=1), {**environment, "CNI_COMMAND": "ADD"})
        assert time.monotonic() - started < 2
        assert status == 1 and error is not None and error["code"] == 11, error
        assert "did not answer within" in error["msg"] and error["details"] == "allocating an IP"
    finally:
        stuck.set()
    env.api.worker.submit(lambda: None).result(10)  # everything queued before has run (or was cancelled)
    if VIA["path"] == "agent /v1/cni":  # the call that timed out never ran: no IP taken for nobody
        assert owners(env) == {"10.44.0.1": "router"}


def test_each_cni_call_logs_where_its_time_went_at_debug_level(
    env: RunningAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """The per-phase breakdown bench/cni_add.py --profile reads (issue 17); nothing at info level."""
    import logging
    import re

    environment = {"CNI_CONTAINERID": CID, "CNI_NETNS": "/var/run/netns/pod1", "CNI_IFNAME": "eth0"}
    with caplog.at_level(logging.INFO):
        post_cni(env.socket, conf(env), {**environment, "CNI_COMMAND": "ADD"})
    assert not [r for r in caplog.records if "phases:" in r.getMessage()]
    with caplog.at_level(logging.DEBUG):
        post_cni(env.socket, conf(env), {**environment, "CNI_COMMAND": "DEL"})
        post_cni(env.socket, conf(env), {**environment, "CNI_COMMAND": "ADD"})
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("phases: ")]
    assert len(lines) == 2, lines
    add = re.fullmatch(rf"phases: cni ADD {CID}: [\d.]+ ms: (.*)", lines[1])
    assert add is not None, lines[1]
    phases = [part.rsplit(" ", 1)[0] for part in add.group(1).split(", ")]
    for phase in ("request", "plugin: parse", "queue", "ipam: allocate", "checks", "store: claim and record"):
        assert phase in phases, phases
    assert phases[-1] == "reply"
    assert lines[0].startswith(f"phases: cni DEL {CID}: ") and "store: record and ip" in lines[0]
