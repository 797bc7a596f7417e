"""HTTP side of the docker plugin: dockerd POSTs JSON to /<Interface>.<Method>.

Errors go out as HTTP 500 with {"Err": "…"} (dockerd ignores an Err in a 200
IPAM reply); a body that is not JSON (or nests too deeply, or holds a lone
surrogate) is a 400, an unknown method a 404, a body that does not arrive in
`body_timeout_s` a 408, all with an Err, and the plugin keeps serving. What
runs after a call (`after_call`) runs inside the same error handling.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from podnet import jsonsafe, timing
from podnet.docker.libnetwork import Handlers, method_table
from podnet.errors import PodnetError

log = logging.getLogger("podnet.docker")
CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
BODY_TIMEOUT_S = 10.0  # dockerd sends a whole request at once

AfterCall = Callable[[str, Any, Any], None]
#: How a handler runs: (path, handler, body, the call's phases or None) -> its reply; by default on
#: the server's own threads.
Run = Callable[[str, Callable[[Any], Any], Any, "timing.Phases | None"], Awaitable[Any]]


def reply(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=CONTENT_TYPE)


class PluginServer:
    def __init__(
        self,
        handlers: Handlers,
        after_call: AfterCall | None = None,
        *,
        body_timeout_s: float = BODY_TIMEOUT_S,
        run: Run | None = None,
    ):
        self.methods = method_table(handlers)
        self.after_call = after_call
        self.body_timeout_s = body_timeout_s
        # Agent calls block: run them off the event loop, a few at a time.
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="plugin")
        self.run = run or self._in_pool

    async def _in_pool(self, path: str, handler: Callable[[Any], Any], body: Any, timed: timing.Phases | None) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, timing.carried(handler, timed), body)

    async def dispatch(self, request: web.BaseRequest) -> web.Response:
        path = request.path
        handler = self.methods.get(path)
        if handler is None:
            return reply(
                {"Err": f"podnet: unknown method {path} (this plugin implements NetworkDriver and IpamDriver)"}, 404
            )
        if request.method != "POST":
            return reply({"Err": f"podnet: {path} takes POST, not {request.method}"}, 405)
        try:
            if request.content.is_eof():  # all there (dockerd sends it at once): no timer, no task
                raw = await request.read()
            else:
                raw = await asyncio.wait_for(request.read(), self.body_timeout_s)
        except TimeoutError:
            response = reply(
                {"Err": f"podnet: the body of {path} did not arrive within {self.body_timeout_s:g} s"}, 408
            )
            response.force_close()
            return response
        except web.HTTPRequestEntityTooLarge as err:
            return reply({"Err": f"podnet: request body of {path} is too large: {err.text}"}, 413)
        try:
            body = jsonsafe.loads(raw) if raw.strip() else None
        except jsonsafe.JSONInputError as err:
            return reply({"Err": f"podnet: request body of {path} is not valid JSON: {err}"}, 400)
        timed = timing.start(f"docker {path}", log)  # at debug: where the call's time went, in one line
        if timed is not None:
            timed.mark("request")
        try:
            result = await self.run(path, handler, body, timed)
            log.debug("%s -> %s", path, result)
            if self.after_call is not None:
                self.after_call(path, body, result)
            text = json.dumps(result)
            if timed is not None:
                timed.mark("reply")
                log.debug("%s", timed.summary())
        except PodnetError as err:
            log.warning("%s failed: %s", path, err)
            return reply({"Err": f"podnet: {err}"}, 500)
        except Exception as err:
            log.exception("%s failed", path)
            return reply({"Err": f"podnet: internal error in {path}: {type(err).__name__}: {err}"}, 500)
        return web.Response(text=text, content_type=CONTENT_TYPE)

    def runner(self) -> web.BaseRunner:
        # aiohttp's low-level server: `dispatch` takes every path, without an Application's router and
        # middleware machinery (~0.15 ms of each call). No lingering: a request whose body never came
        # is closed once answered, not read for 10 s more. Bodies up to 1 MiB (BaseRequest's limit).
        return web.ServerRunner(web.Server(self.dispatch, access_log=None, lingering_time=0))
