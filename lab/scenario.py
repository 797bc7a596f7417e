"""Scenario files: one flow each, validated; errors name the file, the step and the field.

A scenario is a topology reference and a list of steps. A step does one thing
(`docker`, `exec`, `wait` or `capture`), may `expect` things of its output,
may record packets on named interfaces while it runs (`pcap`), and may carry
`checks` evaluated after it. Strings may use variables: `{image}`, per node
`{node1.pod_cidr}`, `{node1.router_ip}`, `{node1.ip}`, and every value a
`capture` step saved (`{app1.ip}`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lab.files import load_yaml_model

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


class ScenarioError(ValueError):
    pass


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- actions ------------------------------------------------------------------------
class DockerAction(Strict):
    node: str
    args: list[str] = Field(min_length=1)


class ExecAction(Strict):
    node: str
    container: str | None = None
    pod: str | None = Field(default=None, description="a pod made by a cni step: run in its network namespace")
    cmd: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _where(self) -> ExecAction:
        if self.container and self.pod:
            raise ValueError("give container or pod, not both")
        return self


class CNIAction(Strict):
    """Exec the node's podnet CNI plugin as a runtime would, for a pod (its netns is made on ADD)."""

    node: str
    command: Literal["ADD", "DEL", "CHECK", "STATUS"]
    pod: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,20}$")
    ifname: str = Field(default="eth0", max_length=15)
    ok: bool = True
    code: int | None = Field(default=None, description="the CNI error code expected when ok is false")
    msg_contains: str | None = None
    count: int = Field(
        default=1, ge=1, le=512, description="act on pods <pod>-1 … <pod>-N in turn (one runtime call each)"
    )
    runtime: Literal["libcni", "exec"] = Field(
        default="libcni",
        description="libcni: through the lab's libcni runtime (conflist, result cache); exec: the plugin exec'd per spec",
    )

    @model_validator(mode="after")
    def _count(self) -> CNIAction:
        if self.count > 1 and not self.ok:
            raise ValueError("count applies to calls expected to succeed (ok: true)")
        if self.command == "STATUS" and self.runtime == "libcni":
            raise ValueError("libcni 1.1 has no STATUS: use runtime: exec")
        return self

    def pods(self) -> list[str]:
        return [self.pod] if self.count == 1 else [f"{self.pod}-{i}" for i in range(1, self.count + 1)]


class WaitAction(Strict):
    seconds: float = Field(gt=0, le=300)


class ProcessAction(Strict):
    node: str
    name: Literal["podnet-agent", "podnet-docker"]
    action: Literal["stop", "start", "restart"]


class CaptureSource(Strict):
    """Where a captured value comes from: one of docker / exec / endpoint_of / agent."""

    node: str
    docker: list[str] | None = None
    exec: list[str] | None = None
    endpoint_of: str | None = Field(default=None, description="a container name: its podnet endpoint")
    agent: str | None = Field(default=None, description="an agent API path, e.g. /v1/node")
    counter_of: str | None = Field(
        default=None,
        description="a host-side veth: its eBPF counters (podnet bpf counters), e.g. field drops.policy denied",
    )
    field: str | None = Field(default=None, description="dotted path into the JSON (endpoint_of, agent, counter_of)")

    @model_validator(mode="after")
    def _one(self) -> CaptureSource:
        sources = ("docker", "exec", "endpoint_of", "agent", "counter_of")
        given = [k for k in sources if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(sources)} (got {', '.join(given) or 'none'})")
        if (self.endpoint_of or self.agent or self.counter_of) and not self.field:
            raise ValueError("endpoint_of, agent and counter_of need a field (a dotted path into the JSON)")
        return self


# -- expectations and checks ----------------------------------------------------------
class Expect(Strict):
    ok: bool = True
    stdout_contains: str | None = None
    stderr_contains: str | None = None


