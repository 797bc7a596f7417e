"""A bird2 BGP speaker owned by the agent.

The agent writes a bird configuration that holds the node's pod CIDR as a
static route inside bird only (never in the kernel) and exports it over a
BGP session to each peer (the ToR; a dual-homed node's two leaves, with its
node IP /32 too) with the session's own address as next hop; it starts
`bird -f` as a child and stops it when the agent stops, which closes the
session and makes the ToR withdraw the route. Timers are short so a lost
session comes back in seconds (bird's defaults wait ~73 s).

A single-homed node imports nothing. With `import_default` (a dual-homed node) it imports the
default route each peer sends and installs it in the kernel as one multipath route, a next hop
per peer that sends one (`merge paths`), with the node IP as preferred source: a peer whose
session ends (BFD: in a few hundred ms) leaves the route at once. The route's metric (32) is
below that of any fallback default the node was booted with, which stays as the last resort
while no peer sends a default (start-up, the speaker restarting).
"""

from __future__ import annotations

import logging
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podnet.errors import PodnetError

HEAD = """\
# Written by podnet-agent; rewritten on every start.
router id {node_ip};
log stderr all;

protocol device {{ scan time 10; }}

protocol static podnet_pod_cidr {{
  ipv4;{pod_cidr_route}
}}
"""

NODE_IP = """
protocol static podnet_node_ip {{
  ipv4;
  route {node_ip}/32 blackhole;
}}
"""

BFD = """
protocol bfd {{
  interface "*" {{ min rx interval {interval} ms; min tx interval {interval} ms; multiplier {multiplier}; }};
}}
"""

KERNEL = """
protocol kernel podnet_kernel {{
  ipv4 {{
    import none;
    export filter {{
      if source != RTS_BGP then reject;
      krt_prefsrc = {node_ip};
      accept;
    }};
  }};
  merge paths on;
  metric {metric};
}}
"""

SESSION = """
protocol bgp {name} {{
  description "top-of-rack router";
  local {local}as {asn};
  neighbor {peer_ip} as {peer_asn};
  hold time 9;
  keepalive time 3;
  connect delay time 1;
  connect retry time 3;
  error wait time 1, 10;
  error forget time 10;{bfd}
  ipv4 {{
    import {import_};
    export where {export};
    next hop self;
  }};
}}
"""


log = logging.getLogger("podnet.bgp")
KERNEL_METRIC = 32  # the learned default's metric: a fallback default needs a higher one
WATCH_INTERVAL_S = 0.5  # how soon a speaker that died is noticed and started again
# While a session is not Established, bird is asked for its sessions this often. Asking wakes its
# event loop: bird 2.0.12 queues the UPDATE for a session that has just come up and sends it only
# when its loop next wakes (measured: 0.05-1.1 s after Established, with nothing asking; asked
# every 100 ms, within 25 ms).
NUDGE_INTERVAL_S = 0.1


class BGPError(PodnetError):
    pass


def exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited {returncode}"


@dataclass(frozen=True)
class Peer:
    address: str
    asn: int


@dataclass(frozen=True)
class BGPConfig:
    """What the speaker announces, to whom. One peer (a ToR): sessions named `tor`, spoken from the node
    IP. Several (a dual-homed node's leaves): `tor1`, `tor2`, … With `announce_node_ip` the node IP is
    a /32 of its own (on lo), announced too, and each session speaks from its link's address;
    either way the next hop is the session's own address (next hop self). With `import_default` the
    default routes the peers send go into the kernel (see the module's docstring)."""

    node_ip: str
    asn: int
    peers: tuple[Peer, ...]
    announce_node_ip: bool = False
    bfd_interval_ms: int | None = None  # BFD on every session, when set
    bfd_multiplier: int = 3
    import_default: bool = False  # install the peers' default routes in the kernel (ECMP)

    def names(self) -> list[str]:
        return ["tor"] if len(self.peers) == 1 else [f"tor{i + 1}" for i in range(len(self.peers))]

    def render(self, pod_cidr: str | None) -> str:
        """bird's configuration; without a pod CIDR (yet), the sessions come up announcing nothing."""
        route = f"\n  route {pod_cidr} blackhole;" if pod_cidr is not None else ""
        text = HEAD.format(node_ip=self.node_ip, pod_cidr_route=route)
        export = 'proto = "podnet_pod_cidr"'
        if self.announce_node_ip:
            text += NODE_IP.format(node_ip=self.node_ip)
            export += ' || proto = "podnet_node_ip"'
        if self.import_default:
            text += KERNEL.format(node_ip=self.node_ip, metric=KERNEL_METRIC)
        if self.bfd_interval_ms is not None:
            text += BFD.format(interval=self.bfd_interval_ms, multiplier=self.bfd_multiplier)
        for name, peer in zip(self.names(), self.peers, strict=True):
            text += SESSION.format(
                name=name,
                local="" if self.announce_node_ip else f"{self.node_ip} ",
                asn=self.asn,
                peer_ip=peer.address,
                peer_asn=peer.asn,
                bfd="\n  bfd on;" if self.bfd_interval_ms is not None else "",
                import_="where net = 0.0.0.0/0" if self.import_default else "none",
                export=export,
            )
        return text


