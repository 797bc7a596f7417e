"""HTTP/1.1 over a unix socket, with one overall deadline per exchange.

The protocol is h11's (a kept, sans-I/O HTTP/1.1 library: it frames requests,
parses responses — Content-Length or chunked — and refuses what cannot be
sent as one request); the socket and the clock are ours, so that one deadline
covers everything: connecting (a full listen queue is retried until then, not
waited on forever), sending and every read. A server that trickles a byte a
second cannot hold a caller past its deadline.

Everything that goes on the wire is checked first: a request path must be
built from quoted segments (`path()`), and no control character may appear
in a path, query or header (`InvalidRequestError`), so an id taken from a
runtime can never smuggle a second request.

Used by the agent client (`podnet.api.client`), podnet-docker, the CLI, and
by the lab and the tests to talk to the agent or the libnetwork plugin.
"""

from __future__ import annotations

import errno
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from podnet.errors import PodnetError, Reason

if TYPE_CHECKING:
    import h11  # imported where an exchange runs: the agent imports this module for its errors and path()

MAX_RESPONSE = 64 << 20  # an endpoint list of 10,000 endpoints is ~10 MiB
_PCHARS = re.compile(r"^(/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)+$")  # RFC 3986 path-abempty
_CONNECT_RETRY_S = (0.01, 0.02, 0.05, 0.1, 0.2)


class UnixHTTPError(PodnetError):
    """The exchange failed; `socket_path` names the server."""

    reason = Reason.agent_unavailable

    def __init__(self, socket_path: str, message: str):
        super().__init__(message)
        self.socket_path = socket_path


class NotListeningError(UnixHTTPError):
    """Nothing listens on the socket (absent, or refused)."""


class DeadlineError(UnixHTTPError):
    """The server did not answer in full before the deadline."""


class InvalidRequestError(PodnetError, ValueError):
    """The request cannot be sent as asked (a control character, an unquoted path…)."""

    reason = Reason.bad_request


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


