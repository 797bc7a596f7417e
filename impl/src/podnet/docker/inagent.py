"""The libnetwork plugin served by the agent itself (`podnet-agent --docker-plugin-socket PATH`).

The plugin's handlers call the agent in-process: a call that needs the agent runs whole on the
agent's worker (one job, as an HTTP call's agent work would run: state changes stay serialised),
its agent calls made inline (`LocalAgentCalls`, failing as the HTTP client would), so a
CreateEndpoint is one hop (dockerd → this socket), not two processes and two HTTP hops. A call
still queued when its deadline passes never runs, and is answered with an error. Calls that need
no agent (Activate, capabilities) are answered on the event loop, however busy the worker is. The
label resolver and the reconciler, on threads of their own, submit each of their calls to the
worker. Imported only when the option is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from podnet import timing
from podnet.agent.config import AgentConfig
from podnet.agent.local import Host, LocalAgentCalls, in_process_calls, inline, no_health
from podnet.api.client import DEFAULT_TIMEOUT_S, AgentClient
from podnet.docker.libnetwork import Handlers, PluginError
from podnet.docker.server import PluginServer, Run
from podnet.docker.service import PluginService
from podnet.private import bind_socket

log = logging.getLogger("podnet.docker")
WAITING_CALL_TIMEOUT_S = 5.0  # the waiting agent answers at once, from memory


#: Calls answered without the agent (constants, or checks of the request alone): on the event loop.
AGENTLESS = frozenset(
    {
        "/Plugin.Activate",
        "/NetworkDriver.GetCapabilities",
        "/NetworkDriver.Leave",
        "/NetworkDriver.ProgramExternalConnectivity",
        "/NetworkDriver.RevokeExternalConnectivity",
        "/NetworkDriver.DiscoverNew",
        "/NetworkDriver.DiscoverDelete",
        "/NetworkDriver.AllocateNetwork",
        "/NetworkDriver.FreeNetwork",
        "/IpamDriver.GetCapabilities",
        "/IpamDriver.GetDefaultAddressSpaces",
        "/IpamDriver.ReleasePool",
    }
)


def on_worker(host: Host, timeout: float) -> Run:
    """Runs a handler on the agent's worker, waiting at most `timeout` for it."""

    async def run(path: str, handler: Callable[[Any], Any], body: Any, timed: timing.Phases | None) -> Any:
        if path in AGENTLESS:
            return handler(body)

        def job() -> Any:
            if timed is not None:
                timed.mark("queue")
            host.busy = (time.monotonic(), path.lstrip("/"))
            try:
                return handler(body)
            finally:
                host.busy = None

        try:
            result = await asyncio.wait_for(
                asyncio.wrap_future(host.worker.submit(timing.carried(job, timed))), timeout
            )
        except TimeoutError:  # still queued: cancelled, it never runs
            raise PluginError(
                f"{path.lstrip('/')}: podnet agent did not answer within {timeout:g} s: its worker is busy"
            ) from None
        if timed is not None:
            timed.mark("handback")
        return result

    return run


async def start_plugin(host: Host, config: AgentConfig) -> PluginService:
    """Serve the plugin socket of `config` for the agent `host` serves; `stop()` it before the agent."""
    assert config.docker_plugin_socket is not None
    if config.docker_plugin_log_level is not None:
        log.setLevel(config.docker_plugin_log_level.upper())  # podnet.docker and below: the plugin's
    service = PluginService(
        in_process_calls(host, asyncio.get_running_loop(), timeout=DEFAULT_TIMEOUT_S),
        config.docker_plugin_socket,
        docker_host=config.docker_host,
        gc_interval_s=config.docker_gc_interval_s,
        gc_grace_s=config.docker_gc_grace_s,
        handler_calls=LocalAgentCalls(host.agent, inline, no_health, timeout=DEFAULT_TIMEOUT_S),
        run=on_worker(host, DEFAULT_TIMEOUT_S),
    )
    await service.start()
    log.info(
        "serving the libnetwork plugin on %s (in the agent; dockerd %s)",
        config.docker_plugin_socket,
        config.docker_host,
    )
    return service


async def plugin_while_waiting(config: AgentConfig) -> web.BaseRunner:
    """The plugin socket while the agent waits for its pod CIDR (operator mode): dockerd may activate
    the plugin and learn what it implements, and every call that needs the agent is answered, in
    libnetwork's form, with why the node is not ready — the waiting agent's own answer, through its
    socket, as podnet-docker gets it. `cleanup()` the runner when the wait ends (the agent proper then
    serves the socket)."""
    assert config.docker_plugin_socket is not None
    server = PluginServer(Handlers(AgentClient(config.socket, timeout=WAITING_CALL_TIMEOUT_S)))
    runner = server.runner()
    await runner.setup()
    try:
        sock = bind_socket(Path(config.docker_plugin_socket), "docker plugin")
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("serving the libnetwork plugin on %s while the node waits for its pod CIDR", config.docker_plugin_socket)
    return runner
