"""The libnetwork suite's subjects, each with a dockerd 20.10 of its own in a namespace (the netns
backend's node, through the registry): podnet (its agent and plugin run there: the CI subject), or a
plugin given by its socket, started there by the suite (`--start`) or already running."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab.backends import registry
from lab.backends.node import DockerHost
from lab.conformance.libnetwork.context import Post, Subject
from lab.conformance.libnetwork.known import KNOWN

CI = ("podnet",)
POD_CIDR = "10.80.0.0/24"


class SubjectError(RuntimeError):
    pass


def post_to(socket: str) -> Post:
    from podnet.api import unixhttp

    def post(path: str, body: bytes) -> tuple[int, bytes]:
        r = unixhttp.request(socket, "POST", path, body=body, timeout=60)
        return r.status, r.body

    return post


@dataclass
class NodeSide:
    """dockerd's side: the node's namespace and its docker CLI."""

    host: DockerHost

    @property
    def image(self) -> str:
        return self.host.image

    def links(self) -> set[str]:
        return {str(link["ifname"]) for link in json.loads(self.host.node.cmd("ip", "-j", "link").stdout or "[]")}

    def docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return self.host.node.docker(*args, check=False, timeout=timeout)


@dataclass
class Prepared:
    subject: Subject
    side: NodeSide


def _docker_host(
    name: str,
    work: Path,
    *,
    plugins: dict[str, Path] | None = None,
    podnet: Path | None = None,
    plugin_args: tuple[str, ...] = (),
) -> AbstractContextManager[DockerHost]:
    factory = registry.backend(registry.DEFAULT).docker_host
    if factory is None:
        raise SubjectError(f"the {registry.DEFAULT} backend cannot run a single dockerd node")
    agent_args = ("--pod-cidr", POD_CIDR) if podnet is not None else ()
    return factory(
        name,
        plugins=plugins,
        podnet=str(podnet) if podnet else None,
        agent_args=agent_args,
        plugin_args=plugin_args,
        keep_logs=work,
    )


def podnet_probe(agent_socket: str) -> dict[str, list[str]]:
    """What podnet's agent holds for docker: pod IPs (but the router's) and network records."""
    from podnet.api.client import AgentClient

    agent = AgentClient(agent_socket, timeout=10)
    held = agent.request("GET", "/v1/ipam")["allocations"]
    return {
        "allocations": [f"{a['ip']} ({a['owner']})" for a in held if a["owner"] != "router"],
        "networks": [n["id"] for n in agent.request("GET", "/v1/docker/network")],
    }


@contextmanager
def podnet_subject(work: Path, python: Path) -> Iterator[Prepared]:
    with _docker_host("cfpodnet", work, podnet=python) as host:
        assert host.plugin_sock is not None
        node = host.node

        def restart() -> None:
            node.stop_process("podnet-docker")
            node.start_process("podnet-docker")

        yield Prepared(
            Subject(
                name="podnet",
                description=f"podnet-docker and podnet-agent from {python}",
                how=f"the suite started dockerd 20.10, podnet-agent (pod CIDR {POD_CIDR}) and podnet-docker in {node.where}; "
                f"the plugin answers at {host.plugin_sock}; logs in {work}",
                post=post_to(str(host.plugin_sock)),
                driver="podnet",
                restart=restart,
                probe=functools.partial(podnet_probe, str(node.agent_sock)),
                known=KNOWN.get("podnet", {}),
            ),
            NodeSide(host),
        )


class Started:
    """A plugin the suite starts (and restarts) with a shell command in dockerd's namespace, with
    DOCKER_HOST naming that dockerd (a plugin may ask it about containers)."""

    def __init__(self, host: DockerHost, command: str, socket: Path, log: Path):
        self.host, self.command, self.socket, self.log = host, command, socket, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.host.node.argv_for(["sh", "-c", self.command]),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "DOCKER_HOST": f"unix://{self.host.node.docker_sock}"},
            )
        post = post_to(str(self.socket))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SubjectError(f"`{self.command}` exited {self.proc.returncode}; see {self.log}")
            try:
                if post("/Plugin.Activate", b"")[0] == 200:
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.1)
        raise SubjectError(f"`{self.command}` did not answer on {self.socket} within {timeout_s:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def user_subject(
    work: Path,
    socket: Path,
    start: str | Callable[[DockerHost], str] | None,
    driver: str,
    *,
    podnet: Path | None = None,
    plugin_args: tuple[str, ...] = (),
) -> Iterator[Prepared]:
    """A plugin by its socket; with `start`, the command the suite runs (in dockerd's namespace) to start
    it (or a function of the host giving it). `podnet` also runs podnet's agent and plugin there (the
    suite's own tests put mutants in front of it)."""
    if not start and not socket.is_socket():
        raise SubjectError(f"{socket}: no unix socket there (give --start COMMAND to have the suite start the plugin)")
    with ExitStack() as stack:
        host = stack.enter_context(
            _docker_host("cfuser", work, plugins={driver: socket}, podnet=podnet, plugin_args=plugin_args)
        )
        started = None
        if start:
            command = start if isinstance(start, str) else start(host)
            started = Started(host, command, socket, work / "plugin.log")
            stack.callback(started.stop)
            started.start()
        yield Prepared(
            Subject(
                name=driver,
                description=f"the plugin at {socket}" + (f", started with `{started.command}`" if started else ""),
                how=f"dockerd 20.10 in {host.node.where} finds it as driver {driver!r} by a spec file"
                + (
                    f"; the suite started it there (log {work / 'plugin.log'})" if start else "; it was already running"
                ),
                post=post_to(str(socket)),
                driver=driver,
                restart=started.restart if started else None,
            ),
            NodeSide(host),
        )
