"""podnet-docker: the libnetwork remote network + IPAM driver for dockerd, as a process of its own
that calls the agent over its socket (`podnet-agent --docker-plugin-socket` serves the same plugin
inside the agent, without that hop).

podnet-docker [--socket /run/docker/plugins/podnet.sock]
              [--agent-socket /var/run/podnet/podnet.sock]
              [--docker-host unix:///var/run/docker.sock]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from podnet.api.client import DEFAULT_SOCKET, AgentClient
from podnet.docker.service import DEFAULT_DOCKER_HOST, DEFAULT_PLUGIN_SOCKET, PluginService, label_resolver
from podnet.errors import PodnetError

__all__ = ["label_resolver", "main"]
log = logging.getLogger("podnet.docker")


async def run(args: argparse.Namespace) -> None:
    service = PluginService(
        AgentClient(args.agent_socket),
        args.socket,
        docker_host=args.docker_host,
        gc_interval_s=args.gc_interval,
        gc_grace_s=args.gc_grace,
    )
    await service.start()
    log.info(
        "serving the libnetwork plugin on %s (agent %s, dockerd %s)", args.socket, args.agent_socket, args.docker_host
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="podnet-docker", description="podnet's libnetwork remote network + IPAM driver")
    p.add_argument("--socket", default=DEFAULT_PLUGIN_SOCKET, help=f"plugin socket (default {DEFAULT_PLUGIN_SOCKET})")
    p.add_argument("--agent-socket", default=DEFAULT_SOCKET, help=f"agent API socket (default {DEFAULT_SOCKET})")
    p.add_argument("--docker-host", default=DEFAULT_DOCKER_HOST, help="dockerd's API, for labels and GC")
    p.add_argument("--gc-interval", type=float, default=30.0, metavar="SECONDS")
    p.add_argument(
        "--gc-grace", type=float, default=60.0, metavar="SECONDS", help="leave endpoints younger than this alone"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        asyncio.run(run(args))
    except PodnetError as err:
        print(f"podnet-docker: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
