"""A lab node as a network namespace plus a private mount namespace.

`NetnsNode` owns everything it creates, all named after the lab's run id:
the namespace `pn-<run>-<node>`, a directory tree under the lab root, its own
dockerd (own data root, exec root, socket, plugin directory, /etc/docker and
cgroup parent), and the podnet processes. `cmd()` runs a command in the node's
network namespace (`nsenter --net`, never `ip netns exec`, which remounts /sys
and hides bpffs and the cgroup tree); `destroy()` removes it all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lab.node import DOCKER_CLI, LabNode
from lab.node import NodeError as NodeError
from lab.node import wait_for as wait_for

CGROUP_ROOT = Path("/sys/fs/cgroup")
BPF_PINS = Path("/sys/fs/bpf/podnet")


@dataclass
class Process:
    """A process the node started; `popen` is None when it was started by another lab command."""

    name: str
    pid: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout_s: float) -> bool:
        if self.popen is not None:
            try:
                self.popen.wait(timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False


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
    processes: dict[str, Process] = field(default_factory=dict)
    agent_args: tuple[str, ...] = ()  # the last start_agent's extra flags, reused by a bare restart

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

    # -- life cycle -------------------------------------------------------------
    def create(self) -> NetnsNode:
        if Path(self.netns_path).exists():
            raise NodeError(f"network namespace {self.netns} already exists: run `lab clean`")
        for d in ("plugins", "etc-docker", "docker-data", "docker-exec", "run", "state", "logs", "cg", "cni"):
            self.path(d).mkdir(parents=True, exist_ok=True)
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        self.cmd("ip", "link", "set", "lo", "up")
        return self

    def argv_for(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={self.netns_path}", *argv]

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> Process:
        """Start a long-running process in the node's network namespace."""
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                ["nsenter", f"--net={self.netns_path}", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        process = Process(name, popen.pid, log, popen)
        self.processes[name] = process
        return process

    def stop(self, name: str, *, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or not process.alive():
            return
        process.signal(sig)
        if not process.wait(timeout_s):
            process.signal(signal.SIGKILL)
            process.wait(5)

    def _kill_leftovers(self) -> None:
        """Processes our processes started and left behind (an agent's bird when the
        agent had to be killed): anything still running from this node's files."""
        for pid in processes_running_from(self.dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.alive()

    @property
    def where(self) -> str:
        return f"netns {self.netns}"

    def process_states(self) -> dict[str, bool]:
        return {name: self.alive(name) for name in self.processes}

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

    # -- persisted form (so another `lab` command can find and stop everything) ------
    def to_state(self) -> dict[str, object]:
        return {
            "name": self.name,
            "netns": self.netns,
            "processes": {n: {"pid": p.pid, "log": str(p.log)} for n, p in self.processes.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, object], run_id: str, root: Path) -> NetnsNode:
        node = cls(str(state["name"]), run_id, root)
        procs = state.get("processes") or {}
        assert isinstance(procs, dict)
        for name, info in procs.items():
            node.processes[name] = Process(name, int(info["pid"]), Path(info["log"]))
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
        self.start("dockerd", ["unshare", "-m", "-u", "bash", str(script)])

        def up() -> bool:
            if not self.alive("dockerd"):
                raise NodeError(f"{self.name}: dockerd exited; see {self.logs / 'dockerd.log'}")
            return self.docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0

        wait_for(up, timeout_s, f"dockerd on {self.name} ({self.docker_sock})")

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
        self.stop("dockerd", timeout_s=20)

    # -- podnet -------------------------------------------------------------------------
    def start_agent(self, python: str, *extra: str, timeout_s: float = 30.0, require_pod_cidr: bool = True) -> None:
        """Start podnet-agent; ready when it serves healthz (and, if required, has its pod CIDR).

        Without `extra`, the flags of the previous start are used again (a restart)."""
        extra = extra or self.agent_args
        self.agent_args = extra
        self.start(
            "podnet-agent",
            [
                python,
                "-m",
                "podnet.cmd.agent",
                "--node-name",
                self.name,
                "--socket",
                str(self.agent_sock),
                "--store",
                self.state_url,
                "--bpf-pin-dir",
                str(self.bpf_pin_dir),
                *extra,
            ],
        )
        wait_for(
            lambda: self.agent_ready(require_pod_cidr), timeout_s, f"podnet-agent on {self.name} ({self.agent_sock})"
        )

    def start_plugin(self, python: str, *extra: str, timeout_s: float = 30.0) -> None:
        sock = self.plugin_dir / "podnet.sock"
        self.start(
            "podnet-docker",
            [
                python,
                "-m",
                "podnet.cmd.docker",
                "--socket",
                str(sock),
                "--agent-socket",
                str(self.agent_sock),
                "--docker-host",
                f"unix://{self.docker_sock}",
                *extra,
            ],
        )
        wait_for(
            lambda: self._plugin_ready(sock),
            timeout_s,
            f"podnet-docker on {self.name} answering Plugin.Activate ({sock})",
        )

    def _plugin_ready(self, sock: Path) -> bool:
        if not self.alive("podnet-docker"):
            raise NodeError(f"{self.name}: podnet-docker exited; see {self.logs / 'podnet-docker.log'}")
        from lab import unixhttp

        try:
            status, reply, _ = unixhttp.post(str(sock), "/Plugin.Activate", b"")
        except (OSError, ValueError):
            return False
        return status == 200 and "NetworkDriver" in (reply or {}).get("Implements", [])

    # -- teardown -------------------------------------------------------------------------
    def destroy(self) -> None:
        """Remove everything: containers and networks (while podnet still answers
        dockerd), dockerd, then podnet's processes, the namespace and the cgroups."""
        errors = []
        try:
            self.stop_dockerd()
        except (NodeError, subprocess.TimeoutExpired) as err:
            errors.append(str(err))
            self.stop("dockerd", sig=signal.SIGKILL)
        for name in list(self.processes):
            self.stop(name)
        self._kill_leftovers()
        if Path(self.netns_path).exists():
            subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)
        remove_cgroup(CGROUP_ROOT / self.cgroup_parent)
        remove_pins(self.bpf_pin_dir)
        if errors:
            raise NodeError("; ".join(errors))


def remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def processes_running_from(root: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line names a file under `root`."""
    marker = f"{root}/".encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            found[int(proc.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def remove_pins(path: Path) -> None:
    """Unpin a node's BPF maps; the kernel frees them once no program uses them."""
    if not path.is_dir():
        return
    for pin in path.iterdir():
        with contextlib.suppress(OSError):
            pin.unlink()
    with contextlib.suppress(OSError):
        path.rmdir()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def docker_node(
    name: str,
    python: str,
    *,
    agent_args: Sequence[str] = (),
    plugin_args: Sequence[str] = (),
    keep_logs: Path | None = None,
) -> Iterator[NetnsNode]:
    """One node with its own dockerd, the lab image, podnet's agent and plugin; removed on exit."""
    from lab.image import IMAGE, build_rootfs_tar

    run_id = secrets.token_hex(3)
    root = Path(f"/tmp/podnet-{name}-{run_id}")
    node = NetnsNode(name, run_id, root)
    try:
        node.create()
        node.start_dockerd()
        node.import_image(build_rootfs_tar(root / "busybox.tar"), IMAGE)
        node.start_agent(python, *agent_args)
        node.start_plugin(python, *plugin_args)
        yield node
    finally:
        try:
            node.destroy()
        finally:
            if keep_logs is not None and node.logs.is_dir():
                shutil.copytree(node.logs, keep_logs / f"{name}-{run_id}", dirs_exist_ok=True)
            remove_tree(root)
