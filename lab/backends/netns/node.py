"""A lab node as a network namespace plus a private mount namespace for its dockerd.

`NetnsNode` owns everything it creates, all named after the lab's run id:
the namespace `pn-<run>-<node>`, a directory tree under the lab root, its own
dockerd (own data root, exec root, socket, plugin directory, /etc/docker and
cgroup parent), and the processes it was told about. `cmd()` runs a command
in the node's network namespace (`nsenter --net`, never `ip netns exec`,
which remounts /sys and hides bpffs and the cgroup tree); `destroy()`
removes it all.

Processes are defined once and supervised (supervisor.py), so any later
`lab` command can start, stop or signal them by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.backends.base import DOCKER_CLI, NodeError, ProcessState, wait_for
from lab.backends.netns.host import (
    BPF_PINS,
    pid_state,
    processes_running_from,
    remove_node_cgroups,
    remove_pins,
)
from lab.backends.netns.supervisor import ProcessSpec, Supervisor
from lab.backends.node import LabNode

DOCKERD_SCRIPT = """\
set -e
# A private mount namespace: nothing below propagates back to the machine.
mount --make-rprivate /
mount --rbind /sys/fs/cgroup {cg}
mount -t sysfs sysfs /sys
mount --rbind {cg} /sys/fs/cgroup
mkdir -p /run/docker/plugins /etc/docker
mount --bind {plugins} /run/docker/plugins
mount --bind {etc_docker} /etc/docker
mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
exec dockerd --data-root {data} --exec-root {exec_root} -H unix://{sock} --pidfile {pidfile} \\
  --cgroup-parent {cgroup_parent} --shutdown-timeout 2 --log-level warn
