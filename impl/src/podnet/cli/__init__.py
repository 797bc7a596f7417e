"""The `podnet` command line (the `cilium` CLI analogue).

Subcommands live in modules named after them; each registers its parser and a
handler. Every `PodnetError` becomes one line on stderr and exit status 1 —
never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from podnet import __version__
from podnet.cli import agent_commands, bgp, bpf, cni, ipam, monitor, node, policy
from podnet.errors import PodnetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podnet", description="podnet: a Cilium-style container networking stack")
    parser.add_argument("--version", action="version", version=f"podnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    agent_commands.register(commands)
    ipam.register(commands)
    bgp.register(commands)
    node.register(commands)
    cni.register(commands)
    policy.register(commands)
    bpf.register(commands)
    monitor.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except PodnetError as err:
        print(f"podnet: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `podnet … | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