class Pcap(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    node: str
    interface: str


class PacketMatch(Strict):
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None


class HttpResponse(Strict):
    status: int = 200
    src: str | None = None


PACKET_KINDS = ("tcp_syn", "tcp_synack", "http_response", "icmp_echo", "icmp_reply", "none_from")


class PacketsCheck(Strict):
    pcap: str
    tcp_syn: PacketMatch | None = None
    tcp_synack: PacketMatch | None = None
    http_response: HttpResponse | None = None
    icmp_echo: PacketMatch | None = None
    icmp_reply: PacketMatch | None = None
    none_from: str | None = Field(default=None, description="no IPv4 packet with a source in this CIDR")
    min_count: int = Field(default=1, ge=1)
    absent: bool = Field(default=False, description="pass only if no such packet was captured")

    @model_validator(mode="after")
    def _one(self) -> PacketsCheck:
        given = [k for k in PACKET_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(PACKET_KINDS)} (got {given or 'none'})")
        if self.absent and self.none_from is not None:
            raise ValueError("none_from already means absent")
        return self


class AllocationsCheck(Strict):
    node: str
    ip: str | None = None
    held: bool = True
    owner_prefix: str | None = None
    in_pod_cidr: bool | None = None
    distinct: list[str] | None = None
    endpoints: int | None = Field(default=None, ge=0, description="how many endpoints the agent has")
    allocated: int | None = Field(default=None, ge=0, description="how many IPs are held, the router IP included")


class RouteMatch(Strict):
    dst: str = Field(description="'default' or a CIDR")
    gateway: str | None = None
    dev: str | None = None
    proto: str | None = None


class RoutesCheck(Strict):
    node: str
    container: str | None = None
    pod: str | None = None
    has: RouteMatch | None = None
    lacks: RouteMatch | None = None

    @model_validator(mode="after")
    def _one(self) -> RoutesCheck:
        if (self.has is None) == (self.lacks is None):
            raise ValueError("give exactly one of has, lacks")
        return self


class InspectCheck(Strict):
    node: str
    docker: list[str] = Field(min_length=1)
    path: str = Field(description="dotted path into the JSON docker prints, e.g. 0.IPAM.Driver")
    equals: Any = None
    contains: str | None = None


class PluginCallsCheck(Strict):
    node: str
    sequence: list[str] = Field(min_length=1, description="libnetwork calls, in this order (others may come between)")


class NodeCondition(Strict):
    node: str
    reason: str = Field(description="e.g. ClusterPoolExhausted")
    message_contains: str | None = None


class NodesCheck(Strict):
    """The cluster's nodes as the operator left them in the store (what `podnet node list` shows)."""

    pod_cidrs: dict[str, str] | None = Field(default=None, description="node -> its pod CIDR, or none")
    condition: NodeCondition | None = None

    @model_validator(mode="after")
    def _one(self) -> NodesCheck:
        if (self.pod_cidrs is None) == (self.condition is None):
            raise ValueError("give exactly one of pod_cidrs, condition")
        return self


class CompareCheck(Strict):
    """Two values (usually captured before and after): equal, or apart by a number."""

    left: str
    right: str
    equals: bool | None = Field(default=None, description="left == right (true) or != (false), as text")
    difference: int | None = Field(default=None, description="left - right == N (numbers)")
    at_least: int | None = Field(default=None, description="left - right >= N (numbers)")
    what: str = Field(default="", description="what the values are, for the report")

    @model_validator(mode="after")
    def _one(self) -> CompareCheck:
        given = [k for k in ("equals", "difference", "at_least") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of equals, difference, at_least (got {given or 'none'})")
        return self


class EndpointCheck(Strict):
    """A field of a container's podnet endpoint (e.g. state: ready once its labels are known)."""

    node: str
    container: str
    field: str
    equals: str


class Check(Strict):
    packets: PacketsCheck | None = None
    compare: CompareCheck | None = None
    endpoint: EndpointCheck | None = None
    allocations: AllocationsCheck | None = None
    nodes: NodesCheck | None = None
    routes: RoutesCheck | None = None
    inspect: InspectCheck | None = None
    plugin_calls: PluginCallsCheck | None = None

    @model_validator(mode="after")
    def _one(self) -> Check:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a check is exactly one of {', '.join(type(self).model_fields)} (got {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def spec(self) -> BaseModel:
        value = getattr(self, self.kind)
        assert isinstance(value, BaseModel)
        return value


ACTIONS = ("docker", "exec", "wait", "capture", "process", "cni")


class Step(Strict):
    name: str = Field(min_length=1)
    docker: DockerAction | None = None
    exec: ExecAction | None = None
    wait: WaitAction | None = None
    capture: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")], CaptureSource] | None = None
    process: ProcessAction | None = None
    cni: CNIAction | None = None
    within: float | None = Field(default=None, gt=0, le=120, description="retry the checks until they pass, up to N s")
    expect: Expect | None = None
    pcap: list[Pcap] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [k for k in ACTIONS if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"a step does one thing: {', '.join(ACTIONS)} (got {', '.join(given)})")
        if not given and not self.checks:
            raise ValueError(f"a step needs an action ({', '.join(ACTIONS)}) or checks")
        if self.within is not None and not self.checks:
            raise ValueError("within applies to checks: the step has none")
        if self.expect is not None and not (self.docker or self.exec):
            raise ValueError("expect applies to docker and exec steps")
        return self

    @property
    def action(self) -> str:
        return next((k for k in ACTIONS if getattr(self, k) is not None), "checks")


Backend = Literal["netns", "vagrant"]
BACKENDS: tuple[Backend, ...] = ("netns", "vagrant")


class Scenario(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    seeds: list[str] = Field(default_factory=list, description="source documents this flow replays")
    topology: str = "default"
    backends: list[Backend] = Field(default_factory=lambda: list(BACKENDS))
    steps: list[Step] = Field(min_length=1)
    cleanup: list[Step] = Field(default_factory=list, description="always run, even after a failure")
    path: Path | None = Field(default=None, exclude=True)


def _location(data: Any, loc: tuple[Any, ...]) -> str:
    """'step 3 (start app1): docker.args' from a pydantic error location."""
    parts: list[str] = []
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in ("steps", "cleanup") and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            name = ""
            with contextlib.suppress(KeyError, IndexError, TypeError):
                name = f" ({data[key][index]['name']})"
            parts.append(f"{'step' if key == 'steps' else 'cleanup step'} {index + 1}{name}")
            i += 2
            continue
        parts.append(str(key))
        i += 1
    head = parts[0] if parts else "(top level)"
    rest = ".".join(p for p in parts[1:])
    return f"{head}: {rest}" if rest else head


def load_scenario(path: str | Path) -> Scenario:
    source = Path(path)
    if not source.exists() and (SCENARIOS / f"{path}.yaml").exists():
        source = SCENARIOS / f"{path}.yaml"
    scenario = load_yaml_model(source, Scenario, ScenarioError, "scenario", _location)
    scenario.path = source
    return scenario


def all_scenarios() -> list[Path]:
    return sorted(SCENARIOS.glob("*.yaml"))
