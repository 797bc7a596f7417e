"""The fuzz suite's budgets and fixtures, and the table it prints at the end.

PODNET_FUZZ=unit (the default, in `tox -e unit`) tries a few inputs per interface; PODNET_FUZZ=long
(`tox -e fuzz`) many more. Hypothesis is derandomized and keeps no example database: every run of a
profile tries the same inputs in the same order.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter
from hypothesis import HealthCheck, settings

from podnet.api.client import AgentClient
from podnet.cni import spec
from tests.fuzz.node import BODY_TIMEOUT_S, FuzzNode
from tests.fuzz.outcomes import SURVEY, TALLY
from tests.interfaces import build_shim, running_plugin

PROFILE = os.environ.get("PODNET_FUZZ", "unit")
# Examples per interface; each example is a short sequence of inputs (REST up to 3, libnetwork up to 14
# when it replays the recording, CNI up to 3).
BUDGETS = {
    "unit": {"rest": 60, "libnetwork": 25, "cni": 12},
    "long": {"rest": 2000, "libnetwork": 700, "cni": 300},
}


def fuzz_settings(interface: str) -> settings:
    return settings(
        max_examples=BUDGETS[PROFILE][interface],
        derandomize=True,
        database=None,
        deadline=None,  # our own deadlines judge each answer; hypothesis's would time the whole example
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
            HealthCheck.large_base_example,
        ],
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzNode]:
    # pytest's tmp paths are short enough for a unix socket (at most 107 bytes).
    fuzz_node = FuzzNode(tmp_path_factory.mktemp("fuzz"))
    with pytest.MonkeyPatch.context() as patch:
        # A CNI configuration without agentSocket names the default: make it this agent, never a real one.
        patch.setattr(spec, "DEFAULT_AGENT_SOCKET", fuzz_node.socket)
        try:
            yield fuzz_node
            left = fuzz_node.tidy(force=True)  # whatever the fuzzer made can be removed through the API
            assert not left or SURVEY, left
        finally:
            fuzz_node.close()


@pytest.fixture(scope="module")
def plugin(node: FuzzNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """podnet-docker's server with its own after_call (labels from a dockerd that is not there)."""
    import podnet.cmd.docker as cmd_docker
    from podnet.docker.reconcile import DockerWatcher

    tmp = tmp_path_factory.mktemp("plugin")
    watcher = DockerWatcher(AgentClient(node.socket), f"unix://{tmp}/no-dockerd.sock")
    loop = asyncio.new_event_loop()
    try:
        after_call = cmd_docker.label_resolver(watcher, loop)
        with running_plugin(tmp, node.socket, after_call=after_call, body_timeout_s=BODY_TIMEOUT_S) as path:
            yield path
            time.sleep(0.5)  # the last Joins' label look-ups (they wait 0.25 s first) end while the agent is there
    finally:
        loop.close()


@pytest.fixture(scope="module")
def shim(node: FuzzNode, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """podnet-cni built with ASan and UBSan (any finding fatal), its default socket this agent's."""
    return build_shim(tmp_path_factory.mktemp("shim") / "podnet-cni", sanitize=True, default_socket=node.socket)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not TALLY.counts:
        return
    mode = ", survey" if SURVEY else ""
    terminalreporter.section(f"fuzz: inputs tried and their outcomes (profile {PROFILE}{mode})")
    for line in TALLY.table():
        terminalreporter.write_line(line)
