"""The fuzzed node: a real agent (SQLite store, fake kernel) on a fixed socket, restartable on a fresh
store, with a RouteLog watching what it serves; and the tidy-up that keeps its pod CIDR from filling."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from podnet.api.client import AgentClient, AgentError, AgentUnreachableError, path
from tests.agent_harness import RunningAgent, running_agent
from tests.fuzz import values as v
from tests.fuzz.outcomes import Snapshot
from tests.fuzz.wire import RouteLog

BODY_TIMEOUT_S = 0.3  # how long the servers wait for a body that never comes (framing "short")
TIDY_AT = 40  # allocations; past this the node is cleared between examples


class FuzzNode:
    def __init__(self, base: Path):
        self.base = base
        self.socket = str(base / "agent.sock")
        self.routes = RouteLog()
        self.runs = 0
        self.stack = ExitStack()
        self.running = self._start()

    def _start(self) -> RunningAgent:
        self.runs += 1
        run = self.base / f"run{self.runs}"
        run.mkdir()
        return self.stack.enter_context(
            running_agent(
                run,
                socket=self.socket,
                store=f"sqlite://{run}/state.db",
                pod_cidr=v.POD_CIDR,
                body_timeout_s=BODY_TIMEOUT_S,
                middlewares=[self.routes.middleware],
            )
        )

    def restart(self) -> None:
        """A new agent on a new store (after a finding left the node in a state the API cannot clear)."""
        self.stack.close()
        self.stack = ExitStack()
        self.running = self._start()

    def close(self) -> None:
        self.stack.close()

    def snapshot(self) -> Snapshot:
        return Snapshot.take(self.running.agent, self.running.datapath)

    def tidy(self, *, force: bool = False) -> str:
        """Remove everything through the API when the node fills up; '' or what could not be removed."""
        agent = self.running.agent
        if not force and len(agent.ipam.allocations()) < TIDY_AT:
            return ""
        client = AgentClient(self.socket, timeout=10)
        try:
            for endpoint in client.request("GET", "/v1/endpoint"):
                client.endpoint_delete(endpoint["id"], release_ip=True)
            for allocation in client.request("GET", "/v1/ipam")["allocations"]:
                if allocation["owner"] != "router":
                    client.ipam_release(allocation["ip"])
            client.request("DELETE", "/v1/policy")
            for network in client.request("GET", "/v1/docker/network"):
                client.request("DELETE", path("/v1/docker/network", network["id"]))
        except (AgentError, AgentUnreachableError) as err:
            return f"cannot clear the node through the API: {err}"
        left = [a.owner for a in agent.ipam.allocations() if a.owner != "router"]
        return f"allocations left after clearing the node: {left}" if left else ""
