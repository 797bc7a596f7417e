"""What a step or check works with: the lab, the scenario's variables and captures, its output directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.backends.lab import AnyLab
from lab.backends.node import LabNode


class StepFailed(Exception):
    """A step could not do what it says; the message is the report's."""


@dataclass
class Context:
    lab: AnyLab
    out: Path  # the scenario's artifacts directory
    variables: dict[str, str] = field(default_factory=dict)
    pcaps: dict[str, Path] = field(default_factory=dict)  # capture name -> pcap file
    marks: dict[str, Any] = field(default_factory=dict)  # what checks prepared before the step's action
    faults: dict[str, ActiveFault] = field(default_factory=dict)  # applied, not yet restored (in order)
    cleanups: list[Callable[[], object]] = field(default_factory=list)  # e.g. stop background probes

    def node(self, name: str) -> LabNode:
        return self.lab.node(name)


@dataclass
class ActiveFault:
    id: str
    what: str  # for the report: "podnet-agent on node1 killed (SIGKILL)"
    restore: str  # what restoring does
    undo: Callable[[], object]
    applied_at: float = field(default_factory=time.monotonic)
