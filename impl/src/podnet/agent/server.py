"""The agent's REST API on a unix socket (aiohttp).

Whatever a client sends, the answer is `{code, message}` with a 4xx/5xx status,
never a hang: a body must arrive within `body_timeout_s` (408), JSON that nests
too deeply or holds lone surrogates is a 400, store failures are 503s, and
`GET /v1/healthz` answers within about a second even while the worker that
serialises every other call is stuck (on a locked store, say).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from podnet import jsonsafe, timing
from podnet.agent.config import describe_validation_error
from podnet.agent.errors import BadRequestError
from podnet.agent.health import health_while_busy
from podnet.agent.local import run_cni_here
from podnet.agent.replies import error_response
from podnet.agent.service import Agent
from podnet.api import models as m
from podnet.api.routes import ROUTES
from podnet.errors import PodnetError, Reason, http_status
from podnet.policy.model import PolicyRule
from podnet.private import bind_socket

log = logging.getLogger("podnet.agent.api")


@functools.cache
def rules_adapter() -> TypeAdapter[list[PolicyRule]]:
    return TypeAdapter(list[PolicyRule])  # built on the first policy import, not at start


BODY_TIMEOUT_S = 10.0  # a client on this socket sends its body at once
HEALTH_WAIT_S = 1.0  # how long healthz waits for the worker before answering without it
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes {code, message, reason}: the error's own reason decides the HTTP status."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        text = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        reason = Reason.bad_request if exc.status < 500 else Reason.internal
        if exc.status == 404:
            text, reason = f"no such API path: {request.method} {request.path}", Reason.not_found
        elif exc.status == 405:
            text = f"method {request.method} not allowed on {request.path}"
        return error_response(exc.status, text or exc.reason, reason)
    except ValidationError as err:
        return error_response(
            400,
            describe_validation_error(err, f"invalid request body ({request.method} {request.path})"),
            Reason.bad_request,
        )
    except PodnetError as err:
        status = http_status(err.reason)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, err)
        return error_response(status, str(err), err.reason)
    except Exception as err:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error: {type(err).__name__}: {err} (see the agent log)", Reason.internal)


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the whole body first, within the app's body timeout: a lying Content-Length gets a 408."""
    if request.can_read_body:
        timeout = request.app[BODY_TIMEOUT]
        try:
            await asyncio.wait_for(request.read(), timeout)
        except TimeoutError:
            response = error_response(
                http_status(Reason.request_timeout),
                f"the request body did not arrive within {timeout:g} s ({request.method} {request.path})",
                Reason.request_timeout,
            )
            response.force_close()
            return response
    return await handler(request)


def _json(model: m.Model | list[Any], status: int = 200) -> web.Response:
    if isinstance(model, list):
        return web.json_response([x.wire() for x in model], status=status)
    return web.json_response(model.wire(), status=status)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return jsonsafe.loads(raw or b"null")
    except jsonsafe.JSONInputError as err:
        raise BadRequestError(f"request body is not valid JSON: {err}") from None


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    data = await _json_body(request)
    if not isinstance(data, dict):
        raise BadRequestError(f"request body must be a JSON object, got {type(data).__name__}")
    return model.model_validate(data)


def _owner(request: web.Request) -> str:
    owner = request.query.get("owner", "").strip()
    if not owner:
        raise BadRequestError("missing query parameter owner (who holds the IP, e.g. owner=default/app1)")
    return owner


def _flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequestError(f"invalid {name} {value!r}: expected true or false")


def _endpoint_id(request: web.Request) -> str:
    try:
        return m.validate_endpoint_id(request.match_info["id"])
    except ValueError as err:
        raise BadRequestError(str(err)) from None


def _network_id(request: web.Request) -> str:
    try:
        return m.validate_endpoint_id(request.match_info["id"])
    except ValueError as err:
        raise BadRequestError(str(err).replace("endpoint id", "docker network id")) from None


