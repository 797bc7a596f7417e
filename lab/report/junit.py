"""JUnit XML of a run: one testsuite per topology, one testcase per scenario."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from lab.scenario.results import RunResult


def write_junit(run: RunResult, path: Path) -> None:
    suites = ET.Element(
        "testsuites",
        name=f"podnet-lab {run.id}",
        tests=str(len(run.runs)),
        failures=str(sum(1 for r in run.runs if not r.passed)),
        time=f"{run.seconds:.3f}",
    )
    for t in run.topologies:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{t.lab.topology} ({t.lab.backend})",
            tests=str(len(t.runs)),
            failures=str(sum(1 for r in t.runs if not r.passed)),
            skipped=str(len(t.not_run)),
            time=f"{t.seconds:.3f}",
        )
        for r in t.runs:
            case = ET.SubElement(
                suite, "testcase", classname=f"scenarios.{t.lab.topology}", name=r.name, time=f"{r.seconds:.3f}"
            )
            if not r.passed:
                failure = ET.SubElement(case, "failure", message=r.failure[:500])
                failure.text = r.failure
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"{'PASS' if s.passed else 'FAIL'} {s.seconds:.2f}s {s.name}" for s in r.steps)
        for name, why in t.not_run.items():
            case = ET.SubElement(suite, "testcase", classname=f"scenarios.{t.lab.topology}", name=name, time="0")
            ET.SubElement(case, "skipped", message=why)
    ET.ElementTree(suites).write(path, encoding="unicode", xml_declaration=True)
