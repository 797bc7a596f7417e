"""Reports of a run, from its results only: one index, one page per topology, one JUnit, results.json.

artifacts/<run>/index.html       every topology and scenario at a glance, failures inline
artifacts/<run>/junit.xml        a testsuite per topology
artifacts/<run>/results.json     everything below, as data
artifacts/<run>/<topology>-<lab>/report.html   the topology's page
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.report.index import index_page
from lab.report.junit import write_junit
from lab.report.page import topology_page
from lab.scenario.results import RunResult, TopologyResult, as_json


def write_topology(result: TopologyResult, run_dir: Path) -> Path:
    """The topology's page (written as soon as its lab is done, so a failed run still has it)."""
    page = run_dir / result.page
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(topology_page(result, page.parent))
    (page.parent / "results.json").write_text(json.dumps(as_json(result), indent=2))
    return page


def write_run(run: RunResult) -> Path:
    """Every topology's page, the index, JUnit and results.json; the index's path."""
    run.out.mkdir(parents=True, exist_ok=True)
    for result in run.topologies:
        write_topology(result, run.out)
    write_junit(run, run.out / "junit.xml")
    (run.out / "results.json").write_text(json.dumps(as_json(run), indent=2))
    index = run.out / "index.html"
    index.write_text(index_page(run))
    return index
