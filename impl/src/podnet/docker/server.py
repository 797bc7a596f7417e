"""HTTP side of the docker plugin: dockerd POSTs JSON to /<Interface>.<Method>.

Errors go out as HTTP 500 with {"Err": "…"} (dockerd ignores an Err in a 200
IPAM reply); a body that is not JSON is a 400 and an unknown method a 404,
both with an Err, and the plugin keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from podnet.docker.libnetwork import Handlers, method_table
from podnet.errors import PodnetError

log = logging.getLogger("podnet.docker")
CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"

AfterCall = Callable[[str, Any, Any], None]


def reply(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=CONTENT_TYPE)


class PluginServer:
    def __init__(self, handlers: Handlers, after_call: AfterCall | None = None):
        self.methods = method_table(handlers)
        self.after_call = after_call
        # Agent calls block: run them off the event loop, a few at a time.
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="plugin")

    async def dispatch(self, request: web.Request) -> web.Response:
        path = request.path
        handler = self.methods.get(path)
        if handler is None:
            return reply(
                {"Err": f"podnet: unknown method {path} (this plugin implements NetworkDriver and IpamDriver)"}, 404
            )
        if request.method != "POST":
            return reply({"Err": f"podnet: {path} takes POST, not {request.method}"}, 405)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as err:
            return reply({"Err": f"podnet: request body of {path} is not valid JSON: {err}"}, 400)
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.pool, handler, body)
        except PodnetError as err:
            log.warning("%s failed: %s", path, err)
            return reply({"Err": f"podnet: {err}"}, 500)
        except Exception as err:
            log.exception("%s failed", path)
            return reply({"Err": f"podnet: internal error in {path}: {type(err).__name__}: {err}"}, 500)
        log.debug("%s -> %s", path, result)
        if self.after_call is not None:
            self.after_call(path, body, result)
        return reply(result)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app
