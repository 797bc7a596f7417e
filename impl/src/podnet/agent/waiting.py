"""Before the operator assigns a pod CIDR: register, answer health with the reason, wait.

In `ipam_mode = "operator"` the agent registers its node (name, underlay IP)
and serves only `GET /v1/healthz` (state `failure`, IPAM saying what the
operator reported, e.g. the cluster pool is exhausted) until a pod CIDR shows
up in its node status. Every other API call answers 503 with the same reason.
A store it cannot reach (etcd down) is one more reason to wait, not to exit:
healthz says so (store `failure`, reason `store-unavailable`) and it retries.
The store is asked from a thread, so healthz answers while a call hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web

from podnet import timing
from podnet.agent.config import AgentConfig
from podnet.agent.replies import error_response
from podnet.api.models import ComponentHealth, Healthz
from podnet.errors import Reason, http_status
from podnet.kvstore import KVStore, KVStoreError
from podnet.operator.registry import node_status, register_node
from podnet.private import bind_socket

log = logging.getLogger("podnet.agent")


CLUSTER_POOL_EXHAUSTED = "ClusterPoolExhausted"  # the operator's condition reason


def waiting_reason(store: KVStore, node: str) -> tuple[str | None, str, Reason]:
    """(assigned pod CIDR or None, why not, the same for programs)."""
    status = node_status(store, node)
    if status is not None and status.pod_cidrs:
        return status.pod_cidrs[0], "", Reason.agent_not_ready
    if status is not None and status.condition is not None:
        reason = f"no pod CIDR: {status.condition.reason}: {status.condition.message}"
        if status.condition.reason == CLUSTER_POOL_EXHAUSTED:
            reason += "; give podnet-operator another --cluster-cidr or remove a node that is gone (`podnet node delete NAME`)"
            return None, reason, Reason.cluster_pool_exhausted
        return None, reason, Reason.agent_not_ready
    return None, "waiting for podnet-operator to assign a pod CIDR", Reason.agent_not_ready


async def wait_for_pod_cidr(
    config: AgentConfig, store: KVStore, stop: asyncio.Event, interval_s: float = 0.1
) -> str | None:
    assert config.node_ip is not None
    started = time.time()
    state = {"reason": "waiting for podnet-operator to assign a pod CIDR", "store": ""}
    code = {"reason": Reason.agent_not_ready}

    async def healthz(request: web.Request) -> web.Response:
        health = Healthz(
            state="failure",
            node=config.node_name,
            pod_cidr=None,
            store=(
                ComponentHealth(state="failure", message=state["store"], reason=Reason.store_unavailable)
                if state["store"]
                else ComponentHealth(state="ok", message=store.url)
            ),
            datapath=ComponentHealth(state="degraded", message="not set up until the node has a pod CIDR"),
            ipam=ComponentHealth(state="failure", message=state["reason"], reason=code["reason"]),
            endpoints=0,
            uptime_s=round(time.time() - started, 3),
        )
        return web.json_response(health.wire())

    async def other(request: web.Request) -> web.Response:
        message = f"node {config.node_name} is not ready: {state['reason']}"
        return error_response(http_status(Reason.agent_not_ready), message, Reason.agent_not_ready)

    app = web.Application()
    app.router.add_get("/v1/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", other)
    sock = bind_socket(config.socket, "agent")
    runner = web.AppRunner(app, access_log=None, lingering_time=0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    since = timing.since_exec()
    log.info(
        "serving healthz on %s until the node has a pod CIDR%s",
        config.socket,
        f", {since:.2f} s after exec" if since is not None else "",
    )
    plugin: web.BaseRunner | None = None
    if config.docker_plugin_socket:
        from podnet.docker.inagent import plugin_while_waiting  # only in this mode

        try:
            plugin = await plugin_while_waiting(config)
        except BaseException:
            await runner.cleanup()
            raise
    last = ""
    registered = False
    loop = asyncio.get_running_loop()
    node_ip = config.node_ip

    def poll() -> tuple[str | None, str, Reason]:
        nonlocal registered
        if not registered:
            register_node(store, config.node_name, node_ip)
            registered = True
        return waiting_reason(store, config.node_name)

    try:
        while not stop.is_set():
            try:
                # Off the event loop: healthz answers while a store call hangs (an etcd that does not
                # answer holds it for its whole timeout) or etcd's client is imported (the first call).
                cidr, reason, code["reason"] = await loop.run_in_executor(None, poll)
                state["store"] = ""
            except KVStoreError as err:
                cidr, reason, code["reason"] = None, f"cannot reach the cluster store ({err}); retrying", err.reason
                state["store"] = str(err)
            if cidr:
                log.info("the operator assigned pod CIDR %s to %s", cidr, config.node_name)
                return cidr
            state["reason"] = reason
            if reason != last:
                log.warning("node %s: %s", config.node_name, reason)
                last = reason
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
        return None
    finally:
        if plugin is not None:
            await plugin.cleanup()
        await runner.cleanup()
