"""The netns backend's processes: defined once, started under a small supervisor, known to later commands.

A process is defined by a `ProcessSpec` (argv, environment, how to tell it
serves), persisted with the lab, so any later `lab` command can start, stop
or signal it by name. Each runs under a bash supervisor that records the
PID and, when the process ends, its exit status (`<state>.pid`,
`<state>.exit`): `lab status` can say "killed by SIGKILL" for a process an
earlier command started. Signals go to the process itself, never the
supervisor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.backends.base import NodeError, ProcessState, wait_for
from lab.backends.netns.host import pid_state

# $0 is the state path; the process's PID goes to $0.pid, its exit status to $0.exit.
SUPERVISE = '"$@" & child=$!; echo $child > "$0.pid"; wait $child; echo $? > "$0.exit"'


@dataclass
class ProcessSpec:
    """How to start one of a node's processes, and how to tell it serves."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: str = ""  # dockerd | agent | agent-cidr | plugin | etcd | bird | "" (started is enough); a+b: both
    timeout_s: float = 30.0  # to serve, once started
    stop_timeout_s: float = 10.0  # after SIGTERM, before SIGKILL
    nice: int = 0  # its scheduling niceness (negative: ahead of the rest; `nice -n`, as root)


def exit_detail(status: str) -> str:
    """bash's $? of a finished process, for people: 'exited 1', 'killed by SIGKILL'."""
    if not status.isdigit():
        return "exited"
    code = int(status)
    if code > 128:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(code - 128).name}"
    return f"exited {code}"


def _niced(spec: ProcessSpec) -> list[str]:
    """The command line, under `nice -n` when it has a niceness (nice execs it: the PID is the process's)."""
    return ["nice", "-n", str(spec.nice), *spec.argv] if spec.nice else list(spec.argv)


@dataclass
class Supervisor:
    owner: str  # the node's name, for messages
    state_dir: Path
    logs: Path
    wrap: Callable[[list[str]], list[str]]  # the command line that runs argv on the node
    specs: dict[str, ProcessSpec] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def define(self, name: str, spec: ProcessSpec) -> None:
        self.specs[name] = spec

    def spec(self, name: str) -> ProcessSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(self.specs) or "none"
            raise NodeError(f"{self.owner}: no process {name!r} on this node (it runs: {known})") from None

    def _state(self, name: str) -> Path:
        return self.state_dir / name

    def spawn(self, name: str) -> int:
        """Start the process (not waiting for it to serve); its PID."""
        spec = self.spec(name)
        if self.alive(name):
            raise NodeError(f"{self.owner}: {name} is already running (pid {self.pids[name]})")
        state = self._state(name)
        state.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".pid", ".exit"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as out:
            subprocess.Popen(
                self.wrap(["bash", "-c", SUPERVISE, str(state), *_niced(spec)]),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env},
                start_new_session=True,
            )
        pid_file = Path(f"{state}.pid")
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), 10, f"{name} to start")
        self.pids[name] = int(pid_file.read_text())
        return self.pids[name]

    def alive(self, name: str) -> bool:
        pid = self.pids.get(name)
        return pid is not None and pid_state(pid) not in (None, "Z")

    def states(self) -> dict[str, ProcessState]:
        states = {}
        for name in self.specs:
            pid = self.pids.get(name)
            letter = pid_state(pid) if pid is not None else None
            running = letter not in (None, "Z")
            if running:
                detail = "paused" if letter in ("T", "t") else ""
            else:
                detail = self._ended(name) if pid is not None else "not started"
            states[name] = ProcessState(name, running, pid if running else None, None, detail)
        return states

    def _ended(self, name: str, wait_s: float = 1.0) -> str:
        """How a process that ran has ended. The supervisor writes the status just after the
        process is reaped: a reader right after a kill may have to wait a moment for it."""
        exit_file = Path(f"{self._state(name)}.exit")
        deadline = time.monotonic() + wait_s
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not exit_file.exists():
            return "ended (its supervisor is gone: no exit status)"
        return exit_detail(exit_file.read_text().strip())

    def signal(self, name: str, signal_number: int) -> None:
        self.spec(name)
        pid = self.pids.get(name)
        if pid is None or not self.alive(name):
            raise NodeError(f"{self.owner}: {name} is not running")
        os.kill(pid, signal_number)
        if signal_number == signal.SIGKILL:
            self._gone(name, 5)  # reaped and its exit status recorded: what `lab status` says next is true

    def stop(self, name: str, *, timeout_s: float | None = None) -> None:
        """SIGTERM (after SIGCONT: a paused process cannot act on it), SIGKILL after timeout_s
        (default: the process's own stop timeout)."""
        if timeout_s is None:
            timeout_s = self.spec(name).stop_timeout_s if name in self.specs else 10.0
        pid = self.pids.get(name)
        if pid is None or not self.alive(name):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
        if not self._gone(name, timeout_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._gone(name, 5)

    def _gone(self, name: str, timeout_s: float) -> bool:
        """Whether it ended within timeout_s (and its exit status was recorded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive(name):
                self._ended(name, wait_s=0.5)
                return True
            time.sleep(0.05)
        return False

    # -- persisted form ----------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "pids": self.pids,
            "specs": {
                n: {"argv": s.argv, "env": s.env, "ready": s.ready, "stop_timeout_s": s.stop_timeout_s, "nice": s.nice}
                for n, s in self.specs.items()
            },
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.pids = {str(k): int(v) for k, v in (state.get("pids") or {}).items()}
        for name, spec in (state.get("specs") or {}).items():
            self.specs[name] = ProcessSpec(
                list(spec["argv"]),
                dict(spec.get("env", {})),
                str(spec.get("ready", "")),
                stop_timeout_s=float(spec.get("stop_timeout_s", 10.0)),
                nice=int(spec.get("nice", 0)),
            )
