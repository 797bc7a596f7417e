"""The netns backend's supervisor: a process's niceness (the lab's control plane runs ahead of its
workers) is applied to the process itself and survives in the lab's state (a later `lab` command
restarts it the same way). Real processes, no namespace (the supervisor's `wrap` is the identity)."""

from __future__ import annotations

import os
from pathlib import Path

from lab.backends.base import wait_for
from lab.backends.netns.supervisor import ProcessSpec, Supervisor


def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor("n1", tmp_path / "proc", tmp_path / "logs", lambda argv: argv)


def test_a_niced_process_runs_at_its_niceness_and_keeps_it_in_the_state(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    sup.define("sleeper", ProcessSpec(["sleep", "30"], nice=5))
    pid = sup.spawn("sleeper")
    try:
        # nice execs the command: the recorded PID becomes sleep's (once nice has run: it may not have yet)
        wait_for(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep", 5, "nice to exec sleep")
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)
        again = supervisor(tmp_path)
        again.load(sup.to_state())
        assert again.specs["sleeper"].nice == 5
        assert again.specs["sleeper"].argv == ["sleep", "30"]
    finally:
        sup.stop("sleeper", timeout_s=5)
    assert not sup.alive("sleeper")


def test_a_process_without_niceness_runs_as_given(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    sup.define("sleeper", ProcessSpec(["sleep", "30"]))
    pid = sup.spawn("sleeper")
    try:
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        sup.stop("sleeper", timeout_s=5)


def test_state_recorded_before_niceness_existed_loads_as_zero(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    sup.load({"pids": {}, "specs": {"etcd": {"argv": ["etcd"], "env": {}, "ready": "etcd", "stop_timeout_s": 10}}})
    assert sup.specs["etcd"].nice == 0
