"""What a run produced, as plain data: the only thing reports read (and results.json holds).

`CheckResult` says what was expected, what was found and where to look;
`StepResult` and `ScenarioRun` gather them; `LabSummary` describes the lab a
run used (nodes, roles, links, the `lab up` timeline); `TopologyResult` is
one lab's share of a run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CheckResult:
    kind: str
    description: str
    passed: bool
    expected: str
    actual: str
    where: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # for the report, e.g. the libnetwork calls seen


@dataclass
class Flow:
    """One flow of a pcap, for the report's flow tables."""

    proto: str
    src: str
    dst: str
    packets: int
    bytes: int
    note: str = ""  # e.g. "SYN, SYN-ACK, HTTP 200", "echo request/reply"


@dataclass
class StepResult:
    name: str
    kind: str
    seconds: float = 0.0
    passed: bool = True
    command: str = ""
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    pcaps: dict[str, str] = field(default_factory=dict)  # name -> path relative to the scenario's directory
    flows: dict[str, list[Flow]] = field(default_factory=dict)  # pcap name -> its flows
    skipped: bool = False
    waited_s: float | None = None  # with `within`: how long until the checks passed (a recovery time)
    started_s: float = 0.0  # since the scenario started

    @property
    def failure(self) -> str:
        if self.error:
            return f"step '{self.name}': {self.error}"
        for c in self.checks:
            if not c.passed:
                return f"step '{self.name}': {c.description}: expected {c.expected}; got {c.actual} (see {c.where})"
        return ""


@dataclass
class ScenarioRun:
    name: str
    out: Path
    description: str = ""
    seeds: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.steps)

    @property
    def failure(self) -> str:
        return next((s.failure for s in self.steps if not s.passed), "")


@dataclass
class NodeSummary:
    name: str
    role: str  # tor, leaf, spine, control, worker
    where: str
    underlay_ip: str
    pod_cidr: str = ""
    processes: list[str] = field(default_factory=list)


@dataclass
class LinkSummary:
    node: str  # the lower end (a node, or a leaf below a spine)
    tor_ip: str  # the upper end's address
    node_ip: str  # the lower end's address
    subnet: str
    upper: str = ""  # the upper end (the ToR, a leaf or a spine)


@dataclass
class LabSummary:
    run_id: str
    topology: str
    backend: str
    tor: str
    nodes: list[NodeSummary]
    links: list[LinkSummary]
    timings: list[tuple[str, float, float]]  # what, start (s since up began), seconds
    up_seconds: float
    reused: bool = False  # the run used a lab that was already up (no bring-up of its own)


@dataclass
class TopologyResult:
    lab: LabSummary
    runs: list[ScenarioRun]
    page: str  # the topology's page, relative to the run's directory
    seconds: float
    not_run: dict[str, str] = field(default_factory=dict)  # scenario -> why it was not run here

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.runs)


def as_json(value: Any) -> Any:
    """Plain JSON of any of the above (paths as text)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, ScenarioRun | TopologyResult | RunResult):
            data["passed"] = value.passed
        if isinstance(value, ScenarioRun):
            data["failure"] = value.failure
        return data
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class RunResult:
    """One `lab run` (or `tox -e lab`): every topology it used, each with its lab and scenarios."""

    id: str
    out: Path  # artifacts/<id>
    started: str  # local time, for people
    topologies: list[TopologyResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.topologies)

    @property
    def runs(self) -> list[ScenarioRun]:
        return [r for t in self.topologies for r in t.runs]
