"""The agent's API called from inside the agent: what the C shim's `POST /v1/cni` runs the plugin
logic with (`podnet.cni.plugin.AgentCalls`), without an HTTP hop back into the same process.

Each call runs on the agent's worker, like an HTTP call would (state changes stay serialised),
and comes back as the API's JSON, or fails as the HTTP client would have seen it: `AgentError`
with the status and reason the server would have answered, `AgentTimeoutError` when the
operation's deadline passes first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from podnet import timing
from podnet.agent.config import describe_validation_error
from podnet.agent.errors import BadRequestError
from podnet.agent.service import Agent
from podnet.api import models as m
from podnet.api.client import AgentError, AgentTimeoutError
from podnet.cni import spec
from podnet.cni.spec import CNIError, NetConf
from podnet.errors import PodnetError, Reason, http_status

log = logging.getLogger("podnet.agent.api")
T = TypeVar("T")

#: Runs `fn(*args)` on the agent's worker and waits at most `timeout` seconds for it.
Submit = Callable[..., Any]


class Host(Protocol):
    """What of the HTTP server (`AgentAPI`) the in-process calls use: its agent, its worker
    (every call runs there, in order), the worker's busy marker, and healthz as served."""

    agent: Agent
    worker: ThreadPoolExecutor
    busy: tuple[float, str] | None

    async def answer_healthz(self) -> m.Healthz: ...


