"""A lab node that is a Vagrant VM, reached over ssh as root.

One ssh master connection per VM (ControlMaster) carries every command and
forwards the VM's dockerd and podnet agent sockets to local unix sockets, so
the docker CLI, podnet's API client and the checks talk to a VM exactly as
they talk to a netns node. Processes are systemd units; their logs live in
/var/log/podnet/ (podnet) or the journal (dockerd, bird, etcd).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lab.backends.base import NodeError, ProcessState, wait_for
from lab.backends.node import LabNode

# process name (as scenario files and the netns backend say) -> systemd unit
UNITS = {
    "dockerd": "docker",
    "podnet-agent": "podnet-agent",
    "podnet-docker": "podnet-docker",
    "podnet-operator": "podnet-operator",
    "bird": "bird",
    "etcd": "etcd",
}
PODNET_LOGS = "/var/log/podnet"
SPEAKER_PID = "/run/podnet/bgp/bird.pid"  # a worker's bird: podnet-agent's BGP speaker, not a unit
REMOTE_DOCKER_SOCK = "/run/docker.sock"
REMOTE_AGENT_SOCK = "/run/podnet/podnet.sock"
REMOTE_PLUGIN_SOCK = "/run/docker/plugins/podnet.sock"


@dataclass
class VagrantNode(LabNode):
    name: str
    dir: Path  # this node's files on the host: ssh control socket, forwarded sockets, collected logs
    ssh_config: Path
    health_timeout_s: ClassVar[float] = 15.0  # a VM under TCG: healthz runs birdc twice

    @property
    def control_path(self) -> Path:
        return self.dir / "ssh.ctl"

    @property
    def docker_sock(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def agent_sock(self) -> Path:
        return self.dir / "podnet.sock"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    def _ssh(self, *options: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), "-o", f"ControlPath={self.control_path}", *options]

    def argv_for(self, argv: Sequence[str]) -> list[str]:
        return [*self._ssh("-o", "ControlMaster=no"), self.name, shlex.join(argv)]

    def shell(self, command: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """An ssh session as root, with the node's environment (podnet on PATH)."""
        prefix = ["env", *(f"{k}={v}" for k, v in env.items())]
        remote = [shlex.join([*prefix, *command])] if command else [shlex.join([*prefix, "bash", "-l"])]
        return [*self._ssh("-t", "-o", "ControlMaster=no"), self.name, *remote], dict(os.environ)

    # -- the master connection ----------------------------------------------------------
    def connect(self) -> None:
        """Start the master connection with the socket forwards (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.connected():
            return
        forwards = ["-L", f"{self.docker_sock}:{REMOTE_DOCKER_SOCK}", "-L", f"{self.agent_sock}:{REMOTE_AGENT_SOCK}"]
        proc = subprocess.run(
            [*self._ssh("-M", "-N", "-f", "-o", "ControlPersist=yes", *forwards), self.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise NodeError(f"{self.name}: ssh master connection failed: {proc.stderr.strip()}")

    def connected(self) -> bool:
        check = self._ssh("-O", "check")
        return subprocess.run([*check, self.name], capture_output=True, check=False).returncode == 0

    def disconnect(self) -> None:
        if self.control_path.exists():
            subprocess.run([*self._ssh("-O", "exit"), self.name], capture_output=True, timeout=10, check=False)
        for sock in (self.docker_sock, self.agent_sock, self.control_path):
            sock.unlink(missing_ok=True)

    # -- processes are systemd units ------------------------------------------------------
    def unit(self, name: str) -> str:
        try:
            return UNITS[name]
        except KeyError:
            raise NodeError(f"{self.name}: no process {name!r} (known: {', '.join(UNITS)})") from None

    def start_process(self, name: str) -> None:
        if self._is_speaker(name):
            raise NodeError(f"{self.name}: bird here is podnet-agent's BGP speaker: the agent starts it by itself")
        self.cmd("systemctl", "start", self.unit(name), timeout=60)
        if name == "podnet-agent":
            wait_for(lambda: self.agent_ready(require_pod_cidr=False), 60, f"podnet-agent on {self.name}")
            if (
                "podnet-docker" not in self.processes()
                and self.cmd("grep", "-q", "^docker_plugin_socket", "/etc/podnet/agent.toml", check=False).returncode
                == 0
            ):
                wait_for(self.plugin_ready, 60, f"the docker plugin in podnet-agent on {self.name}", interval_s=0.5)
        elif name == "podnet-docker":
            wait_for(self.plugin_ready, 60, f"podnet-docker on {self.name}", interval_s=0.5)

    def stop_process(self, name: str, *, timeout_s: float | None = None) -> None:
        if self._is_speaker(name):
            self.signal_process(name, signal.SIGTERM)
            return
        self.cmd("systemctl", "stop", self.unit(name), timeout=60 + (timeout_s or 30))

    def _is_speaker(self, name: str) -> bool:
        return name == "bird" and self.cmd("test", "-f", SPEAKER_PID, check=False).returncode == 0

    def signal_process(self, name: str, signal_number: int) -> None:
        sig = signal.Signals(signal_number).name
        if self._is_speaker(name):  # podnet-agent's speaker: the agent starts it again
            self.cmd("sh", "-c", f'kill -s {sig.removeprefix("SIG")} "$(cat {SPEAKER_PID})"', timeout=60)
            return
        self.cmd("systemctl", "kill", "--kill-who=main", "-s", sig, self.unit(name), timeout=60)

    @property
    def where(self) -> str:
        return f"VM {self.name} (ssh)"

    def processes(self) -> dict[str, ProcessState]:
        """The lab's units on this VM that are enabled, and their state: one ssh call, running two
        commands (a `systemctl` per unit and question cost ~0.4 s each of emulated CPU). Enabled is
        what provision.sh's `enable` makes: the unit's link in multi-user.target.wants."""
        units = {UNITS[n]: n for n in UNITS}
        script = (
            'echo "@@enabled $(ls /etc/systemd/system/multi-user.target.wants 2>/dev/null | tr "\\n" " ")"; '
            'systemctl show -p Id -p ActiveState -p SubState -p MainPID -p ExecMainStatus -p Result "$@"; '
            f'[ -f {SPEAKER_PID} ] && p=$(cat {SPEAKER_PID}) && echo "@@speaker $p $([ -d /proc/$p ] && echo up)"'
        )
        out = self.cmd("bash", "-c", script, "services", *(f"{u}.service" for u in units), check=False).stdout
        found: dict[str, dict[str, str]] = {}
        enabled: set[str] = set()
        props: dict[str, str] = {}
        speaker: ProcessState | None = None
        for line in [*out.splitlines(), ""]:
            if line.startswith("@@speaker "):
                _, pid, *up = line.split()
                speaker = ProcessState(
                    "bird",
                    bool(up),
                    int(pid) if up and pid.isdigit() else None,
                    None,
                    "" if up else "not running (podnet-agent's speaker)",
                )
            elif line.startswith("@@enabled"):
                enabled = {name.removesuffix(".service") for name in line.split()[1:]}
            elif "=" in line:
                key, _, value = line.partition("=")
                props[key] = value
            elif props:  # a blank line ends a unit's block
                unit = props.get("Id", "").removesuffix(".service")
                found[unit] = {**props, "enabled": "enabled" if unit in enabled else "disabled"}
                props = {}
        states = {}
        for unit, props in found.items():
            if unit not in units or props.get("enabled") != "enabled":
                continue
            name = units[unit]
            running = props.get("ActiveState") in ("active", "activating", "reloading")
            pid = props.get("MainPID", "")
            if props.get("SubState") == "auto-restart":
                detail = f"restarting after {props.get('Result')} (exit status {props.get('ExecMainStatus')})"
            elif running:
                detail = ""
            else:
                detail = (
                    f"{props.get('ActiveState')} ({props.get('Result')}, exit status {props.get('ExecMainStatus')})"
                )
            states[name] = ProcessState(
                name, running, int(pid) if running and pid.isdigit() and pid != "0" else None, unit, detail
            )
        if speaker is not None and "bird" not in states:
            states["bird"] = speaker
        return states

    # -- logs --------------------------------------------------------------------------
    def _log_path(self, name: str) -> str:
        return f"{PODNET_LOGS}/{name}.log"

    def log_size(self, name: str) -> int:
        out = self.cmd("stat", "-c", "%s", self._log_path(name), check=False).stdout.strip()
        return int(out) if out.isdigit() else 0

    def log_text(self, name: str, start: int = 0) -> str:
        if name.startswith("podnet-"):
            return self.cmd("tail", "-c", f"+{start + 1}", self._log_path(name), check=False).stdout
        return self.cmd("journalctl", "-u", self.unit(name), "--no-pager", "-o", "short-precise", check=False).stdout

    def log_where(self, name: str) -> str:
        where = self._log_path(name) if name.startswith("podnet-") else f"journalctl -u {self.unit(name)}"
        return f"{self.name}: {where} (`lab logs {self.name} {name}`)"

    def log_names(self) -> list[str]:
        return sorted(self.processes())

    def plugin_ready(self) -> bool:
        """podnet-docker answers Plugin.Activate as a network driver (asked on the VM)."""
        proc = self.cmd(
            "curl", "-fsS", "-m", "3", "--unix-socket", REMOTE_PLUGIN_SOCK, "-X", "POST",
            "http://plugin/Plugin.Activate", check=False,
        )  # fmt: skip
        return proc.returncode == 0 and "NetworkDriver" in proc.stdout
