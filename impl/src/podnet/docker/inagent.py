"""The libnetwork plugin served by the agent itself (`podnet-agent --docker-plugin-socket PATH`).

The plugin's handlers and its reconciler call the agent in-process (`LocalAgentCalls`: each call
on the agent's worker, as an HTTP call would run, failing as the HTTP client would), so a
CreateEndpoint is one hop (dockerd → this socket), not two processes and two HTTP hops. Imported
only when the option is given.
"""

from __future__ import annotations

import asyncio
import logging

from podnet.agent.config import AgentConfig
from podnet.agent.local import Host, in_process_calls
from podnet.api.client import DEFAULT_TIMEOUT_S
from podnet.docker.service import PluginService

log = logging.getLogger("podnet.docker")


async def start_plugin(host: Host, config: AgentConfig) -> PluginService:
    """Serve the plugin socket of `config` for the agent `host` serves; `stop()` it before the agent."""
    assert config.docker_plugin_socket is not None
    if config.docker_plugin_log_level is not None:
        log.setLevel(config.docker_plugin_log_level.upper())  # podnet.docker and below: the plugin's
    calls = in_process_calls(host, asyncio.get_running_loop(), timeout=DEFAULT_TIMEOUT_S)
    service = PluginService(
        calls,
        config.docker_plugin_socket,
        docker_host=config.docker_host,
        gc_interval_s=config.docker_gc_interval_s,
        gc_grace_s=config.docker_gc_grace_s,
    )
    await service.start()
    log.info(
        "serving the libnetwork plugin on %s (in the agent; dockerd %s)",
        config.docker_plugin_socket,
        config.docker_host,
    )
    return service
