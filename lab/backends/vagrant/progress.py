"""Each VM's way through `vagrant up` (booting, provisioning which step, ready), read from vagrant's
output as it is written, and timed: the breakdown `lab up` records and bench/vagrant_lab.py prints.

vagrant-libvirt prefixes what it says about a machine with `==> <vm>:`, and the
shell provisioner's output with `    <vm>:`; provision.sh says `step: …` before each
of its steps and `done` at the end. The times are when the lines were read
(polled every half second).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lab.backends.base import Timing

# (pattern on one line of vagrant's output, phase it starts); the VM's name is group "vm".
_VAGRANT = [
    (r"==> (?P<vm>\S+): Uploading base box image", "copying the box into libvirt's pool"),
    (r"==> (?P<vm>\S+): Creating image", "creating its disk and domain"),
    (r"==> (?P<vm>\S+): Starting domain", "booting"),
    (r"==> (?P<vm>\S+): Waiting for domain to get an IP address", "booting (kernel, until its DHCP lease)"),
    (r"==> (?P<vm>\S+): Waiting for machine to boot", "booting (until sshd answers)"),
    (r"==> (?P<vm>\S+): Machine booted and ready", "booted"),
    (r"==> (?P<vm>\S+): Running provisioner: podnet-upload", "provisioning: upload"),
    (r"==> (?P<vm>\S+): Running provisioner: podnet ", "provisioning: unpacking"),
    (r"\s+(?P<vm>\S+): podnet provision \([^)]*\): step: (?P<step>.*)", "provisioning: {step}"),
    (r"\s+(?P<vm>\S+): podnet provision \([^)]*\): done", "provisioned"),
]
PATTERNS = [(re.compile(pattern), phase) for pattern, phase in _VAGRANT]


@dataclass
class VMProgress:
    """One VM: its phase now, and when (seconds since the bring-up began) each part began and ended."""

    name: str
    phase: str = "waiting for vagrant"
    boot: list[float] = field(default_factory=list)  # [start, end]
    provision: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)

    def timings(self) -> list[Timing]:
        spans = [("boot", self.boot), ("provision", self.provision), ("ready", self.ready)]
        return [
            Timing(f"{self.name}: {what}", round(s[0], 3), round(s[1] - s[0], 3)) for what, s in spans if len(s) == 2
        ]


class VagrantProgress:
    """Follows vagrant's output file; `poll()` reads what is new and says whether any VM moved on."""

    def __init__(self, log: Path, vms: Iterable[str], started: float):
        self.log = log
        self.vms = {name: VMProgress(name) for name in vms}
        self.started = started
        self._offset = 0
        self._partial = ""

    def now(self) -> float:
        return time.perf_counter() - self.started

    def poll(self) -> bool:
        try:
            with self.log.open(errors="replace") as f:
                f.seek(self._offset)
                data = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return False
        lines = (self._partial + data).split("\n")
        self._partial = lines.pop()
        moved = False
        for line in lines:
            moved |= self.feed(line, self.now())
        return moved

    def feed(self, line: str, at: float) -> bool:
        for pattern, phase in PATTERNS:
            match = pattern.match(line)
            if match is None or match.group("vm") not in self.vms:
                continue
            vm = self.vms[match.group("vm")]
            groups = match.groupdict()
            new = phase.format(step=groups.get("step") or "").strip()
            if new.startswith("booting") and not vm.boot:
                vm.boot = [at]
            elif new == "booted" and len(vm.boot) == 1:
                vm.boot.append(at)
            elif new.startswith("provisioning") and not vm.provision:
                vm.provision = [at]
            elif new == "provisioned" and len(vm.provision) == 1:
                vm.provision.append(at)
                vm.ready = [at]
            if new == vm.phase:
                return False
            vm.phase = new
            return True
        return False

    def set_ready(self, name: str) -> None:
        vm = self.vms[name]
        vm.phase = "ready"
        if len(vm.ready) == 1:
            vm.ready.append(self.now())

    def summary(self) -> str:
        """One line: every VM and its phase."""
        return " · ".join(f"{vm.name} {vm.phase}" for vm in self.vms.values())

    def timings(self) -> list[Timing]:
        return [t for vm in self.vms.values() for t in vm.timings()]


def overlap(spans: Iterable[tuple[float, float]]) -> tuple[float, float, float]:
    """(sum of the spans, wall time from the first start to the last end, sum / wall): how many
    ran at once on average."""
    spans = list(spans)
    if not spans:
        return 0.0, 0.0, 0.0
    total = sum(end - start for start, end in spans)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return total, wall, (total / wall if wall > 0 else 1.0)