@dataclass(frozen=True)
class PeerState:
    name: str
    peer_ip: str
    peer_asn: int
    state: str  # bird's protocol state: up/start/down
    session: str  # Established, Active, Connect, …
    since: str
    routes_exported: int


class BirdSpeaker:
    """bird as the agent's child, kept running. It may start before the node has a pod CIDR
    (podnet-agent starts it first thing, so bird's one-second connect delay passes while the agent
    starts); `announce()` then adds the pod CIDR by reconfiguring bird, which keeps its sessions."""

    def __init__(self, config: BGPConfig, pod_cidr: str | None, workdir: Path):
        self.config = config
        self.pod_cidr = pod_cidr
        self.workdir = workdir
        self.conf = workdir / "bird.conf"
        self.ctl = workdir / "bird.ctl"
        self.pidfile = workdir / "bird.pid"
        self.log = workdir / "bird.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.last_exit = ""  # how the speaker last died, when it did
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> None:
        """Start bird, and a watchdog that starts it again whenever it dies (killed, crashed); a
        no-op while both run."""
        if self._watchdog is not None:
            return
        with self._lock:
            self._start_bird()
        self._stopping.clear()
        self._watchdog = threading.Thread(target=self._watch, name="bird-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        """Start bird again when it dies; ask it for its sessions, often while one is not up."""
        interval = NUDGE_INTERVAL_S
        while not self._stopping.wait(interval):
            with self._lock:
                proc = self.proc
                if self._stopping.is_set() or proc is None:
                    continue
                if proc.poll() is not None:
                    self.last_exit = exit_text(proc.returncode)
                    self.restarts += 1
                    log.warning("the BGP speaker (bird) %s; starting it again", self.last_exit)
                    try:
                        self._start_bird()
                    except BGPError as err:
                        log.error("restarting the BGP speaker failed: %s", err)
                    interval = WATCH_INTERVAL_S  # a bird that dies at once is not restarted 10x a second
                    continue
            interval = WATCH_INTERVAL_S if self.established() else NUDGE_INTERVAL_S

    def established(self) -> bool:
        """Whether every session is Established (False when bird does not answer), asked on bird's
        control socket (no birdc process)."""
        try:
            out = self.control("show protocols")
        except (OSError, BGPError):
            return False
        up = set()
        for line in out.splitlines():
            # "1002-device1  Device ...", then " tor  BGP  ---  up  12:00:00.000  Established": bird
            # writes a line of the same code as the one before with a space for its code.
            fields = (line[5:] if re.match(r"^\d{4}[- ]", line) else line[1:]).split()
            if len(fields) >= 6 and fields[1] == "BGP" and "Established" in fields[5:]:
                up.add(fields[0])
        return up >= set(self.config.names())

    def control(self, command: str, timeout_s: float = 2.0) -> str:
        """One command on bird's control socket (what birdc does): its reply, without the greeting."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(self.ctl))
            stream = sock.makefile("rwb")
            _reply(stream.readline)  # "0001 BIRD 2.0.12 ready."
            stream.write(command.encode() + b"\n")
            stream.flush()
            return _reply(stream.readline)

    def announce(self, pod_cidr: str) -> None:
        """Announce `pod_cidr` from now on. A running bird reads its new configuration in place
        (`configure` on its control socket): only the static protocol changes, so the sessions stay up and the
        route goes out at once; a bird not running gets it when it (re)starts."""
        with self._lock:
            if pod_cidr == self.pod_cidr:
                return
            before, self.pod_cidr = self.pod_cidr, pod_cidr
            if self.proc is None or self.proc.poll() is not None:
                return
            try:
                self._write_conf(self._binary())
                out = self.control("configure", timeout_s=5)
            except (OSError, BGPError) as err:
                self.pod_cidr = before  # not announced: a later call tries again
                raise BGPError(f"asking bird to read {self.conf}: {err}") from err
            # 0003 Reconfigured, 0004 Reconfiguration in progress, 0005 … already in progress, queueing
            if not re.search(r"^000[345] ", out, re.MULTILINE):
                self.pod_cidr = before
                raise BGPError(f"bird did not take {self.conf}: {out.strip()}")

    def _binary(self) -> str:
        binary = shutil.which("bird")
        if binary is None:
            raise BGPError("bird not found: install Debian's bird2 to announce the pod CIDR over BGP")
        return binary

    def _write_conf(self, binary: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.config.render(self.pod_cidr))
        check = subprocess.run([binary, "-p", "-c", str(self.conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise BGPError(f"bird rejected {self.conf}: {check.stderr.strip()}")

    def _start_bird(self) -> None:
        binary = self._binary()
        self._write_conf(binary)
        self._kill_stale()
        self.ctl.unlink(missing_ok=True)  # a killed bird's socket: ready is when the new one binds it
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-f", "-c", str(self.conf), "-s", str(self.ctl), "-P", str(self.pidfile)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.ctl.exists():
            if self.proc.poll() is not None:
                raise BGPError(f"bird exited with {self.proc.returncode}; see {self.log}")
            time.sleep(0.05)

    def _kill_stale(self) -> None:
        """A bird left by an agent that was killed: stop it before starting ours."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and str(self.conf).encode() in cmdline.read_bytes():
            subprocess.run(["kill", str(pid)], check=False)
            for _ in range(50):
                if not cmdline.exists():
                    break
                time.sleep(0.05)

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(5)
            self._watchdog = None
        with self._lock:  # after a restart the watchdog may still be finishing: its bird goes too
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def birdc(self, *command: str) -> str:
        proc = subprocess.run(["birdc", "-s", str(self.ctl), *command], capture_output=True, text=True, timeout=5)
        if proc.returncode != 0:
            raise BGPError(f"birdc {' '.join(command)}: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def note(self) -> str:
        """What happened to the speaker, when something did: '(restarted 2x; last: killed by SIGKILL)'."""
        return f"restarted {self.restarts}x; last: {self.last_exit}" if self.restarts else ""

    def peers(self) -> list[PeerState]:
        if not self.running():
            died = f" ({self.last_exit or exit_text(self.proc.returncode)})" if self.proc is not None else ""
            raise BGPError(f"the BGP speaker (bird) is not running{died}; the agent starts it again")
        return [
            parse_protocol(self.birdc("show", "protocols", "all", name), name, peer)
            for name, peer in zip(self.config.names(), self.config.peers, strict=True)
        ]

    def routes(self) -> list[str]:
        """What is announced (the same on every session)."""
        out = self.birdc("show", "route", "export", self.config.names()[0])
        return [line.split()[0] for line in out.splitlines() if re.match(r"^\d+\.\d+\.\d+\.\d+/\d+", line)]


def _reply(readline: Callable[[], bytes]) -> str:
    """Lines of one reply on bird's control socket, up to its last ("DDDD text": a code, then a
    space; "DDDD-text" and " text" lines continue it); codes 8xxx and 9xxx are errors."""
    lines = []
    while line := readline():
        text = line.decode(errors="replace").rstrip("\n")
        lines.append(text)
        if re.match(r"^\d{4} ", text):
            if text[0] in "89":
                raise BGPError(f"bird: {text[5:]}")
            break
    else:
        raise BGPError("bird closed its control socket mid-reply")
    return "\n".join(lines)


def parse_protocol(text: str, name: str, peer: Peer) -> PeerState:
    """`birdc show protocols all NAME` → state, BGP session state, exported route count."""
    state = session = since = "unknown"
    exported = 0
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == name and len(fields) >= 6:
            state, since = fields[3], fields[4]
            session = fields[5]
        match = re.search(r"Routes:\s+\d+ imported,\s+(\d+) exported", line)
        if match:
            exported = int(match.group(1))
        match = re.search(r"BGP state:\s+(\S+)", line)
        if match:
            session = match.group(1)
    return PeerState(name, peer.address, peer.asn, state, session, since, exported)
