"""A small synchronous client for the agent API over its unix socket.

The HTTP is `podnet.api.unixhttp` (h11 over a unix socket, one overall
deadline per call: `timeout`, 30 s by default). Paths with ids in them are
built with `path()`, which quotes every segment whole, and nothing with a
control character is ever sent. Errors come back as `AgentError` with the
agent's message and its machine-readable `reason` (switch on that); an agent
that is not there, or does not answer in time, is `AgentUnreachableError`
(reason `agent-unavailable`), naming the socket.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from podnet.api import unixhttp
from podnet.api.unixhttp import InvalidRequestError, path
from podnet.errors import PodnetError, Reason

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

__all__ = [
    "DEFAULT_SOCKET",
    "DEFAULT_TIMEOUT_S",
    "AgentClient",
    "AgentError",
    "AgentTimeoutError",
    "AgentUnreachableError",
    "InvalidRequestError",
    "path",
]

DEFAULT_SOCKET = "/var/run/podnet/podnet.sock"
DEFAULT_TIMEOUT_S = 30.0


class AgentError(PodnetError):
    def __init__(self, status: int, message: str, reason: Reason):
        super().__init__(message)
        self.status = status
        self.reason = reason

    @classmethod
    def from_reply(cls, status: int, data: Any, raw: bytes) -> AgentError:
        """From an error reply: {code, message, reason}, or whatever else answered."""
        if not isinstance(data, dict):
            return cls(status, raw.decode(errors="replace").strip() or f"HTTP {status}", _fallback_reason(status))
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


class AgentTimeoutError(AgentUnreachableError):
    """The agent took the call but did not answer in full before the deadline."""


def _decode(status: int, raw: bytes) -> Any:
    if status >= 400:
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        raise AgentError.from_reply(status, data, raw)
    return json.loads(raw) if raw else None


class AgentClient:
    """`timeout`: each call's deadline, in seconds. `deadline` (time.monotonic()): one for every call
    made with this client, when several calls make one operation (a CNI ADD)."""

    def __init__(
        self, socket_path: str = DEFAULT_SOCKET, *, timeout: float = DEFAULT_TIMEOUT_S, deadline: float | None = None
    ):
        self.socket_path = socket_path
        self.timeout = timeout
        self.deadline = deadline

    def for_cleanup(self, timeout: float) -> AgentClient:
        """The same agent with a deadline of its own (undoing after a failure, when this one may be spent)."""
        return AgentClient(self.socket_path, timeout=timeout)

    def _budget(self) -> float:
        if self.deadline is None:
            return self.timeout
        left = min(self.timeout, self.deadline - time.monotonic())
        if left <= 0:
            raise AgentTimeoutError(
                f"podnet agent at unix://{self.socket_path}: no time left for another call "
                f"(the operation's deadline of {self.timeout:g} s has passed)"
            )
        return left

    def _unreachable(self, err: unixhttp.UnixHTTPError) -> AgentUnreachableError:
        where = f"unix://{self.socket_path}"
        if isinstance(err, unixhttp.NotListeningError):
            return AgentUnreachableError(
                f"podnet agent is unreachable at {where} ({str(err).removeprefix(where + ': ')}); "
                "is podnet-agent running?"
            )
        if isinstance(err, unixhttp.DeadlineError):
            return AgentTimeoutError(f"podnet agent at {where} did not answer within {self.timeout:g} s: {err}")
        return AgentUnreachableError(f"podnet agent at {where} did not answer: {err}")

    def request(
        self,
        method: str,
        request_path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One call; `request_path` is a literal path or one built with `path()`."""
        payload = None if body is None else json.dumps(body).encode()
        try:
            reply = unixhttp.request(
                self.socket_path,
                method,
                request_path,
                body=payload,
                query=query,
                headers=headers,
                timeout=self._budget(),
            )
        except unixhttp.UnixHTTPError as err:
            raise self._unreachable(err) from None
        try:
            return _decode(reply.status, reply.body)
        except ValueError:
            raise AgentUnreachableError(
                f"podnet agent at unix://{self.socket_path} sent a reply that is not JSON: {reply.body[:80]!r}"
            ) from None

    def stream(
        self, request_path: str, *, query: dict[str, str] | None = None, timeout: float | None = None
    ) -> Iterator[Any]:
        """GET a stream of JSON lines; yields each object until the agent or `timeout` ends it."""
        try:
            head, data = unixhttp.stream(
                self.socket_path, request_path, query=query, connect_timeout=self._budget(), duration=timeout
            )
        except unixhttp.UnixHTTPError as err:
            raise self._unreachable(err) from None
        if head.status != 200:
            _decode(head.status, head.body)
            raise AgentError.from_reply(head.status, None, head.body)
        pending = b""
        try:
            for chunk in data:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except unixhttp.UnixHTTPError as err:
            raise self._unreachable(err) from None

    # -- typed helpers (return the JSON) ------------------------------------------
    def healthz(self) -> Any:
        return self.request("GET", "/v1/healthz")

    def node(self) -> Any:
        return self.request("GET", "/v1/node")

    def ipam_allocate(self, owner: str, *, expiration: bool = False, pool: str | None = None) -> Any:
        query = {"family": "ipv4", "owner": owner}
        if pool:
            query["pool"] = pool
        return self.request("POST", "/v1/ipam", query=query, headers={"Expiration": str(expiration).lower()})

    def ipam_allocate_ip(self, ip: str, owner: str, *, expiration: bool = False) -> Any:
        return self.request(
            "POST", path("/v1/ipam", ip), query={"owner": owner}, headers={"Expiration": str(expiration).lower()}
        )

    def ipam_release(self, ip: str) -> Any:
        return self.request("DELETE", path("/v1/ipam", ip))

    def endpoint_create(self, endpoint_id: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path("/v1/endpoint", endpoint_id), body=body)

    def endpoint_patch(self, endpoint_id: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path("/v1/endpoint", endpoint_id), body=body)

    def endpoint_get(self, endpoint_id: str) -> Any:
        return self.request("GET", path("/v1/endpoint", endpoint_id))

    def endpoint_interface(self, endpoint_id: str) -> Any:
        return self.request("GET", path("/v1/endpoint", endpoint_id, "interface"))

    def endpoint_list(self) -> Any:
        return self.request("GET", "/v1/endpoint")

    def endpoint_delete(self, endpoint_id: str, *, release_ip: bool = False) -> Any:
        query = {"release-ip": "true"} if release_ip else None
        return self.request("DELETE", path("/v1/endpoint", endpoint_id), query=query)

    def network_put(self, network_id: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path("/v1/docker/network", network_id), body=body)

    def network_delete(self, network_id: str) -> Any:
        return self.request("DELETE", path("/v1/docker/network", network_id))

    def network_list(self) -> Any:
        return self.request("GET", "/v1/docker/network")
