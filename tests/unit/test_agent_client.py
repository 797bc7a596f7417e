"""The agent client: ids cannot reach the wire unquoted, and one deadline bounds every call (issue 13, items 2, 10).

New names are reached through the module (`api.path`, …) so that, run against
older code, each test fails on its own rather than the whole file at import.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import podnet.api.client as api
from podnet.api.client import AgentClient, AgentError
from tests.agent_harness import RunningAgent, running_agent


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/28") as running:
        yield running


class FakeServer:
    """A unix socket server that answers each connection with `serve(conn)`; records what it received."""

    def __init__(self, tmp: Path, serve: Callable[[socket.socket], None] | None, *, backlog: int = 16):
        self.path = str(tmp / "fake.sock")
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(backlog)
        self.received: list[bytes] = []
        self.serve = serve
        self.thread = threading.Thread(target=self._run, daemon=True)
        if serve is not None:
            self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while self.sock.fileno() >= 0:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                    assert self.serve is not None
                    self.serve(conn)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5) if self.thread.is_alive() else None


@pytest.mark.parametrize(
    ("segment", "quoted"),
    [
        ("ep1", "ep1"),
        ("a/b", "a%2Fb"),
        ("x?y#z", "x%3Fy%23z"),
        ("with space", "with%20space"),
        ("naïve", "na%C3%AFve"),
        ("%2e%2e", "%252e%252e"),
    ],
)
def test_path_quotes_each_segment_whole(segment: str, quoted: str) -> None:
    assert api.path("/v1/endpoint", segment) == f"/v1/endpoint/{quoted}"


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("", "cannot be used in a request path"),
        (".", "cannot be used in a request path"),
        ("..", "cannot be used in a request path"),
        ("x HTTP/1.1\r\nHost: a\r\n\r\nDELETE /v1/policy", "contains a control character"),
        ("a\x00b", "contains a control character"),
        ("a\x85b", "contains a control character"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_path_refuses_segments_that_could_change_the_request(segment: str, message: str) -> None:
    with pytest.raises(api.InvalidRequestError, match=message):
        api.path("/v1/endpoint", segment)


def test_nothing_with_a_control_character_reaches_the_wire(tmp_path: Path) -> None:
    server = FakeServer(tmp_path, lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
    client = AgentClient(server.path, timeout=2)
    try:
        smuggled = "/v1/endpoint/x HTTP/1.1\r\nHost: a\r\n\r\nDELETE /v1/policy"
        with pytest.raises(api.InvalidRequestError, match="not a quoted path"):
            client.request("GET", smuggled)
        with pytest.raises(api.InvalidRequestError, match="not a quoted path"):
            client.request("GET", "/v1/endpoint/a b")
        with pytest.raises(api.InvalidRequestError, match="control character"):
            client.request("GET", "/v1/ipam", query={"owner": "a\r\nb"})
        with pytest.raises(api.InvalidRequestError, match="control or non-ASCII character"):
            client.request("POST", "/v1/ipam", headers={"Expiration": "true\r\nX-Smuggled: 1"})
        with pytest.raises(api.InvalidRequestError, match="control character"):
            client.endpoint_get("x\r\nDELETE /v1/policy")
        time.sleep(0.3)
        assert server.received == []  # refused before connecting
        assert client.request("GET", "/v1/ipam", query={"owner": "default/a b&c=d"}) == {}
        [sent] = server.received
        assert sent.startswith(b"GET /v1/ipam?owner=default%2Fa%20b%26c%3Dd HTTP/1.1\r\n")
    finally:
        server.close()


def test_an_id_with_a_slash_reaches_the_agent_as_one_id(env: RunningAgent) -> None:
    # Unquoted, "a/b" was the path /v1/endpoint/a/b: "no such API path" rather than a bad id.
    with pytest.raises(AgentError) as err:
        env.client.endpoint_get("a/b")
    assert err.value.status == 400 and "invalid endpoint id 'a/b'" in str(err.value)
    with pytest.raises(AgentError) as err:
        env.client.endpoint_get("ep?x=1")
    assert err.value.status == 400 and "invalid endpoint id 'ep?x=1'" in str(err.value)


def test_a_trickling_agent_cannot_hold_a_client_past_its_deadline(tmp_path: Path) -> None:
    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n")
        for _ in range(25):  # a byte every 0.2 s: each read is quick, the whole is 5 s
            time.sleep(0.2)
            conn.sendall(b" ")

    server = FakeServer(tmp_path, trickle)
    try:
        started = time.monotonic()
        with pytest.raises(api.AgentUnreachableError, match=r"did not answer within 1 s") as err:
            AgentClient(server.path, timeout=1.0).healthz()
        assert time.monotonic() - started < 1.5
        assert isinstance(err.value, api.AgentTimeoutError)
    finally:
        server.close()


def test_a_full_listen_queue_is_retried_until_the_deadline_then_refused(tmp_path: Path) -> None:
    server = FakeServer(tmp_path, None, backlog=0)  # listens, never accepts
    fillers = []
    try:
        while True:  # fill the queue: AF_UNIX then answers EAGAIN
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            try:
                s.connect(server.path)
            except BlockingIOError:
                s.close()
                break
            fillers.append(s)
        started = time.monotonic()
        with pytest.raises(api.AgentUnreachableError, match="listen queue is full") as err:
            AgentClient(server.path, timeout=0.8).healthz()
        assert 0.7 < time.monotonic() - started < 1.3
        assert isinstance(err.value, api.AgentTimeoutError)
    finally:
        for s in fillers:
            s.close()
        server.close()


def test_one_deadline_covers_several_calls(env: RunningAgent) -> None:
    client = AgentClient(env.socket, timeout=5, deadline=time.monotonic() - 0.01)
    with pytest.raises(api.AgentTimeoutError, match="no time left"):
        client.healthz()
    assert AgentClient(env.socket, timeout=5, deadline=time.monotonic() + 5).healthz()["node"] == "node1"


def test_a_reply_that_is_not_http_is_an_unreachable_agent_not_a_traceback(tmp_path: Path) -> None:
    server = FakeServer(tmp_path, lambda conn: conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n"))
    try:
        with pytest.raises(api.AgentUnreachableError) as err:
            AgentClient(server.path, timeout=2).healthz()
        assert "malformed reply" in str(err.value) or "closed the connection" in str(err.value)
    finally:
        server.close()
