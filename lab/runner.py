"""Run scenarios on a lab: steps, packet captures, checks, state dumps, reports."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lab import checks, packets
from lab.cniexec import exec_cni
from lab.image import IMAGE
from lab.lab import AnyLab, BaseLab, LabError, existing_labs, make_lab
from lab.libcni import LibCNI
from lab.netns import NetnsNode
from lab.node import LabNode, NodeError
from lab.scenario import Scenario, ScenarioError, Step, all_scenarios, load_scenario
from lab.topology import load_topology
from lab.variables import VariableError, dig, resolve

OUTPUT_LIMIT = 4000


@dataclass
class StepResult:
    name: str
    action: str
    seconds: float = 0.0
    passed: bool = True
    command: str = ""
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    checks: list[checks.CheckResult] = field(default_factory=list)
    pcaps: dict[str, str] = field(default_factory=dict)
    skipped: bool = False


@dataclass
class ScenarioRun:
    scenario: Scenario
    out: Path
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.steps)

    @property
    def failure(self) -> str:
        for step in self.steps:
            if not step.passed:
                failed = [c for c in step.checks if not c.passed]
                if step.error:
                    return f"step '{step.name}': {step.error}"
                if failed:
                    c = failed[0]
                    return f"step '{step.name}': {c.description}: expected {c.expected}; got {c.actual} (see {c.where})"
        return ""


class StepFailed(Exception):
    pass


# Stops tcpdump with SIGINT (so it flushes) when the runner closes stdin: the
# same on every backend, including over ssh, which forwards no signals.
CAPTURE_SCRIPT = 'tcpdump "$@" & pid=$!; read -r _; kill -INT $pid; wait $pid'


@contextmanager
def capture(node: LabNode, interface: str, path: Path) -> Iterator[None]:
    """tcpdump on a node's interface for the duration of the block.

    --immediate-mode: without it libpcap hands packets over in blocks and a
    short capture stopped mid-block loses them ("9 received, 3 captured").
    """
    tcpdump = ["--immediate-mode", "-i", interface, "-U", "-n", "-s", "0", "-w", "-"]
    with open(path, "wb") as out:
        proc = subprocess.Popen(
            node.argv_for(["bash", "-c", CAPTURE_SCRIPT, "capture", *tcpdump]),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert proc.stderr is not None and proc.stdin is not None
    line = proc.stderr.readline()  # "listening on …" once the socket is open, or the error
    if "listening on" not in line:
        proc.stdin.close()
        proc.wait(5)
        raise StepFailed(
            f"tcpdump on {node.name}/{interface} did not start: {line.strip() or proc.stderr.read().strip()}"
        )
    try:
        yield
    finally:
        time.sleep(0.3)  # let the last packets of the step reach the file
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def base_variables(lab: AnyLab) -> dict[str, str]:
    from podnet.api.client import AgentClient

    variables = {"image": IMAGE, "run_id": lab.run_id, f"{lab.tor.name}.name": lab.tor.name}
    if lab.control is not None:
        variables["store"] = lab.store_url
    for link in lab.topology.links():
        variables[f"{link.node}.ip"] = link.node_ip
        variables[f"{link.node}.tor_ip"] = link.tor_ip
        if link.node not in lab.workers or not lab.pod_cidr(link.node):
            continue  # the control node, or a worker still waiting for a pod CIDR
        node_info = AgentClient(str(lab.nodes[link.node].agent_sock)).request("GET", "/v1/node")
        variables[f"{link.node}.pod_cidr"] = node_info["pod-cidrs"][0]
        variables[f"{link.node}.router_ip"] = node_info["router-ip"]
    return variables


class Runner:
    def __init__(self, lab: AnyLab, console: Console | None = None):
        self.lab = lab
        self.console = console or Console(stderr=True)
        self._libcni: dict[str, LibCNI] = {}

    def run(self, scenario: Scenario, out: Path) -> ScenarioRun:
        out.mkdir(parents=True, exist_ok=True)
        run = ScenarioRun(scenario, out, variables=base_variables(self.lab))
        pcaps: dict[str, Path] = {}
        t0 = time.perf_counter()
        failed = False
        for step in scenario.steps:
            if failed:
                run.steps.append(StepResult(step.name, step.action, passed=True, skipped=True))
                continue
            result = self.step(step, run, pcaps)
            run.steps.append(result)
            mark = "[green]✓[/]" if result.passed else "[red]✗[/]"
            self.console.print(f"  {mark} {step.name} ({result.seconds:.2f}s)")
            if not result.passed:
                failed = True
                self.console.print(f"    [red]{run.failure}[/]")
        for step in scenario.cleanup:
            result = self.step(step, run, pcaps)
            result.name = f"cleanup: {result.name}"
            run.steps.append(result)
        run.seconds = time.perf_counter() - t0
        self.dump_state(out / "state")
        return run

    # -- one step ---------------------------------------------------------------------
    def step(self, step: Step, run: ScenarioRun, pcaps: dict[str, Path]) -> StepResult:
        result = StepResult(step.name, step.action)
        t0 = time.perf_counter()
        # Marks in the plugins' logs, for plugin_calls checks only (on VMs each is an ssh round trip).
        wants_marks = any(check.kind == "plugin_calls" for check in step.checks)
        log_marks = {n: node.log_size("podnet-docker") for n, node in self.lab.nodes.items()} if wants_marks else {}
        try:
            resolved = resolve(step, run.variables)
            assert isinstance(resolved, Step)
            with self._captures(resolved, run, pcaps, result):
                self._act(resolved, run, result)
            deadline = time.monotonic() + (resolved.within or 0)
            while True:
                result.checks = [self._check(check, pcaps, log_marks) for check in resolved.checks]
                if all(c.passed for c in result.checks) or time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
        except (StepFailed, VariableError, NodeError, LabError, ScenarioError, KeyError, ValueError) as err:
            result.error = str(err)
        except subprocess.TimeoutExpired as err:
            result.error = f"timed out after {err.timeout}s: {shlex.join(str(a) for a in err.cmd)}"
        result.seconds = time.perf_counter() - t0
        result.passed = not result.error and all(c.passed for c in result.checks)
        return result

    @contextmanager
    def _captures(self, step: Step, run: ScenarioRun, pcaps: dict[str, Path], result: StepResult) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for pcap in step.pcap:
                path = run.out / "pcaps" / f"{pcap.name}.pcap"
                path.parent.mkdir(parents=True, exist_ok=True)
                stack.enter_context(capture(self.lab.node(pcap.node), pcap.interface, path))
                pcaps[pcap.name] = path
                result.pcaps[pcap.name] = str(path.relative_to(run.out))
            yield

    def _act(self, step: Step, run: ScenarioRun, result: StepResult) -> None:
        if step.docker is not None:
            node = self.lab.node(step.docker.node)
            result.command = f"{node.name}$ docker {shlex.join(step.docker.args)}"
            proc = node.docker(*step.docker.args, check=False)
            self._expect(step, result, proc)
        elif step.exec is not None:
            node = self.lab.node(step.exec.node)
            if step.exec.container:
                result.command = f"{node.name}$ docker exec {step.exec.container} {shlex.join(step.exec.cmd)}"
                proc = node.docker("exec", step.exec.container, *step.exec.cmd, check=False)
            elif step.exec.pod:
                netns = checks.pod_netns(node, step.exec.pod)
                result.command = f"{node.name}/{step.exec.pod}$ {shlex.join(step.exec.cmd)}"
                proc = node.cmd("nsenter", f"--net={netns}", *step.exec.cmd, check=False)
            else:
                result.command = f"{node.name}$ {shlex.join(step.exec.cmd)}"
                proc = node.cmd(*step.exec.cmd, check=False, env=self.lab.node_env(node.name))
            self._expect(step, result, proc)
        elif step.cni is not None:
            self._cni(step.cni, run, result)
        elif step.process is not None:
            p = step.process
            result.command = f"{p.node}: {p.action} {p.name}"
            if p.action in ("stop", "restart"):
                self.lab.stop_process(p.node, p.name)
            if p.action in ("start", "restart"):
                self.lab.start_process(p.node, p.name)
        elif step.wait is not None:
            result.command = f"sleep {step.wait.seconds}"
            time.sleep(step.wait.seconds)
        elif step.capture is not None:
            for name, source in step.capture.items():
                run.variables[name] = self._capture_value(source)
                result.stdout += f"{name} = {run.variables[name]}\n"

    def _cni(self, action: Any, run: ScenarioRun, result: StepResult) -> None:
        pods: list[str] = action.pods()
        node = self.lab.nodes[action.node]
        if not isinstance(node, NetnsNode):
            raise StepFailed(f"CNI steps run on the netns backend only; this lab is {self.lab.backend}")
        if action.runtime == "libcni":
            result.command = f"{node.name}$ podnet-libcni {action.command.lower()} podnet /run/netns/<pod>"
        else:
            result.command = f"{node.name}$ CNI_COMMAND={action.command} CNI_IFNAME={action.ifname} podnet < netconf"
        if len(pods) > 1:
            result.command += f"  # for each of {pods[0]} … {pods[-1]}"
        for pod in pods:
            status, output = self._cni_call(node, action, pod, run)
            if action.ok and status != 0:
                raise StepFailed(f"CNI {action.command} for {pod} failed: {output}")
        if len(pods) > 1:
            result.stdout = "\n".join(f"{pod}: {run.variables.get(f'{pod}.ip', 'ok')}" for pod in pods)
        else:
            result.stdout = json.dumps(output, indent=2) if output else ""
        if not action.ok:
            if status == 0:
                raise StepFailed(f"CNI {action.command} for {action.pod} was expected to fail but succeeded")
            if action.code is not None and output.get("code") != action.code:
                raise StepFailed(f"CNI error code {output.get('code')} (expected {action.code}): {output.get('msg')}")
            if action.msg_contains and action.msg_contains not in str(output.get("msg")):
                raise StepFailed(f"CNI error message lacks {action.msg_contains!r}: {output.get('msg')!r}")

    def _cni_call(self, node: NetnsNode, action: Any, pod: str, run: ScenarioRun) -> tuple[int, Any]:
        netns = checks.pod_netns(node, pod)
        name = Path(netns).name
        if action.command == "ADD" and not Path(netns).exists():
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        plugin = self.lab.cni_plugin()
        container_id = f"{self.lab.run_id}-{pod}"
        if action.runtime == "libcni":
            if node.name not in self._libcni:
                self._libcni[node.name] = LibCNI(node, plugin)
                self._libcni[node.name].write_conflist(
                    "podnet", [{"type": "podnet", "agentSocket": str(node.agent_sock)}]
                )
            runtime = self._libcni[node.name]
            status, output, _ = runtime.call(
                action.command.lower(), "podnet", netns, container_id, ifname=action.ifname, pod=pod
            )
        else:
            conf: dict[str, Any] = {
                "cniVersion": "1.1.0",
                "name": "podnet",
                "type": "podnet",
                "agentSocket": str(node.agent_sock),
            }
            if action.command == "CHECK" and f"{pod}.result" in run.variables:
                conf["prevResult"] = json.loads(run.variables[f"{pod}.result"])
            status, output, _ = exec_cni(
                node, [str(plugin)], action.command, conf, netns, container_id, ifname=action.ifname, pod=pod
            )
        if action.command == "DEL" and Path(netns).exists():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        if action.command == "ADD" and status == 0:
            run.variables[f"{pod}.ip"] = output["ips"][0]["address"].split("/")[0]
            run.variables[f"{pod}.veth"] = output["interfaces"][0]["name"]
            run.variables[f"{pod}.result"] = json.dumps(output)
        return status, output

    def _expect(self, step: Step, result: StepResult, proc: subprocess.CompletedProcess[str]) -> None:
        result.stdout, result.stderr = proc.stdout[-OUTPUT_LIMIT:], proc.stderr[-OUTPUT_LIMIT:]
        expect = step.expect
        ok = True if expect is None else expect.ok
        if ok and proc.returncode != 0:
            raise StepFailed(f"`{result.command}` exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        if not ok and proc.returncode == 0:
            raise StepFailed(f"`{result.command}` was expected to fail but succeeded")
        if expect is not None and expect.stdout_contains and expect.stdout_contains not in proc.stdout:
            raise StepFailed(f"stdout lacks {expect.stdout_contains!r}: {proc.stdout.strip()[-300:]!r}")
        if expect is not None and expect.stderr_contains and expect.stderr_contains not in proc.stderr:
            raise StepFailed(f"stderr lacks {expect.stderr_contains!r}: {proc.stderr.strip()[-300:]!r}")

    def _capture_value(self, source: Any) -> str:
        node = self.lab.node(source.node)
        if source.docker is not None:
            return node.docker(*source.docker).stdout.strip()
        if source.exec is not None:
            return node.cmd(*source.exec).stdout.strip()
        from podnet.api.client import AgentClient

        client = AgentClient(str(node.agent_sock))
        if source.counter_of is not None:
            entries = client.request("GET", "/v1/bpf")["counters"]
            entry = next((c for c in entries if c.get("interface-name") == source.counter_of), None)
            if entry is None:
                raise StepFailed(f"no eBPF counters for {source.counter_of} on {source.node}")
            if source.field.startswith("drops."):  # only reasons that happened are listed
                return str(entry["drops"].get(source.field.removeprefix("drops."), 0))
            return str(dig(entry, source.field))
        if source.endpoint_of is not None:
            endpoint_id = node.endpoint_id(source.endpoint_of)
            if not endpoint_id:
                raise StepFailed(f"{source.endpoint_of} on {source.node} has no network endpoint")
            data = client.endpoint_get(endpoint_id)
        else:
            data = client.request("GET", source.agent)
        return str(dig(data, source.field))

    def _check(self, check: Any, pcaps: dict[str, Path], log_marks: dict[str, int]) -> checks.CheckResult:
        kind, spec = check.kind, check.spec
        if kind == "packets":
            if spec.pcap not in pcaps:
                raise StepFailed(f"packets check names pcap {spec.pcap!r}, but no step captured it")
            ok, expected, actual = packets.evaluate(spec, pcaps[spec.pcap])
            return checks.CheckResult(
                "packets", f"{spec.pcap}: {expected}", ok, expected, actual, str(pcaps[spec.pcap].name)
            )
        if kind == "compare":
            return checks.compare(spec)
        if kind == "endpoint":
            return checks.endpoint(self.lab.node(spec.node), spec)
        if kind == "allocations":
            return checks.allocations(self.lab.node(spec.node), spec)
        if kind == "nodes":
            return checks.cluster_nodes(self.lab, spec)
        if kind == "routes":
            return checks.routes(self.lab.node(spec.node), spec)
        if kind == "inspect":
            return checks.inspect(self.lab.node(spec.node), spec)
        node = self.lab.node(spec.node)
        text = node.log_text("podnet-docker", log_marks.get(node.name, 0))
        return checks.plugin_calls(node, spec, text, f"logs/{node.name}/podnet-docker.log")

    # -- state ---------------------------------------------------------------------------
    def dump_state(self, dest: Path) -> None:
        from podnet.api.client import AgentClient
        from podnet.errors import PodnetError

        dest.mkdir(parents=True, exist_ok=True)
        for node in self.lab.all_nodes():
            lines = []
            for argv in (["ip", "-br", "addr"], ["ip", "route"], ["ip", "neigh"]):
                lines.append(f"$ {' '.join(argv)}\n{node.cmd(*argv, check=False).stdout}")
            if node.name in self.lab.nodes:
                for argv in (["ps", "-a"], ["network", "ls"]):
                    lines.append(f"$ docker {' '.join(argv)}\n{node.docker(*argv, check=False).stdout}")
                client = AgentClient(str(node.agent_sock), timeout=5)
                for name, path in (("ipam", "/v1/ipam"), ("endpoints", "/v1/endpoint"), ("healthz", "/v1/healthz")):
                    try:
                        (dest / f"{node.name}-{name}.json").write_text(
                            json.dumps(client.request("GET", path), indent=2)
                        )
                    except PodnetError as err:
                        (dest / f"{node.name}-{name}.json").write_text(json.dumps({"error": str(err)}))
            (dest / f"{node.name}-net.txt").write_text("\n".join(lines))

    def reset(self) -> None:
        """Leave every node as a scenario found it: no containers, no podnet networks."""
        for node in self.lab.nodes.values():
            ids = node.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                node.docker("rm", "-f", *ids, check=False)
            nets = node.docker("network", "ls", "-q", "--filter", "driver=podnet", check=False).stdout.split()
            if nets:
                node.docker("network", "rm", *nets, check=False)


def load_all(names: list[str]) -> list[Scenario]:
    """Every named scenario (all of scenarios/ by default), validated; all errors at once."""
    paths: list[str | Path] = list(names) if names else list(all_scenarios())
    if not paths:
        raise ScenarioError("no scenarios found in scenarios/")
    errors, loaded = [], []
    for path in paths:
        try:
            loaded.append(load_scenario(path))
        except ScenarioError as err:
            errors.append(str(err))
    if errors:
        raise ScenarioError("\n".join(errors))
    return loaded


def by_topology(scenarios: list[Scenario]) -> list[tuple[str, list[Scenario]]]:
    """Scenarios grouped by the topology they need, in first-seen order: one lab per group."""
    groups: dict[str, list[Scenario]] = {}
    for scenario in scenarios:
        groups.setdefault(scenario.topology, []).append(scenario)
    return list(groups.items())


def run_scenarios(
    names: list[str],
    *,
    topology: str | None,
    keep: bool,
    artifacts: Path,
    console: Console,
    backend: str = "netns",
) -> int:
    from lab.report import write_reports

    try:
        loaded = load_all(names)
    except ScenarioError as err:
        console.print(f"[red]{err}[/]")
        return 2
    scenarios = [s for s in loaded if backend in s.backends]
    for s in loaded:
        if backend not in s.backends:
            console.print(f"[yellow]not run on {backend}: {s.name} declares backends {', '.join(s.backends)}[/]")
    if not scenarios:
        console.print(f"[red]none of these scenarios runs on the {backend} backend[/]")
        return 2
    groups = by_topology(scenarios) if topology is None else [(topology, scenarios)]
    reports, all_runs = [], []
    kept = None
    for topo, group in groups:
        reuse = bool(existing_labs())
        lab = BaseLab.load() if reuse else make_lab(load_topology(topo), backend)
        if reuse and (lab.topology.name, lab.backend) != (load_topology(topo).name, backend):
            console.print(
                f"[red]the lab that is up is {lab.topology.name} on {lab.backend}, not {topo} on {backend}: lab down first[/]"
            )
            return 3
        out = artifacts / lab.run_id
        t0 = time.perf_counter()
        if not reuse:
            with console.status("bringing the lab up…") as status:

                def progress(what: str, lab: AnyLab = lab, status: Any = status) -> None:
                    status.update(f"[bold]lab up[/] {lab.run_id}: {what}…")

                try:
                    lab.up(report=progress)
                except BaseException:
                    lab.down(keep_logs=out / "logs")
                    raise
            console.print(f"lab {lab.run_id} ({lab.topology.name}) up in {lab.up_seconds:.1f}s")
        runner = Runner(lab, console)
        runs = []
        try:
            for scenario in group:
                console.print(f"[bold]scenario {scenario.name}[/]")
                runs.append(runner.run(scenario, out / scenario.name))
                runner.reset()
        finally:
            failed = [r for r in runs if not r.passed]
            lab.collect_logs(out / "logs")
            reports.append(write_reports(lab, runs, out, total_seconds=time.perf_counter() - t0))
            all_runs += runs
            if keep and failed and not reuse:
                kept = lab
            elif not reuse:
                lab.down()
        if kept is not None:
            break  # leave the failed lab up for `lab exec`; later groups would need it down
    for run in all_runs:
        mark = "[green]PASS[/]" if run.passed else "[red]FAIL[/]"
        console.print(f"{mark} {run.scenario.name} ({run.seconds:.1f}s){'' if run.passed else ': ' + run.failure}")
    if kept is not None:
        console.print(f"lab {kept.run_id} kept up for debugging: lab exec node1 | lab down")
    for report in reports:
        console.print(f"report: {report}")
    return 1 if any(not r.passed for r in all_runs) else 0
