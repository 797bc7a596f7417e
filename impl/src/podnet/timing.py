"""Where one operation's time goes: named phases, logged at debug level in one line.

    with timing.phases("cni ADD cni-c1-eth0", log) as p:   # None unless `log` is at debug
        ...
        timing.mark("ipam")          # the time since the previous mark goes to "ipam"

`mark()` works from any code the operation runs on the thread that opened the
phases, or on a thread the operation handed work to with `timing.carried()`
(the agent's worker); it costs a thread-local lookup when nothing is timed.
The line reads `cni ADD cni-c1-eth0: 3.41 ms: queue 0.12, ipam 0.40, veth 1.10, …`
(bench/cni_add.py --profile collects them).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_local = threading.local()
PREFIX = "phases: "


class Phases:
    __slots__ = ("_lock", "last", "marks", "start", "what")

    def __init__(self, what: str):
        self.what = what
        self.start = self.last = time.perf_counter()
        self.marks: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def mark(self, phase: str) -> None:
        with self._lock:
            now = time.perf_counter()
            self.marks.append((phase, now - self.last))
            self.last = now

    def summary(self) -> str:
        total = (time.perf_counter() - self.start) * 1000
        parts = ", ".join(f"{name} {seconds * 1000:.2f}" for name, seconds in self.marks)
        return f"{PREFIX}{self.what}: {total:.2f} ms: {parts}"


def current() -> Phases | None:
    return getattr(_local, "phases", None)


def mark(phase: str) -> None:
    phases: Phases | None = getattr(_local, "phases", None)
    if phases is not None:
        phases.mark(phase)


@contextmanager
def using(phases: Phases | None) -> Iterator[Phases | None]:
    """Make `phases` this thread's for the block (the agent's worker running a timed call)."""
    previous = getattr(_local, "phases", None)
    _local.phases = phases
    try:
        yield phases
    finally:
        _local.phases = previous


@contextmanager
def phases(what: str, log: logging.Logger) -> Iterator[Phases | None]:
    """Time the block's phases when `log` is at debug level, and log them in one line at the end."""
    if not log.isEnabledFor(logging.DEBUG):
        yield None
        return
    timed = Phases(what)
    with using(timed):
        try:
            yield timed
        finally:
            log.debug("%s", timed.summary())


def start(what: str, log: logging.Logger) -> Phases | None:
    """Phases to carry by hand (an event loop serves many operations on one thread), or None
    unless `log` is at debug level; `log.debug("%s", p.summary())` at the end."""
    return Phases(what) if log.isEnabledFor(logging.DEBUG) else None


def carried(fn: Callable[..., T], timed: Phases | None = None) -> Callable[..., T]:
    """`fn` to run on another thread, inside `timed` (by default the phases of the thread that wraps it)."""
    timed = timed or current()
    if timed is None:
        return fn

    def run(*args: Any, **kwargs: Any) -> T:
        with using(timed):
            return fn(*args, **kwargs)

    return run


def since_exec() -> float | None:
    """Seconds since this process started (the kernel's start time, in 10 ms ticks); None if unknown."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None
