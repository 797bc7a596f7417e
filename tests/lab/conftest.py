"""One lab for tests/lab (package scope, so other suites in the same run find none); every scenario file is a test item (see test_scenarios.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from lab.lab import Lab, collect_logs, existing_labs
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


@pytest.fixture(scope="package")
def lab_session() -> Iterator[Session]:
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network namespaces, its own dockerd per node)")
    if existing_labs():
        pytest.fail(f"lab leftovers present ({', '.join(existing_labs())}): run `lab down` or `lab clean` first")
    lab = Lab(load_topology(None))
    t0 = time.perf_counter()
    try:
        lab.up()
    except BaseException:
        lab.down(keep_logs=ARTIFACTS / lab.run_id / "logs")
        raise
    session = Session(lab)
    try:
        yield session
    finally:
        collect_logs(lab, session.out / "logs")
        report = write_reports(lab, session.runs, session.out, total_seconds=time.perf_counter() - t0)
        lab.down()
        print(f"\nlab report: {report}")
