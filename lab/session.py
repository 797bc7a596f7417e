"""The one lab lifecycle: up → run → collect → report → down. The CLI, the tests and the benches use it.

A `Run` is one `lab run` (or one `tox -e lab`): an artifacts directory with
one index. A `LabSession` is one topology's lab inside it: brought up (or
taken over when one is up already), scenarios run on it, its logs and page
written, and taken down — unless it failed and the user asked to keep it.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from rich.console import Console

from lab.backends import registry
from lab.backends.base import LabError, Progress
from lab.backends.lab import AnyLab, router_addresses
from lab.model.topology import Topology
from lab.report import write_run, write_topology
from lab.scenario import state
from lab.scenario.model import ScenarioBase
from lab.scenario.results import LabSummary, LinkSummary, NodeSummary, RunResult, ScenarioRun, TopologyResult
from lab.scenario.runner import Runner


class Run:
    """artifacts/<id>/: the index, JUnit and results.json of every topology this run used."""

    def __init__(self, artifacts: Path, run_id: str | None = None):
        started = time.localtime()
        self.id = run_id or time.strftime("%Y%m%d-%H%M%S", started) + "-" + secrets.token_hex(2)
        self.result = RunResult(self.id, artifacts / self.id, time.strftime("%Y-%m-%d %H:%M:%S", started))
        self._t0 = time.perf_counter()

    @property
    def out(self) -> Path:
        return self.result.out

    def add(self, topology: TopologyResult) -> None:
        self.result.topologies.append(topology)
        self.write()

    def write(self) -> Path:
        """The index (again: it is rewritten as each topology finishes)."""
        self.result.seconds = time.perf_counter() - self._t0
        return write_run(self.result)


def summary(lab: AnyLab, *, reused: bool = False) -> LabSummary:
    links = lab.topology.links()
    nodes = []
    for node in lab.all_nodes():
        role = lab.topology.role(node.name)
        routed = role in ("tor", "leaf", "spine")
        underlay = ", ".join(router_addresses(lab.topology, node.name)) if routed else lab.topology.node_ip(node.name)
        info = lab.node_info.get(node.name, {})
        nodes.append(NodeSummary(node.name, role, node.where, underlay, info.get("pod_cidr", "")))
    return LabSummary(
        run_id=lab.run_id,
        topology=lab.topology.name,
        backend=lab.backend,
        tor=lab.tor.name,
        nodes=nodes,
        links=[LinkSummary(link.lower, link.upper_ip, link.lower_ip, link.subnet, link.upper) for link in links],
        timings=[(t.what, t.start, t.seconds) for t in lab.timings],
        up_seconds=lab.up_seconds,
        reused=reused,
    )


class LabSession:
    """One topology's lab within a run."""

    def __init__(
        self,
        run: Run,
        topology: Topology,
        backend: str = registry.DEFAULT,
        *,
        console: Console | None = None,
        keep: bool = False,
    ):
        self.run_output = run
        self.topology = topology
        self.backend = backend
        self.console = console or Console(stderr=True)
        self.keep = keep
        self.reused = False
        self.cleanup_errors: list[str] = []  # what a failed bring-up could not take down
        self.lab: AnyLab = registry.make_lab(topology, backend)
        self.runs: list[ScenarioRun] = []
        self.not_run: dict[str, str] = {}
        self._t0 = time.perf_counter()
        self.closed = False

    @property
    def out(self) -> Path:
        """This topology's directory in the run."""
        return self.run_output.out / f"{self.topology.name}-{self.lab.run_id}"

    @property
    def capabilities(self) -> frozenset[str]:
        return self.lab.capabilities

    def up(self, progress: Progress | None = None) -> None:
        """Bring the lab up — or take over the one that is up, if it is this topology on this backend.
        A bring-up that fails takes down what it made (logs kept in the topology's directory)."""
        existing = registry.existing_labs()
        if existing:
            try:
                lab = registry.load_lab()
            except LabError:
                lab = None
            if lab is None or (lab.topology.name, lab.backend) != (self.topology.name, self.backend):
                what = f"{lab.topology.name} on {lab.backend}" if lab else ", ".join(existing)
                raise LabError(
                    f"the lab that is up is {what}, not {self.topology.name} on {self.backend}: lab down first"
                )
            self.lab, self.reused = lab, True
            return
        try:
            self.lab.up(report=progress)
        except BaseException:
            self.cleanup_errors = self.lab.down(keep_logs=self.out / "logs")
            self._result()
            raise

    def run(self, scenario: ScenarioBase) -> ScenarioRun:
        why = scenario.why_not(self.backend, self.capabilities)
        if why:
            self.not_run[scenario.name] = why
            raise LabError(f"{scenario.name} does not run here: {why}")
        self.console.print(f"[bold]scenario {scenario.name}[/]")
        result = Runner(self.lab, self.console).run(scenario, self.out / scenario.name)
        self.runs.append(result)
        state.reset(self.lab)
        return result

    def skip(self, scenario: ScenarioBase, why: str) -> None:
        self.not_run[scenario.name] = why

    @property
    def failed(self) -> bool:
        return any(not r.passed for r in self.runs)

    def close(self) -> TopologyResult:
        """Logs, the topology's page, and the lab down (kept up when it failed and keep was asked,
        and never taken down when this session only took it over)."""
        if self.closed:
            raise LabError("session already closed")
        self.closed = True
        self.lab.collect_logs(self.out / "logs")
        result = self._result()
        if not self.reused and not (self.keep and self.failed):
            errors = self.lab.down()
            for error in errors:
                self.console.print(f"[yellow]lab down: {error}[/]")
        return result

    @property
    def kept(self) -> bool:
        return self.closed and not self.reused and self.keep and self.failed

    def _result(self) -> TopologyResult:
        result = TopologyResult(
            summary(self.lab, reused=self.reused),
            self.runs,
            f"{self.out.name}/report.html",
            time.perf_counter() - self._t0,
            self.not_run,
        )
        write_topology(result, self.run_output.out)
        self.run_output.add(result)
        return result
