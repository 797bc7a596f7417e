"""The Vagrant backend's own `lab` commands: `lab box build` and `lab wheelhouse`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.console import Console

from lab.backends.base import LabError
from lab.backends.vagrant.box import BoxError, build
from lab.backends.vagrant.provision import StagingError, stage
from lab.backends.vagrant.venv import VenvError, vm_venv
from lab.deploy import wheelhouse
from lab.model.topology import load_topology

console = Console(stderr=True, highlight=False)


def cmd_wheelhouse(args: argparse.Namespace) -> int:
    topology = load_topology(args.topology)
    house, built = wheelhouse()
    console.print(f"wheelhouse {'built' if built else 'reused'}: {house} ({len(list(house.glob('*.whl')))} wheels)")
    try:
        venv, built = vm_venv()
    except VenvError as err:
        raise LabError(str(err)) from None
    console.print(f"the VMs' venv (for /opt/podnet) {'built' if built else 'reused'}: {venv}")
    try:
        staged = stage(topology)
    except StagingError as err:
        raise LabError(str(err)) from None
    console.print(f"staged {', '.join(sorted(p.stem for p in staged.glob('*.tar')))} in {staged}")
    console.print(f"now: LAB_TOPOLOGY={topology.name} vagrant up   (then: vagrant ssh node1)")
    return 0


def cmd_box_build(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise LabError("building the box needs root (debootstrap, loop devices): run it as root")
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


def add_commands(sub: Any) -> None:
    """Add this backend's commands to the `lab` parser's subcommands."""
    wh = sub.add_parser(
        "wheelhouse",
        help="build podnet's wheelhouse and the VMs' venv, and stage each VM's provisioning files (for `vagrant up`)",
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
