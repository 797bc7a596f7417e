"""A small synchronous client for the agent API over its unix socket.

Standard library only (http.client), so exec'd tools such as the CNI plugin
start fast. Errors come back as `AgentError` carrying the agent's message;
an agent that is not there is `AgentUnreachableError`, naming the socket.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlencode

from podnet.errors import PodnetError

DEFAULT_SOCKET = "/var/run/podnet/podnet.sock"


class AgentError(PodnetError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class AgentUnreachableError(PodnetError):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


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
        payload = None if body is None else json.dumps(body).encode()
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, url, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            raw = response.read()
        except (FileNotFoundError, ConnectionRefusedError) as err:
            raise AgentUnreachableError(
                f"podnet agent is unreachable at unix://{self.socket_path} ({err.strerror}); is podnet-agent running?"
            ) from None
        except OSError as err:
            raise AgentUnreachableError(f"podnet agent at unix://{self.socket_path} did not answer: {err}") from None
        finally:
            conn.close()
        data = json.loads(raw) if raw else None
        if response.status >= 400:
            message = data.get("message") if isinstance(data, dict) else raw.decode(errors="replace")
            raise AgentError(response.status, str(message))
        return data

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
