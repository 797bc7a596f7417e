"""Driving podnet's three interfaces with hostile input, and judging the answers.

For the hardening tests and a fuzz suite alike:

- `raw_exchange` sends bytes as they are (a lying Content-Length, a request
  line no client would write) to a unix socket and reads the reply within a
  deadline; `RawReply.json` decodes its body.
- `running_plugin` serves the libnetwork plugin (podnet-docker's server, its
  `after_call` included) on a unix socket, in front of a `running_agent`.
- `build_shim` compiles the podnet-cni C shim (optionally with ASan and
  UBSan, any finding fatal) and `run_shim` execs it as a runtime would,
  returning its exit status, decoded stdout and stderr.
- `assert_rest_error`, `assert_libnetwork_error`, `assert_cni_error` are the
  protocols' error forms: what every refusal must look like.
- `assert_store_invariants`: after anything, the router IP is the router's and
  every endpoint's IP is that endpoint's, in the store as in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from podnet.api.client import AgentClient
from podnet.docker.libnetwork import Handlers
from podnet.docker.server import AfterCall, PluginServer
from podnet.kvstore import KVStore


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    closed: bool  # the server closed the connection (else the deadline ended the read)

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def raw_exchange(sock_path: str, data: bytes, *, timeout: float = 5.0, head_only: bool = False) -> RawReply:
    """Send `data`, read until the server closes (or, with `head_only`, until the headers end)."""
    started = time.monotonic()
    deadline = started + timeout
    received, closed = b"", False
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(sock_path)
        sock.sendall(data)
        while time.monotonic() < deadline:
            if head_only and b"\r\n\r\n" in received:
                break
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            received += chunk
    elapsed = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked" and not head_only:
        body = _dechunk(body)
    return RawReply(status, headers, body, elapsed, closed)


def http_request(method: str, target: str, body: bytes = b"", *, extra: str = "") -> bytes:
    """A well-formed request (one per connection) with whatever target and body the caller gives."""
    head = f"{method} {target} HTTP/1.1\r\nHost: podnet\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode("latin-1") + body


def assert_rest_error(reply: RawReply, status: int | None = None) -> dict[str, Any]:
    """The agent API's error form: 4xx/5xx, JSON {code, message} with code == the HTTP status."""
    assert 400 <= reply.status < 600, reply
    data = reply.json()
    assert isinstance(data, dict) and data.get("code") == reply.status and isinstance(data.get("message"), str), data
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    if status is not None:
        assert reply.status == status, data
    return data


def assert_libnetwork_error(reply: RawReply, status: int | None = None) -> str:
    """libnetwork's error form: an error status and JSON {"Err": "…"}."""
    assert 400 <= reply.status < 600, reply
    data = reply.json()
    assert isinstance(data, dict) and isinstance(data.get("Err"), str) and data["Err"], data
    if status is not None:
        assert reply.status == status, data
    err: str = data["Err"]
    return err


def assert_cni_error(status: int, output: Any, code: int | None = None) -> dict[str, Any]:
    """CNI's error form: a nonzero exit and {"cniVersion", "code", "msg"[, "details"]}."""
    assert status != 0, output
    assert isinstance(output, dict) and set(output) <= {"cniVersion", "code", "msg", "details"}, output
    assert isinstance(output.get("code"), int) and isinstance(output.get("msg"), str), output
    assert isinstance(output.get("cniVersion"), str), output
    if code is not None:
        assert output["code"] == code, output
    return output


@contextmanager
def running_plugin(
    tmp: Path, agent_socket: str, *, after_call: AfterCall | None = None, body_timeout_s: float = 10.0
) -> Iterator[str]:
    """podnet-docker's HTTP server on `<tmp>/plugin.sock`, talking to the agent at `agent_socket`."""
    path = str(tmp / "plugin.sock")
    server = PluginServer(Handlers(AgentClient(agent_socket)), after_call)
    server.body_timeout_s = body_timeout_s
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> web.BaseRunner:
        runner = server.runner()
        await runner.setup()
        await web.UnixSite(runner, path).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield path
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        server.pool.shutdown(wait=False)


SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87",
}


def build_shim(out: Path, *, sanitize: bool, default_socket: str | None = None) -> Path:
    """Compile podnet-cni.c to `out` (gcc: Debian's gcc brings libasan and libubsan); `default_socket`
    replaces /var/run/podnet/podnet.sock, where a node's real agent may listen."""
    from podnet.cni.shim import SOURCE

    cc = os.environ.get("CC") or shutil.which("gcc") or "cc"
    flags = [*SANITIZERS] if sanitize else ["-O2"]
    if default_socket is not None:
        flags.append(f"-DDEFAULT_SOCKET={json.dumps(default_socket)}")
    proc = subprocess.run(
        [cc, *flags, "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-o", str(out), str(SOURCE)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"building the shim failed:\n{proc.stderr}"
    return out


@dataclass
class ShimRun:
    status: int
    output: Any  # the decoded JSON it printed, None for nothing, the raw text if not JSON
    stderr: str
    elapsed: float


def run_shim(binary: Path, stdin: bytes, env: dict[str, str] | dict[str, bytes], *, timeout: float = 30) -> ShimRun:
    """Exec the shim with exactly `env` (plus the sanitizers' options) and `stdin`."""
    environment: dict[str | bytes, str | bytes] = {**SANITIZER_ENV, **env}  # type: ignore[dict-item]
    started = time.monotonic()
    proc = subprocess.run(
        [str(binary)],
        input=stdin,
        env=environment,
        capture_output=True,
        timeout=timeout,  # type: ignore[arg-type]
    )
    elapsed = time.monotonic() - started
    text = proc.stdout.decode(errors="replace")
    try:
        output: Any = json.loads(text) if text.strip() else None
    except ValueError:
        output = text
    return ShimRun(proc.returncode, output, proc.stderr.decode(errors="replace"), elapsed)


def assert_sanitizers_quiet(run: ShimRun) -> None:
    assert run.status not in (86, 87), run.stderr
    for finding in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"):
        assert finding not in run.stderr, run.stderr


def assert_store_invariants(agent: Any, store: KVStore | None = None) -> None:
    """`agent`: a podnet.agent.service.Agent. No IP with two owners, the router IP owned by the router,
    every endpoint's IP owned by that endpoint; the store's records agree with the agent's memory."""
    store = store or agent.store
    held = {str(a.ip): a.owner for a in agent.ipam.allocations()}
    assert held.get(agent.router_ip) == "router", held
    stored: dict[str, str] = {}
    for entry in store.list_prefix(agent.ipam.prefix):
        record = json.loads(entry.value)
        assert record["ip"] not in stored, f"{record['ip']} stored twice"
        stored[record["ip"]] = record["owner"]
    assert stored == held, (stored, held)
    for endpoint in agent.endpoints.list():
        for pair in endpoint.networking.addressing:
            assert held.get(pair.ipv4) == f"endpoint:{endpoint.id}", (endpoint.id, pair.ipv4, held.get(pair.ipv4))
