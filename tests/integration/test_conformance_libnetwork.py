"""The libnetwork conformance suite with a real dockerd 20.10 in a namespace: each mutant
(tests/conformance/lnwproxy.py, a proxy in front of podnet-docker) fails its own rule, and
`lab conformance libnetwork --plugin SOCKET --start …` judges a plugin the suite starts itself.
(podnet itself, from the lab venv, is judged by `tox -e conformance`.)"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backends.netns.node import NetnsNode
from lab.backends.netns.standalone import docker_node
from lab.backends.node import DockerHost
from lab.conformance.libnetwork.context import Subject
from lab.conformance.libnetwork.subjects import NodeSide, Started, podnet_probe, post_to
from lab.conformance.libnetwork.suite import run_subject
from lab.conformance.model import Status
from lab.image import IMAGE
from tests.conformance.lnwproxy import MUTANTS
from tests.integration.nodes import ARTIFACTS

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    """One dockerd with podnet for every mutant (each a proxy of its own, a driver name of its own)."""
    with docker_node(
        "cfmut",
        PYTHON,
        agent_args=("--pod-cidr", "10.82.0.0/24"),
        plugin_args=("--gc-interval", "3600"),
        keep_logs=ARTIFACTS,
    ) as n:
        yield n


@pytest.fixture
def short() -> Iterator[Path]:
    """A directory with a short path: a unix socket's path has at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="cf-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("rule", sorted(MUTANTS))
def test_each_mutant_fails_its_rule_through_a_real_dockerd(node: NetnsNode, short: Path, rule: str) -> None:
    tmp_path = short
    driver = f"cfmut{sorted(MUTANTS).index(rule)}"
    sock = tmp_path / f"{driver}.sock"
    specs = node.path("etc-docker", "plugins")
    (specs / f"{driver}.spec").write_text(f"unix://{sock}\n")
    host = DockerHost(node, IMAGE, node.plugin_sock)
    command = f"PYTHONPATH={REPO} exec {PYTHON} -m tests.conformance.lnwproxy {sock} {node.plugin_sock} {rule} {tmp_path / 'state'}"
    proxy = Started(host, command, sock, tmp_path / "proxy.log")
    proxy.start()
    try:
        subject = Subject(
            rule,
            MUTANTS[rule],
            "a proxy in front of podnet-docker",
            post_to(str(sock)),
            driver,
            restart=proxy.restart,
            probe=functools.partial(podnet_probe, str(node.agent_sock)),
        )
        result = run_subject(subject, NodeSide(host), only={rule})
    finally:
        proxy.stop()
        (specs / f"{driver}.spec").unlink()
    assert result.rules[0].status == Status.FAIL, (MUTANTS[rule], result.rules[0])


def test_lab_conformance_libnetwork_judges_a_plugin_it_starts(tmp_path: Path, short: Path) -> None:
    work = short
    pins = Path("/sys/fs/bpf/podnet/cfcli-test")
    start = (  # (the agent's socket of a previous start must not pass for the new agent's)
        f"rm -f {work}/agent.sock; {PYTHON} -m podnet.cmd.agent --node-name cfcli --socket {work}/agent.sock --store sqlite://{work}/state.db "
        f"--pod-cidr 10.83.0.0/24 --bpf-pin-dir {pins} & "
        f"while [ ! -S {work}/agent.sock ]; do sleep 0.1; done; "
        f"exec {PYTHON} -m podnet.cmd.docker --socket {work}/mine.sock --agent-socket {work}/agent.sock "
        "--docker-host $DOCKER_HOST"
    )
    lab = Path(PYTHON).parent / "lab"
    try:
        proc = subprocess.run(
            [
                str(lab),
                "conformance",
                "libnetwork",
                "--plugin",
                str(work / "mine.sock"),
                "--start",
                start,
                "--rule",
                "handshake.activate",
                "--rule",
                "docker.run-join",
                "--rule",
                "docker.plugin-restart",
                "--rule",
                "ipam.pool-idempotent",
                "--json",
                "--junit",
                str(tmp_path / "junit.xml"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        shutil.rmtree(pins, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    subject = json.loads(proc.stdout)["subjects"][0]
    assert subject["name"] == "mine" and "it was already running" not in subject["how"]
    assert {r["id"]: r["status"] for r in subject["rules"]} == dict.fromkeys(
        ["handshake.activate", "ipam.pool-idempotent", "docker.run-join", "docker.plugin-restart"], "pass"
    )
    assert "wall time" in proc.stderr
