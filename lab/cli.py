"""The `lab` command: up, run, status, exec, logs, down, clean.

Exit codes: 0 success, 1 a scenario failed, 2 bad usage or input,
3 the lab could not be brought up or torn down.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from lab.lab import BaseLab, LabError, make_lab
from lab.netns import NetnsNode
from lab.node import NodeError
from lab.scenario import BACKENDS
from lab.topology import TopologyError, load_topology

console = Console(stderr=True, highlight=False)


SINGULAR = {
    "processes": "process",
    "namespaces": "namespace",
    "bpf pins": "bpf pin directory",
    "cgroups": "cgroup",
    "directories": "directory",
    "VMs": "VM",
    "VM networks": "VM network",
}


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the netns lab needs root (namespaces, veths, its own dockerd): run it as root")


def cmd_up(args: argparse.Namespace) -> int:
    _require_root()
    lab = make_lab(load_topology(args.topology), args.backend)
    with console.status("bringing the lab up…") as status:
        try:
            lab.up(report=lambda what: status.update(f"[bold]lab up[/] {lab.run_id}: {what}…"))
        except BaseException:
            console.print(f"[red]lab up failed[/]; cleaning up run {lab.run_id}")
            lab.down(keep_logs=Path("artifacts") / lab.run_id / "logs")
            raise
    console.print(
        f"lab {lab.run_id} ({lab.backend}) is up in {lab.up_seconds:.1f}s: ToR {lab.tor.name}, nodes {', '.join(lab.nodes)}"
    )
    for what, seconds in lab.timings:
        console.print(f"  {seconds:6.2f}s  {what}")
    console.print("try: lab exec node1 -- docker network ls    |    lab down")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _require_root()
    lab = BaseLab.load()
    errors = lab.down()
    for error in errors:
        console.print(f"[yellow]{error}[/]")
    console.print(f"lab {lab.run_id} is down")
    return 3 if errors else 0


def cmd_box_build(args: argparse.Namespace) -> int:
    _require_root()
    from lab.box import BoxError, build

    try:
        result = build(force=args.force, report=lambda what: console.print(f"box: {what}"))
    except BoxError as err:
        console.print(f"[red]lab box build: {err}[/]")
        return 1
    verb = "built" if result.built else "reused (inputs unchanged)"
    console.print(
        f"box {result.name} {verb} in {result.seconds:.0f}s: {result.path} ({result.size_bytes / 1e6:.0f} MB); "
        "`vagrant box list` shows it"
    )
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    _require_root()
    from lab.clean import clean

    removed = clean()
    total = sum(len(v) for v in removed.values())
    for kind, items in removed.items():
        for item in items:
            console.print(f"removed {SINGULAR.get(kind, kind)}: {item}")
    console.print("nothing to clean" if total == 0 else f"cleaned {total} leftover(s)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lab.status import print_status

    print_status(BaseLab.load())
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    _require_root()
    lab = BaseLab.load()
    node = lab.node(args.node)
    command = list(args.command or [])
    if command and command[0] == "--":
        command = command[1:]
    from lab.vagrant_node import VagrantNode

    if isinstance(node, VagrantNode):  # an ssh session as root, podnet on PATH
        env_prefix = ["env", *(f"{k}={v}" for k, v in lab.node_env(node.name).items())]
        argv = node.interactive_argv([*env_prefix, *command] if command else [])
        os.execvp(argv[0], argv)
    assert isinstance(node, NetnsNode)
    env = {**os.environ, **lab.node_env(node.name), "PS1": f"[lab {lab.run_id} {node.name}] \\w# "}
    argv = ["nsenter", f"--net={node.netns_path}", *(command or ["bash", "--norc", "-i"])]
    os.execvpe("nsenter", argv, env)
    return 0  # not reached


def cmd_logs(args: argparse.Namespace) -> int:
    lab = BaseLab.load()
    node = lab.node(args.node)
    from lab.vagrant_node import VagrantNode

    if isinstance(node, VagrantNode):
        names = [args.process] if args.process else list(node.services())
        for name in names:
            print(f"==> {node.name}/{name} <==")
            print(node.log_text(name)[-args.bytes :])
        return 0
    assert isinstance(node, NetnsNode)
    logs = sorted(node.logs.glob("*.log"))
    if args.process:
        logs = [p for p in logs if p.stem == args.process]
        if not logs:
            raise LabError(
                f"no log for process {args.process!r} on {node.name} (have: {', '.join(p.stem for p in sorted(node.logs.glob('*.log')))})"
            )
    for log in logs:
        print(f"==> {node.name}/{log.name} <==")
        print(log.read_text(errors="replace")[-args.bytes :])
    return 0


def cmd_wheelhouse(args: argparse.Namespace) -> int:
    from lab.deploy import wheelhouse
    from lab.provision import stage

    topology = load_topology(args.topology)
    house, built = wheelhouse()
    staged = stage(topology)
    console.print(f"wheelhouse {'built' if built else 'reused'}: {house} ({len(list(house.glob('*.whl')))} wheels)")
    console.print(f"staged {', '.join(sorted(p.stem for p in staged.glob('*.tar')))} in {staged}")
    console.print(f"now: LAB_TOPOLOGY={topology.name} vagrant up   (then: vagrant ssh node1)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    _require_root()
    from lab.runner import run_scenarios

    return run_scenarios(
        args.scenarios,
        topology=args.topology,
        keep=args.keep,
        artifacts=Path(args.artifacts),
        console=console,
        backend=args.backend,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description="the podnet lab: real nodes, real daemons, every seed flow")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up = sub.add_parser("up", help="bring a lab up (ToR + nodes, each with its own dockerd and podnet)")
    up.add_argument("--topology", default=None, help="topology file or name (default: lab/topologies/default.yaml)")
    up.add_argument("--backend", choices=BACKENDS, default="netns", help="netns (default: namespaces) or vagrant (VMs)")
    up.set_defaults(handler=cmd_up)
    run = sub.add_parser("run", help="run scenarios (all of scenarios/ by default); brings a lab up if none is")
    run.add_argument("scenarios", nargs="*", help="scenario files or names")
    run.add_argument("--topology", default=None)
    run.add_argument("--backend", choices=BACKENDS, default="netns", help="netns (default) or vagrant (VMs)")
    run.add_argument("--keep", action="store_true", help="leave the lab up after a failure (for `lab exec`)")
    run.add_argument("--artifacts", default="artifacts", help="where run reports go (default ./artifacts)")
    run.set_defaults(handler=cmd_run)
    sub.add_parser("status", help="the lab's nodes, processes and pod CIDRs").set_defaults(handler=cmd_status)
    ex = sub.add_parser("exec", help="a shell (or a command) in a node's network namespace, with DOCKER_HOST set")
    ex.add_argument("node")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(handler=cmd_exec)
    logs = sub.add_parser("logs", help="a node's process logs")
    logs.add_argument("node")
    logs.add_argument("process", nargs="?", help="dockerd, podnet-agent, podnet-docker")
    logs.add_argument("--bytes", type=int, default=20000, help="last N bytes of each log")
    logs.set_defaults(handler=cmd_logs)
    sub.add_parser("down", help="remove the lab").set_defaults(handler=cmd_down)
    sub.add_parser("clean", help="remove whatever crashed labs left behind").set_defaults(handler=cmd_clean)
    wh = sub.add_parser(
        "wheelhouse", help="build podnet's wheelhouse and stage each VM's provisioning files (for `vagrant up`)"
    )
    wh.add_argument("--topology", default=None, help="topology file or name (default: lab/topologies/default.yaml)")
    wh.set_defaults(handler=cmd_wheelhouse)
    box = sub.add_parser("box", help="the Vagrant backend's offline Debian 12 box")
    box_sub = box.add_subparsers(dest="box_command", metavar="SUBCOMMAND", required=True)
    build_box = box_sub.add_parser(
        "build", help="build it (or reuse it when its inputs are unchanged) and add it to vagrant"
    )
    build_box.add_argument("--force", action="store_true", help="rebuild even if an up-to-date box exists")
    build_box.set_defaults(handler=cmd_box_build)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except TopologyError as err:
        console.print(f"[red]lab: {err}[/]")
        return 2
    except (LabError, NodeError) as err:
        console.print(f"[red]lab: {err}[/]")
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
