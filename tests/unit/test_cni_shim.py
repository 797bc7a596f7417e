"""The podnet-cni C shim, built with ASan and UBSan (any finding fatal), driven with hostile configs and
environments, against a real agent and against agents that misbehave (issue 13, items 10 and Tests)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent_harness import RunningAgent, running_agent
from tests.interfaces import (
    ShimRun,
    assert_cni_error,
    assert_sanitizers_quiet,
    assert_store_invariants,
    build_shim,
    run_shim,
)

CID = "c0ffee" * 10 + "abcd"


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("shim") / "podnet-cni-asan", sanitize=True)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/28") as running:
        yield running


def cni_env(command: str = "ADD", **extra: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": "/var/run/netns/pod1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        **extra,
    }


def conf_text(**fields: Any) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "podnet", **fields}).encode()


def run(shim: Path, stdin: bytes, env: dict[str, str] | None = None, *, timeout: float = 30) -> ShimRun:
    result = run_shim(shim, stdin, env or cni_env("STATUS"), timeout=timeout)
    assert_sanitizers_quiet(result)
    return result


# -- agentSocket: the top-level key, read as JSON reads it ------------------------------------------------


def test_a_nested_agent_socket_does_not_win_over_the_top_level_one(shim: Path, agent: RunningAgent) -> None:
    text = conf_text(args={"agentSocket": "/nonexistent/elsewhere.sock"}, agentSocket=agent.socket)
    assert run(shim, text).status == 0  # STATUS answered by the agent at the top-level socket


def test_an_agent_socket_inside_a_string_is_not_a_key(shim: Path, agent: RunningAgent) -> None:
    decoy = '"agentSocket": "/nonexistent/decoy.sock"'
    assert run(shim, conf_text(description=decoy, agentSocket=agent.socket)).status == 0


def test_escapes_in_the_agent_socket_are_decoded(shim: Path, agent: RunningAgent) -> None:
    escaped = json.dumps(agent.socket).replace("/", "\\/")  # "\/tmp\/…\/agent.sock", as JSON allows
    text = b'{"cniVersion": "1.0.0", "name": "podnet", "agentSocket": ' + escaped.encode() + b"}"
    assert run(shim, text).status == 0
    as_unicode = "".join(f"\\u{ord(c):04x}" for c in agent.socket)
    text = b'{"cniVersion": "1.0.0", "name": "podnet", "agentSocket": "' + as_unicode.encode() + b'"}'
    assert run(shim, text).status == 0


@pytest.mark.parametrize(
    ("socket_field", "message"),
    [
        ('"/run/' + "x" * 110 + '.sock"', "bytes: a unix socket path has at most 107"),
        ('"/run/podnet\\u0000/evil.sock"', "agentSocket contains a NUL character"),
        ('"relative/podnet.sock"', 'agentSocket "relative/podnet.sock" must be an absolute path'),
        ('""', "must be an absolute path"),
        ("42", "agentSocket must be a string"),
        ('["/run/podnet.sock"]', "agentSocket must be a string"),
    ],
)
def test_an_agent_socket_present_but_unusable_is_code_7(shim: Path, socket_field: str, message: str) -> None:
    text = b'{"cniVersion": "1.0.0", "name": "podnet", "agentSocket": ' + socket_field.encode() + b"}"
    result = run(shim, text, cni_env("ADD"))
    assert_cni_error(result.status, result.output, 7)
    assert message in result.output["msg"] and result.output["cniVersion"] == "1.0.0"


# -- agentTimeout: one deadline for the whole call ---------------------------------------------------------


class Listener:
    """A unix socket that listens but never answers (`accept`: takes connections and holds them)."""

    def __init__(self, path: Path, *, accept: bool, backlog: int = 8):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(backlog)
        self.held: list[socket.socket] = []
        self.fillers: list[socket.socket] = []
        if accept:
            threading.Thread(target=self._accept, daemon=True).start()
        else:
            while True:  # fill the listen queue
                s = socket.socket(socket.AF_UNIX)
                s.setblocking(False)
                try:
                    s.connect(self.path)
                except BlockingIOError:
                    s.close()
                    break
                self.fillers.append(s)

    def _accept(self) -> None:
        self.sock.settimeout(30)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for s in [*self.held, *self.fillers]:
            s.close()
        self.sock.close()


@pytest.mark.parametrize(("accept", "why"), [(True, "did not answer within 1.5 s"), (False, "listen queue is full")])
def test_agent_timeout_bounds_the_whole_call(shim: Path, tmp_path: Path, accept: bool, why: str) -> None:
    listener = Listener(tmp_path / "stuck.sock", accept=accept, backlog=0 if not accept else 8)
    try:
        result = run(shim, conf_text(agentSocket=listener.path, agentTimeout=1.5), cni_env("ADD"), timeout=20)
    finally:
        listener.close()
    assert_cni_error(result.status, result.output, 11)
    assert why in result.output["msg"]
    assert 1.4 < result.elapsed < 3.0


@pytest.mark.parametrize("timeout", ["0", "-1", '"30"', "true", "3601", "null", "1e999", "[]"])
def test_an_unusable_agent_timeout_is_code_7(shim: Path, timeout: str) -> None:
    text = b'{"cniVersion": "1.0.0", "name": "podnet", "agentTimeout": ' + timeout.encode() + b"}"
    result = run(shim, text, cni_env("ADD"))
    assert_cni_error(result.status, result.output, 7)
    assert "agentTimeout must be a number of seconds" in result.output["msg"]


def test_a_trickling_agent_is_cut_off_at_the_deadline(shim: Path, tmp_path: Path) -> None:
    path = str(tmp_path / "trickle.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1 << 20)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nPodnet-CNI-Exit: 0\r\n")
                for _ in range(40):  # each read is quick; the whole would be 8 s
                    time.sleep(0.2)
                    conn.sendall(b"X")
            except OSError:
                pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        result = run(shim, conf_text(agentSocket=path, agentTimeout=1), cni_env("ADD"), timeout=20)
    finally:
        server.close()
    assert_cni_error(result.status, result.output, 11)
    assert "did not answer within 1 s" in result.output["msg"] and result.elapsed < 2


# -- hostile input: never a sanitizer finding, always a CNI answer -----------------------------------------

HOSTILE_STDIN: list[bytes] = [
    b"",
    b"{",
    b"}",
    b"[",
    b'"',
    b"\\",
    b"\x00",
    b"null",
    b'{"agentSocket"',
    b'{"agentSocket":',
    b'{"agentSocket": "',
    b'{"agentSocket": "\\',
    b'{"agentSocket": "\\u',
    b'{"agentSocket": "\\u12',
    b'{"agentSocket": "\\ud800"}',
    b'{"agentSocket": "\\udc00\\ud800"}',
    b'{"agentSocket": "\\ud83d\\ude00"}',
    b'{"agentSocket": "\\x41"}',
    b'{"agentTimeout": -}',
    b'{"agentTimeout": 1.}',
    b'{"agentTimeout": 1e}',
    b'{"agentTimeout": 0.' + b"0" * 5000 + b"1}",
    b'{"agentTimeout": 1' + b"0" * 5000 + b"}",
    b'{"cniVersion": "' + b"9" * 5000 + b'", "name": "x"}',
    b'{"cniVersion": "\\u0000", "name": "x"}',
    b'{"cniVersion": "1.0.0\\"}, \\"code\\": 0", "name": "x"}',
    b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a": ' + b'{"b":' * 300 + b"1" + b"}" * 300 + b"}",
    b'{"a": tru, "agentSocket": "/x"}',
    b'{"agentSocket": "/x" "name": "y"}',
    b'{"agentSocket": "/x",}',
    b'{"agentSocket": "/x"} trailing',
    b'{"agentSocket": "/x"}\x00{"agentSocket": "/y"}',
    b'{"agentSocket": "/x", "agentSocket": 5}',
    b"\xff\xfe\xfd",
    b'{"name": "\xc0\xaf"}',
    b'{"name": "\xed\xa0\x80"}',
    b"\x7f" * 3000,
    b'{"k": "' + b"\\\\" * 50_000 + b'"}',
    b" " * 100_000,
]


def _checked(result: ShimRun) -> None:
    assert_sanitizers_quiet(result)
    if result.status != 0:
        assert_cni_error(result.status, result.output)
    else:
        assert result.output is None or isinstance(result.output, dict), result.output


def test_hostile_configs_get_cni_answers(shim: Path, agent: RunningAgent) -> None:
    """Each goes to a real agent (through agentSocket where the document allows it)."""
    seen: dict[int, int] = {}
    for stdin in HOSTILE_STDIN:
        for command in ("ADD", "STATUS"):
            result = run_shim(shim, stdin.replace(b'"/x"', json.dumps(agent.socket).encode()), cni_env(command))
            _checked(result)
            code = result.output["code"] if result.status else 0
            seen[code] = seen.get(code, 0) + 1
    assert_store_invariants(agent.agent)
    # what they got: decoding errors, config errors, the agent unreachable at the default socket (for STATUS: 50)
    assert set(seen) <= {0, 1, 4, 6, 7, 11, 50}, seen
    assert seen.get(6, 0) > 0 and seen.get(7, 0) > 0


HOSTILE_ENV: list[dict[str, Any]] = [
    {},
    {"CNI_COMMAND": ""},
    {"CNI_COMMAND": "VERSION\n"},
    {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "a" * 120_000},
    {"CNI_COMMAND": "ADD", "CNI_ARGS": ";" * 100_000},
    {"CNI_COMMAND": "ADD", "CNI_ARGS": "K8S_POD_NAME=" + "\x01\x02\x7f" * 1000},
    {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "x\r\nDELETE /v1/policy HTTP/1.1\r\n\r\n"},
    {"CNI_COMMAND": "ADD", "CNI_IFNAME": '"\\"\\'},
    {"CNI_COMMAND": "ADD", "CNI_NETNS": b"/run/netns/\xff\xfe"},
    {"CNI_COMMAND": b"A\xc0\x80DD"},
    {"CNI_COMMAND": "ADD", "CNI_PATH": "é" * 10_000},
    {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "ok", "CNI_IFNAME": "é" * 8},
]


def test_hostile_environments_get_cni_answers(shim: Path, agent: RunningAgent) -> None:
    conf = conf_text(agentSocket=agent.socket)
    for env in HOSTILE_ENV:
        base = {k: v for k, v in cni_env().items() if k not in env} if env else {}
        result = run_shim(shim, conf, {**base, **env})
        _checked(result)
        if result.status:
            assert result.output["code"] in (4, 7, 11, 102), (env, result.output)
    assert_store_invariants(agent.agent)


def misbehaving_agent(tmp_path: Path, reply: bytes) -> tuple[str, Callable[[], None]]:
    path = str(tmp_path / f"bad-{abs(hash(reply)) % 10_000}.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    server.settimeout(20)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(1 << 20)
                conn.sendall(reply)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return path, server.close


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"garbage",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nPodnet-CNI-Exit: 99999\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nPodnet-CNI-Exit: -1\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nPodnet-CNI-Exit: x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nPodnet-CNI-Exit: 0\r\n\r\n\x00\x00\x00",
        b"HTTP/1.1 500 Internal Server Error\r\n\r\n" + b"%s%n" * 1000,
        b"HTTP/1.1 " + b"9" * 5000 + b" X\r\n\r\n",
        b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 200_000 + b"\r\nPodnet-CNI-Exit: 3\r\n\r\nok",
    ],
)
def test_a_misbehaving_agent_gets_no_sanitizer_finding(shim: Path, tmp_path: Path, reply: bytes) -> None:
    path, close = misbehaving_agent(tmp_path, reply)
    try:
        result = run_shim(shim, conf_text(agentSocket=path, agentTimeout=5), cni_env("ADD"))
    finally:
        close()
    assert_sanitizers_quiet(result)
    if result.status not in (0, 3):
        assert_cni_error(result.status, result.output)
        assert result.output["code"] in (7, 11)


# -- what `lab conformance cni` found (spec 1.1 §2 STATUS, §5 VERSION Success, §5 Error code 6) ------------


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_version_answers_the_cni_version_asked_for(shim: Path, version: str) -> None:
    result = run(shim, json.dumps({"cniVersion": version}).encode(), {"CNI_COMMAND": "VERSION"})
    assert result.status == 0 and result.output == {
        "cniVersion": version,
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }
    for unknown in (b"", b'{"cniVersion": "9.9.9"}', b"not json"):  # nothing it speaks asked: its current version
        assert run(shim, unknown, {"CNI_COMMAND": "VERSION"}).output["cniVersion"] == "1.1.0"


def test_status_with_the_agent_unreachable_is_50_not_available(shim: Path, tmp_path: Path) -> None:
    result = run(shim, conf_text(agentSocket=str(tmp_path / "none.sock")), cni_env("STATUS"))
    assert_cni_error(result.status, result.output, 50)
    assert "unreachable" in result.output["msg"]
    result = run(shim, conf_text(agentSocket=str(tmp_path / "none.sock")), cni_env("ADD"))
    assert_cni_error(result.status, result.output, 11)  # other commands: try again later


@pytest.mark.parametrize(
    ("stdin", "code"),
    [(b'{"cniVersion": "1.0.0", "name": ', 6), (b"\x01 not json", 6), (b"[" * 300 + b"]" * 300, 6), (b"[1, 2]", 7)],
)
def test_a_configuration_that_is_not_a_json_object_is_answered_without_an_agent(
    shim: Path, stdin: bytes, code: int
) -> None:
    """Not JSON, it cannot say which agent it meant: 6 here (JSON but not an object: 7), not 11 from the
    default socket."""
    result = run(shim, stdin, cni_env("ADD"))
    assert_cni_error(result.status, result.output, code)
