"""A real agent (SQLite store, fake kernel) serving its API on a unix socket in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.typedefs import Middleware

from podnet.agent.config import AgentConfig
from podnet.agent.server import AgentAPI, make_app, serve
from podnet.agent.service import Agent
from podnet.api.client import AgentClient
from podnet.kvstore import open_store
from tests.fakes import FakeDatapath


@dataclass
class RunningAgent:
    agent: Agent
    datapath: FakeDatapath
    client: AgentClient
    socket: str
    api: AgentAPI


@contextmanager
def running_agent(
    tmp: Path, *, body_timeout_s: float = 10.0, middlewares: Sequence[Middleware] = (), **config: object
) -> Iterator[RunningAgent]:
    """`middlewares` run inside the agent's own (a test observing what the agent serves)."""
    socket = str(tmp / "agent.sock")
    settings: dict[str, object] = {"node_name": "node1", "socket": socket, "store": f"sqlite://{tmp}/state.db"}
    settings.update(config)
    cfg = AgentConfig(**settings)  # type: ignore[arg-type]
    socket = cfg.socket
    store = open_store(cfg.store)
    datapath = FakeDatapath()
    agent = Agent(cfg, store, datapath)
    agent.start()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app, api = make_app(agent, body_timeout_s=body_timeout_s)
    app.middlewares.extend(middlewares)
    runner = asyncio.run_coroutine_threadsafe(serve(app, socket), loop).result(10)
    try:
        yield RunningAgent(agent, datapath, AgentClient(socket), socket, api)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()
