"""Labs for tests/lab: one per topology, brought up when a scenario needs it.

Scenarios are ordered by topology (test_scenarios.py), so each lab comes up
once; it goes down when the next topology is needed or when the package ends
(package scope, so other suites in the same run find no lab).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from lab.lab import Lab, existing_labs
from lab.report import write_reports
from lab.runner import Runner, ScenarioRun
from lab.topology import load_topology

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


class Session:
    def __init__(self, lab: Lab):
        self.lab = lab
        self.runner = Runner(lab, Console(stderr=True))
        self.runs: list[ScenarioRun] = []
        self.out = ARTIFACTS / lab.run_id
        self.started = time.perf_counter()

    def close(self) -> None:
        self.lab.collect_logs(self.out / "logs")
        report = write_reports(self.lab, self.runs, self.out, total_seconds=time.perf_counter() - self.started)
        self.lab.down()
        print(f"\nlab report ({self.lab.topology.name}): {report}")


class LabPool:
    def __init__(self) -> None:
        self.current: Session | None = None

    def get(self, topology: str) -> Session:
        wanted = load_topology(topology)
        if self.current is not None and self.current.lab.topology.name == wanted.name:
            return self.current
        self.close()
        if existing_labs():
            pytest.fail(f"lab leftovers present ({', '.join(existing_labs())}): run `lab down` or `lab clean` first")
        lab = Lab(wanted)
        try:
            lab.up()
        except BaseException:
            lab.down(keep_logs=ARTIFACTS / lab.run_id / "logs")
            raise
        self.current = Session(lab)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


@pytest.fixture(scope="package")
def labs() -> Iterator[LabPool]:
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network namespaces, its own dockerd per node)")
    pool = LabPool()
    try:
        yield pool
    finally:
        pool.close()
