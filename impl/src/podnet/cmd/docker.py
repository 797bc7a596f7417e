"""podnet-docker: the libnetwork remote network + IPAM driver for dockerd.

podnet-docker [--socket /run/docker/plugins/podnet.sock]
              [--agent-socket /var/run/podnet/podnet.sock]
              [--docker-host unix:///var/run/docker.sock]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from podnet.api.client import DEFAULT_SOCKET, AgentClient
from podnet.docker.libnetwork import Handlers
from podnet.docker.reconcile import DockerWatcher
from podnet.docker.server import AfterCall, PluginServer
from podnet.errors import PodnetError
from podnet.private import bind_socket

log = logging.getLogger("podnet.docker")
DEFAULT_PLUGIN_SOCKET = "/run/docker/plugins/podnet.sock"


def label_resolver(watcher: DockerWatcher, loop: asyncio.AbstractEventLoop) -> AfterCall:
    """After each Join, look up the container's labels from dockerd in the background.

    Runs inside the plugin server's error handling, and only after a Join that
    succeeded, so its NetworkID and EndpointID were checked."""
    tasks: set[asyncio.Future[Any]] = set()
    resolvers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="labels")

    def after_call(path: str, body: Any, result: Any) -> None:
        if path != "/NetworkDriver.Join" or not isinstance(body, dict):
            return
        sandbox = body.get("SandboxKey")
        task = loop.run_in_executor(
            resolvers,
            watcher.resolve_labels,
            str(body["NetworkID"]),
            str(body["EndpointID"]),
            sandbox if isinstance(sandbox, str) else None,
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return after_call


async def run(args: argparse.Namespace) -> None:
    agent = AgentClient(args.agent_socket)
    watcher = DockerWatcher(agent, args.docker_host, grace_s=args.gc_grace)
    loop = asyncio.get_running_loop()
    server = PluginServer(Handlers(agent), label_resolver(watcher, loop))
    runner = server.runner()
    await runner.setup()
    path = Path(args.socket)
    sock = bind_socket(path, "docker plugin")  # 0600 from the start; only a dead socket is replaced
    await web.SockSite(runner, sock).start()
    log.info("serving the libnetwork plugin on %s (agent %s, dockerd %s)", path, args.agent_socket, args.docker_host)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), args.gc_interval)
        if stop.is_set():
            break
        try:
            await loop.run_in_executor(None, watcher.reconcile)
        except PodnetError as err:
            log.warning("reconcile (labels, garbage): %s", err)
        except Exception:  # a bad pass must never take the plugin down: dockerd still needs it
            log.exception("reconcile (labels, garbage) failed; trying again in %.0f s", args.gc_interval)
    await runner.cleanup()
    path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="podnet-docker", description="podnet's libnetwork remote network + IPAM driver")
    p.add_argument("--socket", default=DEFAULT_PLUGIN_SOCKET, help=f"plugin socket (default {DEFAULT_PLUGIN_SOCKET})")
    p.add_argument("--agent-socket", default=DEFAULT_SOCKET, help=f"agent API socket (default {DEFAULT_SOCKET})")
    p.add_argument("--docker-host", default="unix:///var/run/docker.sock", help="dockerd's API, for labels and GC")
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
