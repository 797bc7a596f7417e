"""The `lab` command: arguments and printing; the work is in lab.session, the backends and the scenarios.

Exit codes: 0 success, 1 a scenario failed, 2 bad usage or input,
3 the lab could not be brought up or torn down.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from lab import paths
from lab.backends import registry
from lab.backends.base import PROCESSES, LabError, NodeError, Progress
from lab.conformance.cli import add_commands as add_conformance_commands
from lab.model.status import LabStatus
from lab.model.topology import Topology, TopologyError, load_topology
from lab.scenario.model import Scenario, ScenarioBase, ScenarioError, load_scenario
from lab.session import LabSession, Run

console = Console(stderr=True, highlight=False)

SINGULAR = {
    "processes": "process",
    "namespaces": "namespace",
    "bpf pins": "bpf pin directory",
    "cgroups": "cgroup",
    "directories": "directory",
    "files": "file",
    "VMs": "VM",
    "VM networks": "VM network",
}


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, veths, its own dockerd; libvirt for VMs): run it as root")


def _progress(status: object, run_id: str) -> Progress:
    def report(what: str) -> None:
        status.update(f"[bold]lab up[/] {run_id}: {what}…")  # type: ignore[attr-defined]

    return report


def cmd_up(args: argparse.Namespace) -> int:
    _require_root()
    session = LabSession(Run(Path(args.artifacts)), load_topology(args.topology), args.backend, console=console)
    lab = session.lab
    with console.status("bringing the lab up…") as status:
        try:
            session.up(progress=_progress(status, lab.run_id))
        except BaseException:
            if session.cleanup_errors:
                console.print(f"[red]lab up failed[/], and cleaning up lab {lab.run_id} did not finish:")
                for error in session.cleanup_errors:
                    console.print(f"  [yellow]{error}[/]")
                console.print(f"run `lab down` (or `lab clean`) once that is fixed (logs: {session.out / 'logs'})")
            else:
                console.print(f"[red]lab up failed[/]; cleaned up lab {lab.run_id} (logs: {session.out / 'logs'})")
            raise
    lab = session.lab
    if session.reused:
        console.print(f"lab {lab.run_id} ({lab.topology.name}, {lab.backend}) is already up")
        return 0
    console.print(
        f"lab {lab.run_id} ({lab.backend}) is up in {lab.up_seconds:.1f}s: "
        f"{'routers' if len(lab.routers) > 1 else 'ToR'} {', '.join(lab.routers)}, nodes {', '.join(lab.nodes)}"
    )
    for t in lab.timings:
        console.print(f"  {t.start:6.2f}s +{t.seconds:6.2f}s  {t.what}")
    console.print("try: lab exec node1 -- docker network ls    |    lab status    |    lab down")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _require_root()
    lab = registry.load_lab()
    errors = lab.down()
    for error in errors:
        console.print(f"[yellow]{error}[/]")
    console.print(f"lab {lab.run_id} is down")
    return 3 if errors else 0


def cmd_clean(args: argparse.Namespace) -> int:
    _require_root()
    removed = registry.clean()
    total = sum(len(v) for v in removed.values())
    for kind, items in removed.items():
        for item in items:
            console.print(f"removed {SINGULAR.get(kind, kind)}: {item}")
    console.print("nothing to clean" if total == 0 else f"cleaned {total} leftover(s)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    lab_status = registry.load_lab().status()
    if args.json:
        print(lab_status.model_dump_json(indent=2))
        return 0
    status = lab_status.model_dump()
    table = Table(title=f"lab {status['run_id']} ({status['topology']}, {status['backend']})", title_justify="left")
    for column in ("node", "role", "where", "underlay", "processes", "pod CIDR", "agent"):
        table.add_column(column)
    for node in status["nodes"]:
        procs = ", ".join(
            p["name"] + ("" if p["running"] and not p["detail"] else f" ({p['detail'] or 'dead'})")
            for p in node["processes"]
        )
        underlay = node["underlay_ip"]
        agent = node["agent"]
        agent_text = (
            "-" if agent is None else agent["state"] + (f" ({agent['message']})" if not node["pod_cidr"] else "")
        )
        if node["role"] == "control":
            agent_text = f"store {status['store']}"
        table.add_row(
            node["name"],
            node["role"],
            node["where"],
            ", ".join(underlay) if isinstance(underlay, list) else underlay,
            procs or "-",
            node["pod_cidr"] or ("-" if node["role"] != "worker" else "none"),
            agent_text,
        )
    Console(width=170).print(table)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    _require_root()
    lab = registry.load_lab()
    node = lab.node(args.node)
    command = list(args.command or [])
    if command and command[0] == "--":
        command = command[1:]
    argv, env = node.shell(command, lab.node_env(node.name))
    os.execvpe(argv[0], argv, env)


def cmd_logs(args: argparse.Namespace) -> int:
    lab = registry.load_lab()
    node = lab.node(args.node)
    names = node.log_names()
    if args.process:
        if args.process not in names:
            raise LabError(f"no log for process {args.process!r} on {node.name} (have: {', '.join(names) or 'none'})")
        names = [args.process]
    for name in names:
        print(f"==> {node.name}/{name} <==")
        print(node.log_text(name)[-args.bytes :])
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    _require_root()
    lab = registry.load_lab()
    node = lab.node(args.node)
    node.require_process(args.name)
    if args.action in ("stop", "restart"):
        node.stop_process(args.name)
    if args.action in ("start", "restart"):
        node.start_process(args.name)
    if args.action == "kill":
        node.signal_process(args.name, args.signal)
    lab.save()
    state = node.processes().get(args.name)
    shown = "unknown" if state is None else ("running" if state.running else "not running")
    detail = f" ({state.detail})" if state is not None and state.detail else ""
    console.print(f"{node.name}: {args.name} {args.action}: now {shown}{detail}")
    return 0


SCHEMAS: dict[str, type[BaseModel]] = {"scenario": Scenario, "topology": Topology, "status": LabStatus}


def cmd_schema(args: argparse.Namespace) -> int:
    model = SCHEMAS[args.what]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"podnet lab {args.what} file",
        **model.model_json_schema(),
    }
    print(json.dumps(schema, indent=2))
    return 0


def load_all(names: list[str]) -> list[ScenarioBase]:
    """Every named scenario (all of scenarios/ by default), validated; all errors at once."""
    sources: list[str | Path] = list(names) if names else list(paths.all_scenarios())
    if not sources:
        raise ScenarioError(f"no scenarios found in {paths.scenarios()}")
    errors, loaded = [], []
    for source in sources:
        try:
            loaded.append(load_scenario(source, paths.scenarios()))
        except ScenarioError as err:
            errors.append(str(err))
    if errors:
        raise ScenarioError("\n".join(errors))
    return loaded


def cmd_run(args: argparse.Namespace) -> int:
    _require_root()
    scenarios = load_all(args.scenarios)
    groups: dict[str, list[ScenarioBase]] = {}
    for scenario in scenarios:  # one lab per topology, in first-seen order
        groups.setdefault(args.topology or scenario.topology, []).append(scenario)
    run = Run(Path(args.artifacts))
    capabilities = registry.backend(args.backend).lab.capabilities
    sessions: list[LabSession] = []
    for topology_name, group in groups.items():
        topology = load_topology(topology_name)

        def why_not(s: ScenarioBase, topology: Topology = topology) -> str:
            return s.why_not(args.backend, capabilities) or s.why_not_on(topology)

        runnable = [s for s in group if not why_not(s)]
        for s in group:
            if s not in runnable:
                console.print(f"[yellow]not run on {args.backend} ({topology.name}): {s.name}: {why_not(s)}[/]")
        if not runnable:
            continue
        session = LabSession(run, topology, args.backend, console=console, keep=args.keep)
        sessions.append(session)
        for s in group:
            if s not in runnable:
                session.skip(s, why_not(s))
        t0 = time.perf_counter()
        with console.status("bringing the lab up…") as status:
            session.up(progress=_progress(status, session.lab.run_id))
        if not session.reused:
            console.print(f"lab {session.lab.run_id} ({topology_name}) up in {time.perf_counter() - t0:.1f}s")
        try:
            for scenario in runnable:
                session.run(scenario)
        finally:
            session.close()
        if session.kept:
            console.print(f"lab {session.lab.run_id} kept up for debugging: lab exec node1 | lab down")
            break  # later topologies would need it down
    if not sessions:
        console.print(f"[red]none of these scenarios runs on the {args.backend} backend[/]")
        return 2
    for result in run.result.runs:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        console.print(f"{mark} {result.name} ({result.seconds:.1f}s){'' if result.passed else ': ' + result.failure}")
    console.print(f"report: {run.write()}")
    return 0 if run.result.passed else 1


def _signal(value: str) -> int:
    name = value.upper()
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown signal {value!r} (e.g. KILL, TERM, STOP, CONT, 9)") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description="the podnet lab: real nodes, real daemons, every seed flow")
    p.add_argument("--repo", help="the podnet checkout to work on (default: the one around the working directory)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    backends = list(registry.BACKENDS)
    up = sub.add_parser("up", help="bring a lab up (ToR + nodes, each with its own dockerd and podnet)")
    up.add_argument("--topology", default=None, help="topology file or name (default: lab/topologies/default.yaml)")
    up.add_argument("--backend", choices=backends, default=registry.DEFAULT, help="netns (namespaces) or vagrant (VMs)")
    up.add_argument("--artifacts", default="artifacts", help="where logs of a failed bring-up go (default ./artifacts)")
    up.set_defaults(handler=cmd_up)
    run = sub.add_parser("run", help="run scenarios (all of scenarios/ by default); brings a lab up if none is")
    run.add_argument("scenarios", nargs="*", help="scenario files or names")
    run.add_argument("--topology", default=None, help="run them all on this topology instead of their own")
    run.add_argument("--backend", choices=backends, default=registry.DEFAULT, help="netns (default) or vagrant (VMs)")
    run.add_argument("--keep", action="store_true", help="leave the lab up after a failure (for `lab exec`)")
    run.add_argument("--artifacts", default="artifacts", help="where run reports go (default ./artifacts)")
    run.set_defaults(handler=cmd_run)
    status = sub.add_parser("status", help="the lab's nodes, processes and pod CIDRs")
    status.add_argument("--json", action="store_true", help="machine-readable (see README: lab status --json)")
    status.set_defaults(handler=cmd_status)
    ex = sub.add_parser("exec", help="a shell (or a command) on a node, with DOCKER_HOST and podnet set up")
    ex.add_argument("node")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(handler=cmd_exec)
    logs = sub.add_parser("logs", help="a node's process logs")
    logs.add_argument("node")
    logs.add_argument("process", nargs="?", help=", ".join(PROCESSES))
    logs.add_argument("--bytes", type=int, default=20000, help="last N bytes of each log")
    logs.set_defaults(handler=cmd_logs)
    proc = sub.add_parser("process", help="start, stop, restart or kill one of a node's processes")
    proc.add_argument("node")
    proc.add_argument("name", choices=PROCESSES)
    proc.add_argument("action", choices=("start", "stop", "restart", "kill"))
    proc.add_argument("--signal", type=_signal, default=int(signal.SIGKILL), help="for kill (default KILL)")
    proc.set_defaults(handler=cmd_process)
    sub.add_parser("down", help="remove the lab").set_defaults(handler=cmd_down)
    sub.add_parser("clean", help="remove whatever crashed labs left behind").set_defaults(handler=cmd_clean)
    schema = sub.add_parser(
        "schema", help="JSON Schema of scenario or topology files (for editors), or of lab status --json"
    )
    schema.add_argument("what", choices=tuple(SCHEMAS))
    schema.set_defaults(handler=cmd_schema)
    add_conformance_commands(sub)  # lab conformance cni|libnetwork
    for name in registry.BACKENDS:  # a backend's own commands (e.g. vagrant: box build, wheelhouse)
        registry.backend(name).add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repo:
        os.environ["LAB_REPO"] = args.repo
        paths.repo.cache_clear()
    try:
        return int(args.handler(args))
    except (TopologyError, ScenarioError, paths.RepoError) as err:
        console.print(f"[red]lab: {err}[/]")
        return 2
    except (LabError, NodeError) as err:
        console.print(f"[red]lab: {err}[/]")
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
