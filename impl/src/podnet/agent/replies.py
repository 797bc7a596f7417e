"""The agent API's error form, `{code, message, reason}`: shared by the server (agent/server.py)
and the healthz the agent serves while it waits for its pod CIDR (agent/waiting.py), which
answers before the agent proper (service, datapath, policy) is imported."""

from __future__ import annotations

from aiohttp import web

from podnet.api import models as m
from podnet.errors import Reason


def error_response(status: int, message: str, reason: Reason) -> web.Response:
    return web.json_response(m.Error(code=status, message=message, reason=reason).wire(), status=status)