"""


@dataclass
class NetnsNode(LabNode):
    name: str
    run_id: str
    root: Path
    supervisor: Supervisor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.name, self.path("proc"), self.logs, self.argv_for)

    # -- names and paths ----------------------------------------------------------
    @property
    def netns(self) -> str:
        return f"pn-{self.run_id}-{self.name}"

    @property
    def pod_netns_prefix(self) -> str:
        return self.netns

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def dir(self) -> Path:
        return self.root / self.name

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    @property
    def docker_sock(self) -> Path:
        return self.path("docker.sock")

    @property
    def plugin_dir(self) -> Path:
        return self.path("plugins")

    @property
    def plugin_sock(self) -> Path:
        return self.plugin_dir / "podnet.sock"

    @property
    def bpf_pin_dir(self) -> Path:
        """The node's BPF maps (one bpffs for the whole machine: the name carries the run id)."""
        return BPF_PINS / self.netns

    @property
    def agent_sock(self) -> Path:
        return self.path("run", "podnet.sock")

    @property
    def state_url(self) -> str:
        return f"sqlite://{self.path('state', 'podnet.db')}"

    @property
    def cgroup_parent(self) -> str:
        return self.netns

    @property
    def logs(self) -> Path:
        return self.path("logs")

    @property
    def where(self) -> str:
        return f"netns {self.netns}"

    @property
    def bird_socket(self) -> list[str]:
        return ["-s", str(self.path("run", "bird.ctl"))]

    # -- life cycle -------------------------------------------------------------
    def create(self) -> NetnsNode:
        if Path(self.netns_path).exists():
            raise NodeError(f"network namespace {self.netns} already exists: run `lab clean`")
        for d in ("plugins", "etc-docker", "docker-data", "docker-exec", "run", "state", "logs", "cg", "cni", "proc"):
            self.path(d).mkdir(parents=True, exist_ok=True)
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        self.cmd("ip", "link", "set", "lo", "up")
        return self

    def argv_for(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={self.netns_path}", *argv]

    def shell(self, command: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        environment = {**os.environ, **env, "PS1": f"[lab {self.run_id} {self.name}] \\w# "}
        return self.argv_for(list(command) or ["bash", "--norc", "-i"]), environment

    # -- processes: defined once, supervised (see supervisor.py) -------------------
    def define(self, name: str, spec: ProcessSpec) -> None:
        self.supervisor.define(name, spec)

    def spawn(self, name: str) -> int:
        return self.supervisor.spawn(name)

    def start_process(self, name: str) -> None:
        if name == "bird" and self._speaker_only:
            raise NodeError(f"{self.name}: bird here is podnet-agent's BGP speaker: the agent starts it by itself")
        spec = self.supervisor.spec(name)
        if name == "dockerd":
            self._kill_stale_containerd()
        self.supervisor.spawn(name)
        if spec.ready:
            interval = 0.05 if spec.ready.startswith("agent") else 0.1
            wait_for(
                lambda: self._serving(name, spec.ready), spec.timeout_s, f"{name} on {self.name}", interval_s=interval
            )

    def _serving(self, name: str, ready: str) -> bool:
        if not self.alive(name):
            detail = self.processes()[name].detail
            raise NodeError(f"{self.name}: {name} {detail or 'exited'}; see {self.log_where(name)}")
        if "+" in ready:  # each of them (an agent serving the docker plugin: agent-cidr+plugin)
            return all(self._serving(name, part) for part in ready.split("+"))
        if ready == "dockerd":
            return self.docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0
        if ready in ("agent", "agent-cidr"):
            return self.agent_ready(require_pod_cidr=ready == "agent-cidr")
        if ready == "plugin":
            return self.plugin_ready()
        if ready == "bird":
            return self.path("run", "bird.ctl").exists()
        if ready == "etcd":
            return self.cmd("curl", "-fsS", "-m", "1", "http://127.0.0.1:2379/health", check=False).returncode == 0
        raise NodeError(f"{self.name}: unknown readiness {ready!r} for {name}")

    def alive(self, name: str) -> bool:
        if name == "bird" and self._speaker_only:
            return self._speaker_pid() is not None
        return self.supervisor.alive(name)

    # A worker's `bird` is not the lab's: it is podnet-agent's BGP speaker (its child), which the
    # agent starts again when it dies. The lab finds it by its pid file, and can signal it.
    @property
    def _speaker_only(self) -> bool:
        return "bird" not in self.supervisor.specs and "podnet-agent" in self.supervisor.specs

    def _speaker_pid(self) -> int | None:
        try:
            pid = int(self.path("run", "bgp", "bird.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_state(pid) not in (None, "Z") else None

    def processes(self) -> dict[str, ProcessState]:
        states = self.supervisor.states()
        if self._speaker_only and self.path("run", "bgp").is_dir():
            pid = self._speaker_pid()
            states["bird"] = ProcessState(
                "bird", pid is not None, pid, None, "" if pid else "not running (podnet-agent's speaker)"
            )
        return states

    def signal_process(self, name: str, signal_number: int) -> None:
        if name == "bird" and self._speaker_only:
            pid = self._speaker_pid()
            if pid is None:
                raise NodeError(f"{self.name}: podnet-agent's BGP speaker (bird) is not running")
            os.kill(pid, signal_number)
            return
        self.supervisor.signal(name, signal_number)

    def stop_process(self, name: str, *, timeout_s: float | None = None) -> None:
        if name == "bird" and self._speaker_only:
            self.signal_process(name, signal.SIGTERM)  # the agent starts it again
            return
        self.supervisor.stop(name, timeout_s=timeout_s)

    # -- logs ---------------------------------------------------------------------
    def log_names(self) -> list[str]:
        return sorted(p.stem for p in self.logs.glob("*.log")) if self.logs.is_dir() else []

    def log_size(self, name: str) -> int:
        log = self.logs / f"{name}.log"
        return log.stat().st_size if log.exists() else 0

    def log_text(self, name: str, start: int = 0) -> str:
        log = self.logs / f"{name}.log"
        if not log.exists():
            return ""
        with open(log, "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    def log_where(self, name: str) -> str:
        return str(self.logs / f"{name}.log")

    def plugin_ready(self) -> bool:
        from podnet.api import unixhttp
        from podnet.errors import PodnetError

        try:
            reply = unixhttp.request(str(self.plugin_sock), "POST", "/Plugin.Activate", body=b"", timeout=2)
            implements = json.loads(reply.body or b"{}").get("Implements", [])
        except (PodnetError, OSError, ValueError):
            return False
        return reply.status == 200 and "NetworkDriver" in implements

    # -- persisted form (so another `lab` command can find and stop everything) ------
    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "netns": self.netns, **self.supervisor.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], run_id: str, root: Path) -> NetnsNode:
        node = cls(str(state["name"]), run_id, root)
        node.supervisor.load(state)
        return node

    # -- dockerd --------------------------------------------------------------------
    def start_dockerd(self, *, timeout_s: float = 60.0) -> None:
        script = self.path("start-dockerd.sh")
        script.write_text(
            DOCKERD_SCRIPT.format(
                cg=self.path("cg"),
                plugins=self.plugin_dir,
                etc_docker=self.path("etc-docker"),
                data=self.path("docker-data"),
                exec_root=self.path("docker-exec"),
                sock=self.docker_sock,
                pidfile=self.path("docker.pid"),
                cgroup_parent=self.cgroup_parent,
            )
        )
        self.define(
            "dockerd",
            ProcessSpec(
                ["unshare", "-m", "-u", "bash", str(script)], ready="dockerd", timeout_s=timeout_s, stop_timeout_s=30
            ),
        )
        self.start_process("dockerd")

    def _kill_stale_containerd(self) -> None:
        """A dockerd that was killed leaves its own containerd (and shims) running; a new dockerd
        could not start its containerd beside them."""
        stale = processes_running_from(self.path("docker-exec"))
        for pid in stale:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while stale and processes_running_from(self.path("docker-exec")) and time.monotonic() < deadline:
            time.sleep(0.05)

    def import_image(self, tarball: Path, image: str) -> None:
        with open(tarball, "rb") as data:
            proc = subprocess.run(
                [DOCKER_CLI, "-H", f"unix://{self.docker_sock}", "import", "-c", "ENV PATH=/bin", "-", image],
                stdin=data,
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            raise NodeError(f"{self.name}: docker import: {proc.stderr.strip()}")

    def stop_dockerd(self) -> None:
        if self.alive("dockerd"):
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=60)
            networks = self.docker("network", "ls", "-q", "--filter", "driver=podnet", check=False).stdout.split()
            if networks:
                self.docker("network", "rm", *networks, check=False, timeout=60)
        self.stop_process("dockerd", timeout_s=20)

    # -- podnet -------------------------------------------------------------------------
    def start_agent(
        self,
        python: str,
        *extra: str,
        timeout_s: float = 30.0,
        require_pod_cidr: bool = True,
        docker_plugin: Sequence[str] | None = None,
    ) -> None:
        """Start podnet-agent; ready when it serves healthz (and, if required, has its pod CIDR). With
        `docker_plugin` (its flags for it) it serves the plugin socket too, and is ready once that answers.
        Without `extra` or `docker_plugin`, the agent starts again as it was defined (a restart)."""
        if extra or docker_plugin is not None or "podnet-agent" not in self.supervisor.specs:
            ready = ("agent-cidr" if require_pod_cidr else "agent") + ("" if docker_plugin is None else "+plugin")
            plugin = [] if docker_plugin is None else [
                "--docker-plugin-socket", str(self.plugin_sock), "--docker-host", f"unix://{self.docker_sock}",
                *docker_plugin,
            ]  # fmt: skip
            argv = [
                python, "-m", "podnet.cmd.agent",
                "--node-name", self.name,
                "--socket", str(self.agent_sock),
                "--store", self.state_url,
                *plugin,
                "--bpf-pin-dir", str(self.bpf_pin_dir),
                *extra,
            ]  # fmt: skip
            self.define("podnet-agent", ProcessSpec(argv, ready=ready, timeout_s=timeout_s))
        self.start_process("podnet-agent")

    @property
    def agent_args(self) -> tuple[str, ...]:
        """The extra flags the agent was defined with."""
        spec = self.supervisor.specs.get("podnet-agent")
        if spec is None:
            return ()
        return tuple(spec.argv[spec.argv.index("--bpf-pin-dir") + 2 :])

    def start_plugin(self, python: str, *extra: str, timeout_s: float = 30.0) -> None:
        argv = [
            python, "-m", "podnet.cmd.docker",
            "--socket", str(self.plugin_sock),
            "--agent-socket", str(self.agent_sock),
            "--docker-host", f"unix://{self.docker_sock}",
            *extra,
        ]  # fmt: skip
        self.define("podnet-docker", ProcessSpec(argv, ready="plugin", timeout_s=timeout_s))
        self.start_process("podnet-docker")

    def stop(self, name: str, *, timeout_s: float = 10.0) -> None:
        """Stop a process (integration tests' short name for stop_process)."""
        self.stop_process(name, timeout_s=timeout_s)

    # -- teardown -------------------------------------------------------------------------
    def destroy(self) -> None:
        """Remove everything: containers and networks (while podnet still answers
        dockerd), dockerd, then the other processes, the namespace, the cgroups in
        every hierarchy and the BPF pins."""
        errors = []
        try:
            self.stop_dockerd()
        except (NodeError, subprocess.TimeoutExpired) as err:
            errors.append(str(err))
            if self.alive("dockerd"):
                self.signal_process("dockerd", signal.SIGKILL)
        for name in list(self.supervisor.specs):
            self.stop_process(name)
        # What our processes started and left behind (an agent's bird when the agent
        # had to be killed): anything still running from this node's files.
        for pid in processes_running_from(self.dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pod in Path("/run/netns").glob(f"{self.netns}-*"):  # pods made by cni steps (pn-<run>-<node>-<pod>)
            subprocess.run(["ip", "netns", "del", pod.name], check=False, capture_output=True)
        if Path(self.netns_path).exists():
            subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)
        stuck = remove_node_cgroups(self.cgroup_parent)
        if stuck:
            errors.append(f"{self.name}: cgroups still in use: {', '.join(stuck)}")
        remove_pins(self.bpf_pin_dir)
        if errors:
            raise NodeError("; ".join(errors))
