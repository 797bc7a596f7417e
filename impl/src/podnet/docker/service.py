"""The libnetwork plugin as a service: its socket served, the container labels looked up after
each Join, and the periodic reconcile (labels missed, garbage dockerd forgot).

The same for both homes of the plugin: the standalone `podnet-docker` (its agent over HTTP,
`AgentClient`) and `podnet-agent --docker-plugin-socket` (the agent in-process,
`podnet.docker.inagent`).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from podnet.docker.calls import AgentCalls
from podnet.docker.libnetwork import Handlers
from podnet.docker.reconcile import DockerWatcher
from podnet.docker.server import AfterCall, PluginServer, Run
from podnet.errors import PodnetError
from podnet.private import bind_socket

log = logging.getLogger("podnet.docker")
DEFAULT_PLUGIN_SOCKET = "/run/docker/plugins/podnet.sock"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


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


class PluginService:
    """`start()` binds the socket (0600; only a dead socket is replaced) and starts the reconcile
    loop; `stop()` ends both and removes the socket."""

    def __init__(
        self,
        agent: AgentCalls,
        socket_path: str = DEFAULT_PLUGIN_SOCKET,
        *,
        docker_host: str = DEFAULT_DOCKER_HOST,
        gc_interval_s: float = 30.0,
        gc_grace_s: float = 60.0,
        handler_calls: AgentCalls | None = None,
        run: Run | None = None,
    ):
        """`handler_calls`, `run`: what the libnetwork handlers call the agent with and where they run
        (default: `agent`, on the plugin server's threads); the reconciler always uses `agent`."""
        self.agent = agent
        self.handler_calls = handler_calls or agent
        self.run = run
        self.path = Path(socket_path)
        self.docker_host = docker_host
        self.gc_interval_s = gc_interval_s
        self.watcher = DockerWatcher(agent, docker_host, grace_s=gc_grace_s)
        self._runner: web.BaseRunner | None = None
        self._reconciling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = PluginServer(Handlers(self.handler_calls), label_resolver(self.watcher, loop), run=self.run)
        runner = server.runner()
        await runner.setup()
        try:
            sock = bind_socket(self.path, "docker plugin")
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._reconciling = asyncio.create_task(self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.gc_interval_s)
            try:
                await loop.run_in_executor(None, self.watcher.reconcile)
            except PodnetError as err:
                log.warning("reconcile (labels, garbage): %s", err)
            except Exception:  # a bad pass must never take the plugin down: dockerd still needs it
                log.exception("reconcile (labels, garbage) failed; trying again in %.0f s", self.gc_interval_s)

    async def stop(self) -> None:
        if self._reconciling is not None:
            self._reconciling.cancel()
            await asyncio.gather(self._reconciling, return_exceptions=True)
            self._reconciling = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.path.unlink(missing_ok=True)