def has_control(text: str) -> bool:
    """C0 controls, DEL and C1 controls: never valid in an id, a path, a query or a header."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def path(base: str, *segments: str) -> str:
    """`base` (a literal API path) followed by each segment quoted whole: `/` and `?` included.

    Empty, `.` and `..` segments are refused: a server would normalise them
    into another path."""
    check_path(base)
    out = [base.rstrip("/")]
    for segment in segments:
        if not isinstance(segment, str):
            raise InvalidRequestError(f"path segment {segment!r} is not a string")
        if segment in ("", ".", ".."):
            raise InvalidRequestError(f"path segment {segment!r} cannot be used in a request path")
        if has_control(segment):
            raise InvalidRequestError(f"path segment {segment!r} contains a control character")
        try:
            out.append(quote(segment, safe=""))
        except UnicodeEncodeError:
            raise InvalidRequestError(f"path segment {segment!r} is not valid Unicode") from None
    return "/".join(out)


def check_path(target: str) -> None:
    if not _PCHARS.match(target):
        raise InvalidRequestError(
            f"request path {target!r} is not a quoted path: build it with podnet.api.unixhttp.path()"
        )


def target(request_path: str, query: dict[str, str] | None = None) -> str:
    check_path(request_path)
    if not query:
        return request_path
    for key, value in query.items():
        if has_control(key) or has_control(value):
            raise InvalidRequestError(f"query parameter {key}={value!r} contains a control character")
    try:
        return request_path + "?" + urlencode(query, quote_via=quote, safe="")
    except UnicodeEncodeError:
        raise InvalidRequestError(f"query {query!r} is not valid Unicode") from None


def _headers(extra: dict[str, str] | None, body: bytes | None, host: str) -> list[tuple[str, str]]:
    headers = [("Host", host), ("Connection", "close")]
    if body is not None:
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    for name, value in (extra or {}).items():
        if has_control(name) or has_control(value) or not name.isascii() or not value.isascii():
            raise InvalidRequestError(f"header {name}: {value!r} contains a control or non-ASCII character")
        headers.append((name, value))
    return headers


class Exchange:
    """One request and its response on a fresh connection, all before `deadline` (monotonic seconds)."""

    def __init__(self, socket_path: str, deadline: float, *, timeout: float):
        self.socket_path = socket_path
        self.deadline = deadline
        self.timeout = timeout  # for messages only
        self.sock: socket.socket | None = None
        import h11

        self.conn = h11.Connection(h11.CLIENT)

    def _remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineError(
                self.socket_path, f"unix://{self.socket_path} did not answer within {self.timeout:g} s ({what})"
            )
        return left

    def connect(self) -> None:
        retries = iter(_CONNECT_RETRY_S)
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._remaining("connecting"))
            try:
                sock.connect(self.socket_path)
            except (FileNotFoundError, ConnectionRefusedError) as err:
                sock.close()
                raise NotListeningError(self.socket_path, f"unix://{self.socket_path}: {err.strerror}") from None
            except (BlockingIOError, TimeoutError) as err:
                # A full listen queue: AF_UNIX answers EAGAIN at once. Try again until the deadline.
                sock.close()
                if getattr(err, "errno", None) not in (errno.EAGAIN, None):
                    raise
                time.sleep(min(next(retries, 0.25), max(0.0, self.deadline - time.monotonic())))
                self._remaining("connecting: the server's listen queue is full")
                continue
            except OSError as err:
                sock.close()
                raise UnixHTTPError(self.socket_path, f"unix://{self.socket_path}: {err.strerror or err}") from None
            self.sock = sock
            return

    def send(self, method: str, request_target: str, headers: list[tuple[str, str]], body: bytes | None) -> None:
        import h11

        assert self.sock is not None
        try:
            data = self.conn.send(h11.Request(method=method, target=request_target, headers=headers))
            if body:
                data += self.conn.send(h11.Data(data=body))
            data += self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as err:
            raise InvalidRequestError(f"{method} {request_target!r} cannot be sent: {err}") from None
        self.sock.settimeout(self._remaining("sending the request"))
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise DeadlineError(
                self.socket_path, f"unix://{self.socket_path} did not take the request within {self.timeout:g} s"
            ) from None
        except OSError as err:
            raise UnixHTTPError(self.socket_path, f"unix://{self.socket_path}: sending: {err.strerror}") from None

    def events(self, until: float | None = None) -> Iterator[h11.Event]:
        """The response's events; a read past `until` (or the deadline) ends the iteration or raises."""
        import h11

        assert self.sock is not None
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as err:
                raise UnixHTTPError(
                    self.socket_path, f"unix://{self.socket_path} sent a malformed reply: {err}"
                ) from None
            if event is h11.NEED_DATA:
                limit = self.deadline if until is None else min(until, self.deadline)
                left = limit - time.monotonic()
                if left <= 0:
                    if until is not None and until < self.deadline:
                        return
                    self._remaining("reading the reply")
                self.sock.settimeout(None if left == float("inf") else max(left, 0.001))
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    continue  # the loop decides: end of a stream's window, or past the deadline
                except OSError as err:
                    raise UnixHTTPError(
                        self.socket_path, f"unix://{self.socket_path}: reading: {err.strerror}"
                    ) from None
                try:
                    self.conn.receive_data(chunk)
                except h11.RemoteProtocolError as err:
                    raise UnixHTTPError(self.socket_path, f"unix://{self.socket_path}: {err}") from None
                continue
            if isinstance(event, h11.ConnectionClosed) or not isinstance(event, h11.Event):
                raise UnixHTTPError(self.socket_path, f"unix://{self.socket_path} closed the connection mid-reply")
            yield event
            if isinstance(event, h11.EndOfMessage):
                return

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def request(
    socket_path: str,
    method: str,
    request_path: str,
    *,
    body: bytes | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    host: str = "podnet",
) -> Response:
    """One exchange, all of it within `timeout` seconds."""
    import h11

    request_target = target(request_path, query)
    request_headers = _headers(headers, body, host)
    exchange = Exchange(socket_path, time.monotonic() + timeout, timeout=timeout)
    try:
        exchange.connect()
        exchange.send(method, request_target, request_headers, body)
        status, reply_headers, chunks, size = 0, {}, [], 0
        for event in exchange.events():
            if isinstance(event, h11.Response):
                status = event.status_code
                reply_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_RESPONSE:
                    raise UnixHTTPError(socket_path, f"unix://{socket_path} sent more than {MAX_RESPONSE} bytes")
                chunks.append(bytes(event.data))
        return Response(status, reply_headers, b"".join(chunks))
    finally:
        exchange.close()


def stream(
    socket_path: str,
    request_path: str,
    *,
    query: dict[str, str] | None = None,
    connect_timeout: float = 30.0,
    duration: float | None = None,
    host: str = "podnet",
) -> tuple[Response, Iterator[bytes]]:
    """GET a streamed body: the response head (within `connect_timeout`), then its data as it comes.

    A non-200 reply is read whole (within `connect_timeout`) and its iterator is
    empty. The data iterator ends with the stream, or after `duration` seconds."""
    import h11

    request_target = target(request_path, query)
    exchange = Exchange(socket_path, time.monotonic() + connect_timeout, timeout=connect_timeout)
    try:
        exchange.connect()
        exchange.send("GET", request_target, _headers(None, None, host), None)
        events = exchange.events()
        head = next((e for e in events if isinstance(e, h11.Response)), None)
        if head is None:
            raise UnixHTTPError(socket_path, f"unix://{socket_path} ended the reply without a status line")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
        if head.status_code != 200:
            body = b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))
            exchange.close()
            return Response(head.status_code, headers, body), iter(())
    except BaseException:
        exchange.close()
        raise
    # The data has no deadline of its own: the stream lasts as long as asked.
    exchange.deadline = float("inf")
    until = None if duration is None else time.monotonic() + duration

    def data() -> Iterator[bytes]:
        try:
            for event in exchange.events(until=until):
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
        finally:
            exchange.close()

    return Response(head.status_code, headers, b""), data()
