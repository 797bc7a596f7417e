"""Run a scenario on a lab: each step's captures, action and checks (retried `within`), then cleanup.

The runner knows no kind by name: it asks the registries (`STEPS`, `CHECKS`)
for the kind of each step and check and calls it with a `Context`.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from lab.backends.base import LabError, NodeError
from lab.backends.lab import AnyLab
from lab.image import IMAGE
from lab.model.variables import VariableError, resolve
from lab.scenario import state
from lab.scenario.checks import CHECKS
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import Outcome
from lab.scenario.model import CheckBase, ScenarioBase, ScenarioError, StepBase
from lab.scenario.pcap import flows
from lab.scenario.results import CheckResult, ScenarioRun, StepResult
from lab.scenario.steps import STEPS

OUTPUT_LIMIT = 4000
STEP_ERRORS = (StepFailed, VariableError, NodeError, LabError, ScenarioError, KeyError, ValueError, OSError)


def base_variables(lab: AnyLab) -> dict[str, str]:
    """{image}, {run_id}, {r.name} per router, and per node {n.ip}, {n.tor_ip}, {n.pod_cidr}, {n.router_ip};
    in a fabric, per link {x.to_y}: x's address on its link to y.

    Pod CIDRs are read from the agents (they change: a node may get one late),
    or, where an agent does not answer (it may be down: a scenario can start
    it), taken from what `lab up` recorded."""
    from podnet.errors import PodnetError

    variables = {"image": IMAGE, "run_id": lab.run_id, **{f"{r}.name": r for r in lab.routers}}
    if lab.control is not None:
        variables["store"] = lab.store_url
    for spec in lab.topology.nodes:
        name = spec.name
        variables[f"{name}.ip"] = lab.topology.node_ip(name)  # a dual-homed node's: its /32 on lo
        variables[f"{name}.tor_ip"] = lab.topology.link_of(name).tor_ip  # its (first) ToR or leaf
        if name not in lab.workers:
            continue
        info = dict(lab.node_info.get(name, {}))
        with contextlib.suppress(PodnetError, ValueError, NodeError):
            live = lab.nodes[name].agent(timeout=2).request("GET", "/v1/node")
            if live.get("pod-cidrs"):
                info = {"pod_cidr": live["pod-cidrs"][0], "router_ip": live["router-ip"]}
        for key, value in info.items():
            variables[f"{name}.{key}"] = value
    if lab.topology.is_fabric():  # {x.to_y}: x's address on its link to y (its interface to-y)
        for link in lab.topology.links():
            variables[f"{link.lower}.to_{link.upper}"] = link.lower_ip
            variables[f"{link.upper}.to_{link.lower}"] = link.upper_ip
    return variables


class Runner:
    def __init__(self, lab: AnyLab, console: Console | None = None):
        self.lab = lab
        self.console = console or Console(stderr=True)

    def run(self, scenario: ScenarioBase, out: Path) -> ScenarioRun:
        out.mkdir(parents=True, exist_ok=True)
        ctx = Context(self.lab, out, variables=base_variables(self.lab))
        run = ScenarioRun(scenario.name, out, scenario.description, list(scenario.seeds), variables=ctx.variables)
        t0 = time.perf_counter()
        failed = False
        for step in scenario.steps:
            if failed:
                run.steps.append(StepResult(step.name, step.kind, skipped=True))
                continue
            result = self.step(step, ctx, started=time.perf_counter() - t0)
            run.steps.append(result)
            mark = "[green]✓[/]" if result.passed else "[red]✗[/]"
            waited = f", held after {result.waited_s:.2f}s" if result.waited_s is not None else ""
            self.console.print(f"  {mark} {step.name} ({result.seconds:.2f}s{waited})")
            if not result.passed:
                failed = True
                self.console.print(f"    [red]{result.failure}[/]")
        for step in scenario.cleanup:
            result = self.step(step, ctx, started=time.perf_counter() - t0)
            result.name = f"cleanup: {result.name}"
            run.steps.append(result)
        run.steps += self._restore_faults(ctx, started=time.perf_counter() - t0)
        for cleanup in ctx.cleanups:  # e.g. background probes
            with contextlib.suppress(*STEP_ERRORS, subprocess.TimeoutExpired):
                cleanup()
        run.seconds = time.perf_counter() - t0
        state.dump(self.lab, out / "state")
        return run

    def _restore_faults(self, ctx: Context, *, started: float) -> list[StepResult]:
        """Every fault still applied, newest first: a scenario never leaves one behind."""
        from lab.scenario.steps.restore import restore

        results = []
        for name in reversed(list(ctx.faults)):
            result = StepResult(f"cleanup: restore fault {name} (automatic)", "restore", started_s=round(started, 3))
            t0 = time.perf_counter()
            try:
                result.stdout = restore(ctx, name)
            except (*STEP_ERRORS, subprocess.TimeoutExpired) as err:
                result.error = f"restoring fault {name}: {err}"
                ctx.faults.pop(name, None)
            result.seconds = time.perf_counter() - t0
            result.passed = not result.error
            self.console.print(
                f"  {'[green]✓[/]' if result.passed else '[red]✗[/]'} {result.name} ({result.seconds:.2f}s)"
            )
            results.append(result)
        return results

    # -- one step ---------------------------------------------------------------------
    def step(self, step: StepBase, ctx: Context, *, started: float = 0.0) -> StepResult:
        result = StepResult(step.name, step.kind, started_s=round(started, 3))
        t0 = time.perf_counter()
        try:
            resolved = resolve(step, ctx.variables)
            assert isinstance(resolved, StepBase)
            ctx.marks.clear()
            for check in resolved.checks:
                prepare = CHECKS[check.kind].prepare
                if prepare is not None:
                    prepare(ctx, check.spec)
            with self._captures(resolved, ctx, result):
                self._act(resolved, ctx, result)
            self._checks(resolved, ctx, result)
        except STEP_ERRORS as err:
            result.error = str(err)
        except subprocess.TimeoutExpired as err:
            result.error = f"timed out after {err.timeout}s: {shlex.join(str(a) for a in err.cmd)}"
        for name, rel in result.pcaps.items():
            with contextlib.suppress(Exception):  # a summary for the report; the checks read the pcap itself
                result.flows[name] = flows(ctx.out / rel)
        result.seconds = time.perf_counter() - t0
        result.passed = not result.error and all(c.passed for c in result.checks)
        return result

    @contextmanager
    def _captures(self, step: StepBase, ctx: Context, result: StepResult) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for pcap in step.pcap:
                path = ctx.out / "pcaps" / f"{pcap.name}.pcap"
                path.parent.mkdir(parents=True, exist_ok=True)
                stack.enter_context(ctx.node(pcap.node).capture(pcap.interface, path))
                ctx.pcaps[pcap.name] = path
                result.pcaps[pcap.name] = str(path.relative_to(ctx.out))
            yield

    def _act(self, step: StepBase, ctx: Context, result: StepResult) -> None:
        spec = step.spec
        if spec is None:
            return
        kind = STEPS[step.kind]
        outcome = kind.run(ctx, spec)
        result.command = outcome.command
        result.stdout, result.stderr = outcome.stdout[-OUTPUT_LIMIT:], outcome.stderr[-OUTPUT_LIMIT:]
        if kind.has_output:
            self._expect(step, outcome)

    @staticmethod
    def _expect(step: StepBase, outcome: Outcome) -> None:
        expect = step.expect
        ok = True if expect is None else expect.ok
        if ok and outcome.returncode != 0:
            raise StepFailed(f"`{outcome.command}` exited {outcome.returncode}: {outcome.stderr.strip()[-500:]}")
        if not ok and outcome.returncode == 0:
            raise StepFailed(f"`{outcome.command}` was expected to fail but succeeded")
        if expect is not None and expect.stdout_contains and expect.stdout_contains not in outcome.stdout:
            raise StepFailed(f"stdout lacks {expect.stdout_contains!r}: {outcome.stdout.strip()[-300:]!r}")
        if expect is not None and expect.stderr_contains and expect.stderr_contains not in outcome.stderr:
            raise StepFailed(f"stderr lacks {expect.stderr_contains!r}: {outcome.stderr.strip()[-300:]!r}")

    def _checks(self, step: StepBase, ctx: Context, result: StepResult) -> None:
        """Evaluate every check; with `within`, again every 0.2 s until all pass or time is up
        (how long it took is recorded: a recovery time)."""
        if not step.checks:
            return
        t0 = time.monotonic()
        deadline = t0 + (step.within or 0)
        while True:
            result.checks = [self._check(check, ctx) for check in step.checks]
            if all(c.passed for c in result.checks):
                if step.within is not None:
                    result.waited_s = round(time.monotonic() - t0, 3)
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.2)

    @staticmethod
    def _check(check: CheckBase, ctx: Context) -> CheckResult:
        """One evaluation; one that cannot be made (an agent down, a command that fails) is a
        failed check saying why, so `within` tries again."""
        from podnet.errors import PodnetError

        try:
            return CHECKS[check.kind].evaluate(ctx, check.spec)
        except (*STEP_ERRORS, PodnetError, subprocess.TimeoutExpired) as err:
            return CheckResult(
                check.kind, f"{check.kind} check", False, "the check can be evaluated", f"{type(err).__name__}: {err}"
            )
