from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.cli import main
from tests.agent_harness import RunningAgent, running_agent


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path) as running:
        ip = running.client.ipam_allocate("docker-ipam")["address"]["ipv4"]
        running.client.endpoint_create(
            "abc123def456", {"addressing": {"ipv4": ip}, "labels": ["id=app1"], "container-name": "app1"}
        )
        yield running


def test_status(env: RunningAgent, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--socket", env.socket]) == 0
    out = capsys.readouterr().out
    assert "podnet agent on node1: OK" in out and "pod CIDR 10.20.0.0/24, router IP 10.20.0.1" in out
    assert main(["status", "--socket", env.socket, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["healthz"]["state"] == "ok" and data["node"]["router-ip"] == "10.20.0.1"


def test_endpoint_list_and_get_by_prefix(env: RunningAgent, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoint", "list", "--socket", env.socket]) == 0
    out = capsys.readouterr().out
    assert "abc123def456" in out and "app1" in out and "10.20.0.2" in out and "id=app1" in out
    assert main(["endpoint", "get", "abc1", "--socket", env.socket, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "abc123def456"
    assert main(["endpoint", "get", "zzz", "--socket", env.socket]) == 1
    assert "no endpoint with id 'zzz'" in capsys.readouterr().err


def test_ipam_list(env: RunningAgent, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ipam", "list", "--socket", env.socket]) == 0
    out = capsys.readouterr().out
    assert "pod CIDR 10.20.0.0/24: 2/254 in use" in out and "endpoint:abc123def456" in out
    assert main(["ipam", "list", "--socket", env.socket, "--json"]) == 0
    assert [a["owner"] for a in json.loads(capsys.readouterr().out)["allocations"]] == [
        "router",
        "endpoint:abc123def456",
    ]


def test_agent_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 1
    err = capsys.readouterr().err
    assert "podnet agent is unreachable at unix://" in err and "Traceback" not in err


RULE = {"name": "allow-web", "endpointSelector": {"matchLabels": {"id": "app1"}}, "ingress": [{}]}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x HTTP/1.1\r\nHost: p\r\n\r\nDELETE /v1/policy HTTP/1.1\r\nHost: p", "contains a control character"),
        ("a/b", "policy rule a/b not found"),
        ("..", "cannot be used in a request path"),
        ("x?all=true", "policy rule x?all=true not found"),
    ],
)
def test_cli_arguments_cannot_change_the_request(
    env: RunningAgent, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    env.client.request("PUT", "/v1/policy", body=[RULE])
    assert main(["policy", "delete", name, "--socket", env.socket]) == 1
    err = capsys.readouterr().err
    assert err.startswith("podnet: error: ") and message in err and "Traceback" not in err
    assert [r["name"] for r in env.client.request("GET", "/v1/policy")["rules"]] == ["allow-web"]
