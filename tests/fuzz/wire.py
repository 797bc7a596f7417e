"""One HTTP request as bytes on a unix socket, and which of the agent's routes served what."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.interfaces import RawReply, raw_exchange


@dataclass
class HTTPCase:
    method: str
    target: str  # as it goes on the request line (already percent-encoded)
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    framing: str = "ok"  # "ok"; "short": the body never arrives in full; "malformed": no HTTP client sends it
    raw: bytes | None = None  # the exact bytes, for framing "malformed"

    def wire(self) -> bytes:
        if self.raw is not None:
            return self.raw
        head = f"{self.method} {self.target} HTTP/1.1\r\nHost: podnet\r\nConnection: close\r\n"
        length = len(self.body) + (64 if self.framing == "short" else 0)
        head += "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        head += f"Content-Length: {length}\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def describe(self) -> str:
        if self.raw is not None:
            return f"raw {self.raw[:120]!r}"
        headers = "".join(f" [{n}: {v[:40]!r}]" for n, v in self.headers if n != "Content-Type")
        return f"{self.method} {self.target[:160]}{headers} body={self.body[:160]!r}"


def send(socket_path: str, case: HTTPCase, timeout: float) -> RawReply:
    return raw_exchange(socket_path, case.wire(), timeout=timeout)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteLog:
    """An aiohttp middleware noting the (method, route) of every request the agent served, in order:
    the first is what a test sent; any more came from the agent's own clients (the CNI plugin logic),
    from the libnetwork plugin, or were smuggled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def take(self) -> list[tuple[str, str]]:
        with self.lock:
            seen, self.seen = self.seen, []
        return seen

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else f"(no route: {request.path})"
        with self.lock:
            self.seen.append((request.method, route))
        return await handler(request)
