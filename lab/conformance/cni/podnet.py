"""The podnet agent the CNI suite runs for its podnet subject, in the subject's host namespace.

It is podnet as deployed: the wheel of this checkout in the lab venv
(`lab.deploy.lab_venv()`), the compiled `podnet-cni` as the plugin, an agent
with its own pod CIDR, store and BPF pins, all removed afterwards.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.conformance.kernel import Namespaces

BPF_PINS = Path("/sys/fs/bpf/podnet")
POD_CIDR = "10.79.0.0/26"


class AgentError(RuntimeError):
    pass


class PodnetAgent:
    def __init__(self, ns: Namespaces, python: Path, workdir: Path, pod_cidr: str = POD_CIDR):
        self.ns, self.python, self.dir, self.pod_cidr = ns, python, workdir, pod_cidr
        self.socket = workdir / "agent.sock"
        self.log = workdir / "podnet-agent.log"
        self.pins = BPF_PINS / ns.host
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        return [
            str(self.python), "-m", "podnet.cmd.agent",
            "--node-name", self.ns.host,
            "--socket", str(self.socket),
            "--store", f"sqlite://{self.dir / 'state.db'}",
            "--pod-cidr", self.pod_cidr,
            "--bpf-pin-dir", str(self.pins),
        ]  # fmt: skip

    def start(self, timeout_s: float = 30.0) -> None:
        from podnet.api.client import AgentClient
        from podnet.errors import PodnetError

        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.ns.argv_for(None, self.argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentError(f"podnet-agent exited {self.proc.returncode}; see {self.log}")
            try:
                health = AgentClient(str(self.socket), timeout=2).healthz()
                if health.get("pod-cidr"):
                    return
            except (PodnetError, ValueError, OSError):
                pass
            time.sleep(0.05)
        raise AgentError(f"podnet-agent did not serve within {timeout_s:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The agent down for the block (a plugin that cannot serve ADD), then up again."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.pins, ignore_errors=True)
