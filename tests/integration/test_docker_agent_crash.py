"""The agent SIGKILLed while several `docker run` start: within one reconcile period after it is back,
every running container's endpoint is ready with its name, labels and identity (issue 13 item 14).

libnetwork never passes labels: the plugin asks dockerd after Join and records
them on the agent. An agent that is down then misses them; the plugin's
periodic reconcile (`--gc-interval`) must complete them, or the endpoint stays
`waiting-for-identity`, outside every label-based policy.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.backends.base import wait_for
from lab.backends.netns.node import NetnsNode
from lab.backends.netns.standalone import docker_node
from lab.image import IMAGE
from podnet.api.client import AgentClient
from tests.integration.nodes import ARTIFACTS, PYTHON

pytestmark = pytest.mark.root

GC_INTERVAL_S = 3.0
CONTAINERS = 10


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    plugin = ("--gc-interval", str(GC_INTERVAL_S), "--gc-grace", "120", "--log-level", "debug")
    with docker_node(
        "crash", PYTHON, agent_args=("--datapath", "routes"), plugin_args=plugin, keep_logs=ARTIFACTS
    ) as n:
        n.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "crash-net")
        yield n


def endpoints(node: NetnsNode) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in AgentClient(str(node.agent_sock)).request("GET", "/v1/endpoint")}


def test_endpoints_missed_while_the_agent_was_down_get_their_identity(node: NetnsNode) -> None:
    names = [f"c{i}" for i in range(CONTAINERS)]
    outcomes: dict[str, int] = {}

    def run(name: str) -> None:
        proc = node.docker(
            "run", "-d", "--name", name, "--net", "crash-net", "-l", f"id={name}", "-l", "tier=crash",
            IMAGE, "sleep", "600", check=False, timeout=120,
        )  # fmt: skip
        outcomes[name] = proc.returncode

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    # mid-way: half the containers are past CreateEndpoint, their label lookups under way
    wait_for(lambda: len(endpoints(node)) >= CONTAINERS // 2, 60, "half the endpoints", interval_s=0.02)
    node.signal_process("podnet-agent", signal.SIGKILL)
    wait_for(lambda: not node.alive("podnet-agent"), 10, "the agent to die")
    time.sleep(2)  # the label lookups of the started containers fail meanwhile
    node.start_agent(PYTHON)  # as it was defined
    back = time.monotonic()
    for thread in threads:
        thread.join(150)

    running = node.docker("ps", "--filter", "network=crash-net", "--format", "{{.Names}}").stdout.split()
    assert running, f"no container runs: {outcomes}"
    wanted = {node.endpoint_id(name): name for name in running}

    def complete() -> bool:
        have = endpoints(node)
        return all(
            (ep := have.get(eid)) is not None
            and ep["state"] == "ready"
            and ep.get("identity") is not None
            and ep.get("container-name") == name
            and {f"id={name}", "tier=crash"} <= set(ep.get("labels", []))
            for eid, name in wanted.items()
        )

    # one reconcile period, plus what the runs still starting need (they finish after the agent is back)
    wait_for(complete, GC_INTERVAL_S + 10, "every running container's endpoint ready with its labels and identity")
    took = time.monotonic() - back
    have = endpoints(node)
    stuck = {eid[:12]: have[eid]["state"] for eid in wanted if have[eid]["state"] != "ready"}
    assert not stuck
    print(f"\n{len(running)}/{CONTAINERS} containers ran ({outcomes}); all ready {took:.1f}s after the agent was back")
    # nothing half-done: each veth is an endpoint's, each endpoint a running container's or one being collected
    lxc = {line.split(":")[1].strip().split("@")[0] for line in node.cmd("ip", "-o", "link").stdout.splitlines()}
    lxc = {name for name in lxc if name.startswith("lxc")}
    assert lxc == {e["networking"]["interface-name"] for e in have.values()}
    assert set(wanted) <= set(have)
