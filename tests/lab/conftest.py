"""Labs for tests/lab: one run (one report), one lab per topology, brought up when a scenario needs it.

Scenarios are ordered by topology (test_scenarios.py), so each lab comes up
once; it goes down when the next topology is needed or when the package ends
(package scope, so other suites in the same run find no lab). The run's
index is written at the end, and its path printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from lab.backends import registry
from lab.model.topology import load_topology
from lab.session import LabSession, Run

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


class LabPool:
    def __init__(self, backend: str = registry.DEFAULT) -> None:
        self.run = Run(ARTIFACTS)
        self.backend = backend
        self.current: LabSession | None = None
        self.console = Console(stderr=True)

    def get(self, topology: str) -> LabSession:
        wanted = load_topology(topology)
        if self.current is not None and self.current.topology.name == wanted.name:
            return self.current
        self.close_current()
        if registry.existing_labs():
            pytest.fail(f"lab leftovers present ({', '.join(registry.existing_labs())}): run `lab down` or `lab clean`")
        session = LabSession(self.run, wanted, self.backend, console=self.console)
        session.up()
        self.current = session
        return session

    def close_current(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def close(self) -> Path:
        self.close_current()
        return self.run.write()


@pytest.fixture(scope="package")
def labs() -> Iterator[LabPool]:
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network namespaces, its own dockerd per node)")
    pool = LabPool()
    try:
        yield pool
    finally:
        print(f"\nlab report: {pool.close()}")