class AgentAPI:
    """HTTP handlers. Every agent call runs on one worker thread, in order:
    that serialises state changes, and keeps pyroute2's own event loop out of
    aiohttp's."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent")
        self.cni_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cni")
        self.probe_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")
        self.closing = False  # set on shutdown: streams end
        self.health_wait_s = HEALTH_WAIT_S
        self.busy: tuple[float, str] | None = None  # (since, what) while the worker runs a call
        self.last_health: m.Healthz | None = None
        self.health_pending: asyncio.Future[m.Healthz] | None = None

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        what = getattr(fn, "__name__", "a call")

        def run() -> T:
            self.busy = (time.monotonic(), what)
            try:
                return fn(*args, **kwargs)
            finally:
                self.busy = None

        return await asyncio.get_running_loop().run_in_executor(self.worker, run)

    async def healthz(self, request: web.Request) -> web.Response:
        return _json(await self.answer_healthz())

    async def answer_healthz(self) -> m.Healthz:
        """From the worker when it answers within `health_wait_s`; else without it, saying why."""
        work = self.health_pending
        if work is None or work.done():  # one at a time on the worker, however often it is polled
            work = self.health_pending = asyncio.ensure_future(self.call(self.agent.healthz))
            work.add_done_callback(self._keep_health)
        try:
            return await asyncio.wait_for(asyncio.shield(work), self.health_wait_s)
        except TimeoutError:
            return await self._health_while_busy()

    def _keep_health(self, work: asyncio.Future[m.Healthz]) -> None:
        if not work.cancelled() and work.exception() is None:
            self.last_health = work.result()

    async def _health_while_busy(self) -> m.Healthz:
        busy = self.busy
        waiting = (
            f"the agent's worker has been busy for {time.monotonic() - busy[0]:.1f} s with {busy[1]}"
            if busy
            else "the agent's worker is busy"
        )
        store = self.agent.store
        probe = asyncio.get_running_loop().run_in_executor(self.probe_pool, store.revision)
        try:
            revision = await asyncio.wait_for(probe, self.health_wait_s)
        except TimeoutError:
            store_health = m.ComponentHealth(
                state="failure",
                message=f"{store.url} did not answer within {self.health_wait_s:g} s; {waiting}",
                reason=Reason.store_unavailable,
            )
        except PodnetError as err:
            store_health = m.ComponentHealth(state="failure", message=f"{err}; {waiting}", reason=err.reason)
        else:
            store_health = m.ComponentHealth(
                state="degraded", message=f"{store.url} at revision {revision}; {waiting}: calls queue behind it"
            )
        return health_while_busy(self.agent.config.node_name, self.last_health, store_health, waiting)

    async def config(self, request: web.Request) -> web.Response:
        c = self.agent.config
        view = m.AgentConfigView(
            node_name=c.node_name,
            socket=c.socket,
            store=self.agent.store.url,
            cluster_cidrs=c.cluster_cidrs,
            mask_size=c.mask_size,
            pod_cidr=self.agent.pod_cidr,
            router_ip=self.agent.router_ip,
            mtu=c.mtu,
            datapath=self.agent.datapath.mode,
            ip_expiration_s=c.ip_expiration_s,
            notes=self.agent.pool.notes,
        )
        return _json(view)

    async def node(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.node_info))

    async def ipam_allocate(self, request: web.Request) -> web.Response:
        expiration = _flag(request.headers.get("Expiration"), "Expiration header")
        result = await self.call(
            self.agent.ipam_allocate,
            _owner(request),
            family=request.query.get("family", "ipv4"),
            expiration=expiration,
            pool=request.query.get("pool") or None,
        )
        return _json(result, 201)

    async def ipam_state(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.ipam_state))

    async def ipam_allocate_ip(self, request: web.Request) -> web.Response:
        expiration = _flag(request.headers.get("Expiration"), "Expiration header")
        owner = _owner(request)
        result = await self.call(self.agent.ipam_allocate_ip, request.match_info["ip"], owner, expiration=expiration)
        return _json(result, 201)

    async def ipam_release(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.ipam_release, request.match_info["ip"]))

    async def endpoint_list(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.endpoint_list))

    async def endpoint_get(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.endpoint_get, _endpoint_id(request)))

    async def endpoint_interface(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.endpoint_interface, _endpoint_id(request)))

    async def endpoint_create(self, request: web.Request) -> web.Response:
        endpoint_id = _endpoint_id(request)
        body = await _body(request, m.EndpointChangeRequest)
        return _json(await self.call(self.agent.endpoint_create, endpoint_id, body), 201)

    async def endpoint_patch(self, request: web.Request) -> web.Response:
        endpoint_id = _endpoint_id(request)
        body = await _body(request, m.EndpointChangeRequest)
        return _json(await self.call(self.agent.endpoint_patch, endpoint_id, body))

    async def endpoint_delete(self, request: web.Request) -> web.Response:
        endpoint_id = _endpoint_id(request)
        release = _flag(request.query.get("release-ip"), "release-ip")
        return _json(await self.call(self.agent.endpoint_delete, endpoint_id, release_ip=release))

    async def network_list(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.network_list))

    async def network_put(self, request: web.Request) -> web.Response:
        network_id = _network_id(request)
        body = await _body(request, m.DockerNetwork)
        if body.id != network_id:
            raise BadRequestError(f"network id in the body ({body.id}) differs from the path")
        return _json(await self.call(self.agent.network_put, body), 201)

    async def network_delete(self, request: web.Request) -> web.Response:
        await self.call(self.agent.network_delete, _network_id(request))
        return web.Response(status=204)

    async def bgp(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.bgp_status))

    async def cni(self, request: web.Request) -> web.Response:
        """The plugin logic, inside this agent (podnet.agent.local: no HTTP call back into it)."""
        timed = timing.start("cni", log)
        status, text = await run_cni_here(self, self.cni_pool, await _body(request, m.CNICall), timed)
        return web.Response(text=text, content_type="application/json", headers={"Podnet-CNI-Exit": str(status)})

    async def policy_get(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.policy_state))

    async def policy_put(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not data:
            raise BadRequestError("request body must be a policy rule or a non-empty JSON array of rules")
        rules = rules_adapter().validate_python(data)
        return _json(await self.call(self.agent.policy_put, rules))

    async def policy_delete(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.policy_delete, request.match_info["name"]))

    async def policy_delete_all(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.policy_delete, None))

    async def identity_list(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.identity_list))

    async def bpf_maps(self, request: web.Request) -> web.Response:
        return _json(await self.call(self.agent.bpf_maps))

    async def monitor(self, request: web.Request) -> web.StreamResponse:
        # Everything is checked before the 200 goes out: an error after it could only be
        # written into the stream.
        kind = request.query.get("type", "drop")
        if kind not in ("drop", "trace", "all"):
            raise BadRequestError(f"invalid type {kind!r}: expected drop, trace or all")
        recent = _flag(request.query.get("recent"), "recent")
        monitor = self.agent.monitor
        if not monitor.available:
            await self.call(self.agent.require_bpf)
        types = frozenset(("drop", "trace")) if kind == "all" else frozenset((kind,))
        sub = monitor.subscribe(types)  # past the cap: TooManySubscribersError, a 429
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await response.prepare(request)
            if recent:
                for event in list(monitor.recent):
                    await response.write(json.dumps(event.wire()).encode() + b"\n")
            # aiohttp does not cancel a handler whose client left: look every second,
            # or a stream nobody reads would hold up the agent's shutdown.
            while not self.closing and request.transport is not None and not request.transport.is_closing():
                try:
                    event = await asyncio.wait_for(sub.queue.get(), 1.0)
                except TimeoutError:
                    continue
                await response.write(json.dumps(event.wire()).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            monitor.unsubscribe(sub)
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        from podnet.api.openapi import build  # pydantic's schema generator: only when asked

        return web.json_response(build())


def make_app(agent: Agent, *, body_timeout_s: float = BODY_TIMEOUT_S) -> tuple[web.Application, AgentAPI]:
    api = AgentAPI(agent)
    app = web.Application(middlewares=[errors_middleware, body_middleware], client_max_size=1 << 20)
    app[BODY_TIMEOUT] = body_timeout_s
    for route in ROUTES:
        app.router.add_route(route.method, route.path, getattr(api, route.name))
    app.router.add_get("/v1/openapi.json", api.openapi)
    return app, api


async def serve(app: web.Application, path: str) -> web.AppRunner:
    """Serve `app` on a socket only root can use (see podnet.private); refuse if another agent serves it."""
    sock = bind_socket(path, "agent")
    # No lingering: a request whose body never came is closed once answered, not read for 10 s more.
    runner = web.AppRunner(app, access_log=None, lingering_time=0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