def submit_to_worker(host: Host, timeout: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn` on the worker, from another thread (not the event loop's), waiting at most `timeout`."""
    what = getattr(fn, "__name__", "a call")
    timed = timing.current()

    def run() -> T:
        host.busy = (time.monotonic(), what)
        try:
            if timed is None:
                return fn(*args, **kwargs)
            timed.mark("queue")  # waiting for the worker
            with timing.using(timed):
                return fn(*args, **kwargs)
        finally:
            host.busy = None

    result = host.worker.submit(run).result(timeout)
    timing.mark("handback")  # the worker's answer reaching the caller's thread
    return result


#: What the plugin does with its agent calls alone: the whole call runs on the worker, as one job.
ON_WORKER = {"ADD": "allocating an IP", "DEL": "deleting the endpoint", "CHECK": "looking up the endpoint"}


async def run_cni_here(
    host: Host, pool: ThreadPoolExecutor, call: m.CNICall, timed: timing.Phases | None
) -> tuple[int, str]:
    """One `POST /v1/cni`: (the plugin's exit status, what it prints), calling this agent directly.

    ADD, DEL and CHECK run whole on the worker (one job: no thread hop per agent call, and a call
    still queued when its deadline passes never runs); the others on `pool`'s threads, each agent
    call on the worker (STATUS's healthz waits for the worker only so long). `timed` gets the
    call's phases, logged at the end."""
    from podnet.cmd.cni import budget_of
    from podnet.cmd.cni import run as run_cni

    loop = asyncio.get_running_loop()
    command = call.env.get("CNI_COMMAND", "?")
    if timed is not None:
        timed.what = f"cni {command} {call.env.get('CNI_CONTAINERID', '?')}"
        timed.mark("request")  # body read, parsed, validated
    stdin = call.stdin.encode()
    conf = _conf(stdin) if command in ON_WORKER else None
    if conf is None:
        status, output = await loop.run_in_executor(
            pool, timing.carried(run_cni, timed), stdin, call.env, local_calls(host, loop)
        )
    else:
        budget = budget_of(conf)
        deadline = time.monotonic() + budget

        def job() -> tuple[int, dict[str, object] | None, list[str]]:
            if timed is not None:
                timed.mark("queue")
            host.busy = (time.monotonic(), f"CNI {command}")
            try:
                waits: list[str] = []  # a DEL's endpoint: its veth waited for below, off the worker
                status, output = run_cni(
                    stdin,
                    call.env,
                    lambda *_: LocalAgentCalls(
                        host.agent, inline, no_health, timeout=budget, deadline=deadline, deleted=waits
                    ),
                    conf=conf,
                )
                return status, output, waits
            finally:
                host.busy = None

        waits: list[str] = []
        try:
            status, output, waits = await asyncio.wait_for(
                asyncio.wrap_future(host.worker.submit(timing.carried(job, timed))), budget
            )
        except TimeoutError:  # still queued: cancelled, it never runs
            status, output = 1, _busy(conf.cni_version, budget, ON_WORKER[command])
        if timed is not None:
            timed.mark("handback")  # the worker's answer reaching the event loop
        if waits:  # a DEL answers once the pod's interface is gone (the runtime may ADD it again at once)
            await loop.run_in_executor(pool, host.agent.wait_endpoints_deleted, waits)
            if timed is not None:
                timed.mark("datapath: deleted")
    text = json.dumps(output) + "\n" if output is not None else ""
    if timed is not None:
        timed.mark("reply")
        log.debug("%s", timed.summary())
    return status, text


def _conf(stdin: bytes) -> NetConf | None:
    try:
        return NetConf.parse(stdin)
    except CNIError:
        return None  # the plugin says what is wrong with it


def inline(timeout: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)  # already on the worker


def no_health(timeout: float) -> dict[str, Any]:
    raise AssertionError("healthz from the worker would wait for itself")  # STATUS runs on the pool


def _busy(version: str, budget: float, what: str) -> dict[str, object]:
    message = f"podnet agent did not answer within {budget:g} s: its worker is busy"
    return CNIError(spec.TRY_AGAIN_LATER, message, what).to_json(version)


def in_process_calls(host: Host, loop: asyncio.AbstractEventLoop, *, timeout: float) -> LocalAgentCalls:
    """This agent's API for code on other threads than the loop's and the worker's (the in-agent
    docker plugin's): each call on the worker, waiting at most `timeout` for it."""
    return local_calls(host, loop)("", timeout, None)


def local_calls(host: Host, loop: asyncio.AbstractEventLoop) -> Callable[[str, float, float | None], LocalAgentCalls]:
    """How `podnet.cmd.cni.run` reaches this agent from the `/v1/cni` handler's threads."""

    def health(timeout: float) -> dict[str, Any]:
        async def answer() -> dict[str, Any]:
            return (await host.answer_healthz()).wire()

        return asyncio.run_coroutine_threadsafe(answer(), loop).result(timeout)

    def submit(timeout: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return submit_to_worker(host, timeout, fn, *args, **kwargs)

    def connect(socket_path: str, timeout: float, deadline: float | None) -> LocalAgentCalls:
        return LocalAgentCalls(host.agent, submit, health, timeout=timeout, deadline=deadline)

    return connect


class LocalAgentCalls:
    """`AgentCalls` on this process's agent. `deadline` (time.monotonic()) is the operation's."""

    def __init__(
        self,
        agent: Agent,
        submit: Submit,
        health: Callable[[float], dict[str, Any]],
        *,
        timeout: float,
        deadline: float | None = None,
        deleted: list[str] | None = None,
    ):
        """`deleted`: a runtime's DEL (release_ip) does not wait for the endpoint's veth to go; its id is
        added there, for the caller to wait for off the agent's worker (`Agent.wait_endpoints_deleted`)."""
        self.agent = agent
        self.submit = submit
        self.health = health
        self.timeout = timeout
        self.deadline = deadline
        self.deleted = deleted

    def for_cleanup(self, timeout: float) -> LocalAgentCalls:
        return LocalAgentCalls(self.agent, self.submit, self.health, timeout=timeout, deleted=self.deleted)

    def _left(self) -> float:
        left = self.timeout if self.deadline is None else min(self.timeout, self.deadline - time.monotonic())
        if left <= 0:
            raise AgentTimeoutError(
                f"podnet agent: no time left for another call (the operation's deadline of {self.timeout:g} s has passed)"
            )
        return left

    def _run(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self.submit(self._left(), fn, *args, **kwargs)
        except FutureTimeout:
            raise AgentTimeoutError(
                f"podnet agent did not answer within {self.timeout:g} s: its worker is busy ({what})"
            ) from None
        except ValidationError as err:
            status = http_status(Reason.bad_request)
            raise AgentError(
                status, describe_validation_error(err, f"invalid request body ({what})"), Reason.bad_request
            ) from None
        except PodnetError as err:
            status = http_status(err.reason)
            if status >= 500:
                log.error("%s: %s", what, err)
            raise AgentError(status, str(err), err.reason) from None
        except Exception as err:
            log.exception("%s failed", what)
            raise AgentError(
                500, f"internal error: {type(err).__name__}: {err} (see the agent log)", Reason.internal
            ) from None

    @staticmethod
    def _endpoint_id(endpoint_id: str) -> str:
        try:
            return m.validate_endpoint_id(endpoint_id)
        except ValueError as err:
            raise AgentError(http_status(Reason.bad_request), str(err), Reason.bad_request) from None

    def ipam_allocate(self, owner: str, *, expiration: bool = False, pool: str | None = None) -> Any:
        def allocate() -> dict[str, Any]:
            return self.agent.ipam_allocate(owner.strip(), expiration=expiration, pool=pool).wire()

        if not owner.strip():
            raise AgentError(
                400, "missing query parameter owner (who holds the IP, e.g. owner=default/app1)", Reason.bad_request
            )
        return self._run("POST /v1/ipam", allocate)

    def ipam_allocate_ip(self, ip: str, owner: str, *, expiration: bool = False) -> Any:
        if not owner.strip():
            raise AgentError(
                400, "missing query parameter owner (who holds the IP, e.g. owner=default/app1)", Reason.bad_request
            )
        return self._run(
            f"POST /v1/ipam/{ip}",
            lambda: self.agent.ipam_allocate_ip(ip, owner.strip(), expiration=expiration).wire(),
        )

    def ipam_release(self, ip: str) -> Any:
        return self._run(f"DELETE /v1/ipam/{ip}", lambda: self.agent.ipam_release(ip).wire())

    def node(self) -> Any:
        return self._run("GET /v1/node", lambda: self.agent.node_info().wire())

    def endpoint_create(self, endpoint_id: str, body: dict[str, Any]) -> Any:
        endpoint_id = self._endpoint_id(endpoint_id)

        def create() -> dict[str, Any]:
            request = m.EndpointChangeRequest.model_validate(body)
            return self.agent.endpoint_create(endpoint_id, request).wire()

        return self._run(f"PUT /v1/endpoint/{endpoint_id}", create)

    def endpoint_patch(self, endpoint_id: str, body: dict[str, Any]) -> Any:
        endpoint_id = self._endpoint_id(endpoint_id)

        def patch() -> dict[str, Any]:
            request = m.EndpointChangeRequest.model_validate(body)
            return self.agent.endpoint_patch(endpoint_id, request).wire()

        return self._run(f"PATCH /v1/endpoint/{endpoint_id}", patch)

    def endpoint_get(self, endpoint_id: str) -> Any:
        endpoint_id = self._endpoint_id(endpoint_id)
        return self._run(f"GET /v1/endpoint/{endpoint_id}", lambda: self.agent.endpoint_get(endpoint_id).wire())

    def endpoint_interface(self, endpoint_id: str) -> Any:
        endpoint_id = self._endpoint_id(endpoint_id)
        return self._run(
            f"GET /v1/endpoint/{endpoint_id}/interface",
            lambda: self.agent.endpoint_interface(endpoint_id).wire(),
        )

    def endpoint_list(self) -> Any:
        return self._run("GET /v1/endpoint", lambda: [e.wire() for e in self.agent.endpoint_list()])

    def endpoint_delete(self, endpoint_id: str, *, release_ip: bool = False) -> Any:
        endpoint_id = self._endpoint_id(endpoint_id)
        defer = release_ip and self.deleted is not None
        answer = self._run(
            f"DELETE /v1/endpoint/{endpoint_id}",
            lambda: self.agent.endpoint_delete(endpoint_id, release_ip=release_ip, wait=not defer).wire(),
        )
        if defer and self.deleted is not None:
            self.deleted.append(endpoint_id)
        return answer

    @staticmethod
    def _network_id(network_id: str) -> str:
        try:
            return m.validate_endpoint_id(network_id)
        except ValueError as err:
            message = str(err).replace("endpoint id", "docker network id")
            raise AgentError(http_status(Reason.bad_request), message, Reason.bad_request) from None

    def network_put(self, network_id: str, body: dict[str, Any]) -> Any:
        network_id = self._network_id(network_id)

        def put() -> dict[str, Any]:
            network = m.DockerNetwork.model_validate(body)
            if network.id != network_id:
                raise BadRequestError(f"network id in the body ({network.id}) differs from the path")
            return self.agent.network_put(network).wire()

        return self._run(f"PUT /v1/docker/network/{network_id}", put)

    def network_delete(self, network_id: str) -> None:
        network_id = self._network_id(network_id)
        self._run(f"DELETE /v1/docker/network/{network_id}", lambda: self.agent.network_delete(network_id))

    def network_list(self) -> Any:
        return self._run("GET /v1/docker/network", lambda: [n.wire() for n in self.agent.network_list()])

    def healthz(self) -> Any:
        """As `GET /v1/healthz` answers: without the worker when it is busy for too long."""
        try:
            return self.health(self._left())
        except FutureTimeout:
            raise AgentTimeoutError(f"podnet agent did not answer healthz within {self.timeout:g} s") from None
