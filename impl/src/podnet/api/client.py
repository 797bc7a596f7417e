"""A small synchronous client for the agent API over its unix socket.

Standard library only, and not even http.client: the CNI plugin is exec'd per
call and importing http.client (with the email package behind it) cost more
than the rest of the plugin. One request per connection (`Connection: close`),
so a response is simply everything up to EOF; the agent (aiohttp) always sends
a Content-Length. Errors come back as `AgentError` with the agent's message and
its machine-readable `reason` (switch on that); an agent that is not there is
`AgentUnreachableError` (reason `agent-unavailable`), naming the socket.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from podnet.errors import PodnetError, Reason

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

DEFAULT_SOCKET = "/var/run/podnet/podnet.sock"


class AgentError(PodnetError):
    def __init__(self, status: int, message: str, reason: Reason):
        super().__init__(message)
        self.status = status
        self.reason = reason

    @classmethod
    def from_reply(cls, status: int, data: Any, raw: bytes) -> AgentError:
        """From an error reply: {code, message, reason}, or whatever else answered."""
        if not isinstance(data, dict):
            return cls(status, raw.decode(errors="replace"), _fallback_reason(status))
        try:
            reason = Reason(str(data.get("reason")))
        except ValueError:
            reason = _fallback_reason(status)
        return cls(status, str(data.get("message", raw.decode(errors="replace"))), reason)


def _fallback_reason(status: int) -> Reason:
    """For a reply without a reason we know (not from a podnet agent)."""
    if status == 404:
        return Reason.not_found
    return Reason.bad_request if 400 <= status < 500 else Reason.internal


class AgentUnreachableError(PodnetError):
    reason = Reason.agent_unavailable


def _exchange(path: str, request: bytes, timeout: float) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"malformed HTTP response: {raw[:80]!r}")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            body = body[: int(value.strip())]
    return int(status_line[1]), body


class AgentClient:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, *, timeout: float = 30.0):
        self.socket_path = socket_path
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = path + ("?" + urlencode(query) if query else "")
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [
            f"{method} {url} HTTP/1.1",
            "Host: podnet",
            "Connection: close",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        try:
            status, raw = _parse(_exchange(self.socket_path, request, self.timeout))
        except (FileNotFoundError, ConnectionRefusedError) as err:
            raise AgentUnreachableError(
                f"podnet agent is unreachable at unix://{self.socket_path} ({err.strerror}); is podnet-agent running?"
            ) from None
        except (OSError, ValueError) as err:
            raise AgentUnreachableError(f"podnet agent at unix://{self.socket_path} did not answer: {err}") from None
        if status >= 400:
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = None
            raise AgentError.from_reply(status, data, raw)
        return json.loads(raw) if raw else None

    def stream(self, path: str, *, query: dict[str, str] | None = None, timeout: float | None = None) -> Iterator[Any]:
        """GET a stream of JSON lines (chunked); yields each object until the agent or `timeout` ends it."""
        url = path + ("?" + urlencode(query) if query else "")
        request = f"GET {url} HTTP/1.1\r\nHost: podnet\r\nConnection: close\r\n\r\n".encode()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except (FileNotFoundError, ConnectionRefusedError) as err:
                raise AgentUnreachableError(
                    f"podnet agent is unreachable at unix://{self.socket_path} ({err.strerror}); is podnet-agent running?"
                ) from None
            sock.sendall(request)
            sock.settimeout(timeout)
            reader = sock.makefile("rb")
            status_line = reader.readline().split()
            headers: dict[bytes, bytes] = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
            if status != 200:
                body = reader.read(int(headers.get(b"content-length", b"0")))
                try:
                    data = json.loads(body) if body else {}
                except ValueError:
                    data = None
                raise AgentError.from_reply(status, data, body)
            pending = b""
            while size_line := reader.readline():
                size = int(size_line.strip() or b"0", 16)
                if size == 0:
                    return
                pending += reader.read(size)
                reader.readline()  # the chunk's CRLF
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except TimeoutError:
            return
        finally:
            sock.close()

    # -- typed helpers (return the JSON) ------------------------------------------
    def healthz(self) -> Any:
        return self.request("GET", "/v1/healthz")

    def ipam_allocate(self, owner: str, *, expiration: bool = False, pool: str | None = None) -> Any:
        query = {"family": "ipv4", "owner": owner}
        if pool:
            query["pool"] = pool
        return self.request("POST", "/v1/ipam", query=query, headers={"Expiration": str(expiration).lower()})

    def ipam_allocate_ip(self, ip: str, owner: str, *, expiration: bool = False) -> Any:
        return self.request(
            "POST", f"/v1/ipam/{quote(ip)}", query={"owner": owner}, headers={"Expiration": str(expiration).lower()}
        )

    def ipam_release(self, ip: str) -> Any:
        return self.request("DELETE", f"/v1/ipam/{quote(ip)}")

    def endpoint_create(self, endpoint_id: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", f"/v1/endpoint/{quote(endpoint_id)}", body=body)

    def endpoint_patch(self, endpoint_id: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", f"/v1/endpoint/{quote(endpoint_id)}", body=body)

    def endpoint_get(self, endpoint_id: str) -> Any:
        return self.request("GET", f"/v1/endpoint/{quote(endpoint_id)}")

    def endpoint_delete(self, endpoint_id: str, *, release_ip: bool = False) -> Any:
        query = {"release-ip": "true"} if release_ip else None
        return self.request("DELETE", f"/v1/endpoint/{quote(endpoint_id)}", query=query)
