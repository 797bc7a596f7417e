"""Reports of a lab run: JUnit XML, results JSON, and one self-contained HTML page."""

from __future__ import annotations

import html
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from lab.lab import AnyLab

if TYPE_CHECKING:
    from lab.runner import ScenarioRun  # runner imports this module

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em} h2{margin-top:2em;border-bottom:1px solid #ddd}
.pass{color:#17803d}.fail{color:#c0262d}.skip{color:#888}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
details{margin:.3em 0 .3em 1em} summary{cursor:pointer} pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:22em}
.check{margin-left:1.5em}.muted{color:#777}
"""


def topology_svg(lab: AnyLab, pod_cidrs: dict[str, str]) -> str:
    nodes = list(lab.topology.links())
    width = max(360, 220 * len(nodes))
    tor_x = width / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="230" font-family="sans-serif" font-size="12">'
    ]
    parts.append(f'<rect x="{tor_x - 70}" y="10" width="140" height="40" rx="6" fill="#e8f0fe" stroke="#4a6fd1"/>')
    parts.append(f'<text x="{tor_x}" y="35" text-anchor="middle">{html.escape(lab.tor.name)} (ToR)</text>')
    for i, link in enumerate(nodes):
        x = (i + 0.5) * width / len(nodes)
        parts.append(f'<line x1="{tor_x}" y1="50" x2="{x}" y2="140" stroke="#888"/>')
        parts.append(f'<text x="{x}" y="130" text-anchor="middle" fill="#555">{link.subnet}</text>')
        parts.append(f'<rect x="{x - 90}" y="140" width="180" height="70" rx="6" fill="#eefaf0" stroke="#2f8f4e"/>')
        parts.append(f'<text x="{x}" y="160" text-anchor="middle" font-weight="bold">{html.escape(link.node)}</text>')
        parts.append(f'<text x="{x}" y="178" text-anchor="middle">underlay {link.node_ip}</text>')
        parts.append(
            f'<text x="{x}" y="196" text-anchor="middle">pods {html.escape(pod_cidrs.get(link.node, "?"))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _esc(text: object) -> str:
    return html.escape(str(text))


def write_junit(runs: list[ScenarioRun], path: Path) -> None:
    suite = ET.Element(
        "testsuite",
        name="podnet-lab",
        tests=str(len(runs)),
        failures=str(sum(1 for r in runs if not r.passed)),
        time=f"{sum(r.seconds for r in runs):.3f}",
    )
    for run in runs:
        case = ET.SubElement(
            suite, "testcase", classname="scenarios", name=run.scenario.name, time=f"{run.seconds:.3f}"
        )
        if not run.passed:
            failure = ET.SubElement(case, "failure", message=run.failure[:500])
            failure.text = run.failure
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(f"{'PASS' if s.passed else 'FAIL'} {s.seconds:.2f}s {s.name}" for s in run.steps)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def write_reports(lab: AnyLab, runs: list[ScenarioRun], out: Path, *, total_seconds: float) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_junit(runs, out / "junit.xml")
    results = [
        {
            "scenario": r.scenario.name,
            "passed": r.passed,
            "seconds": r.seconds,
            "failure": r.failure,
            "variables": r.variables,
            "steps": [asdict(s) for s in r.steps],
        }
        for r in runs
    ]
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "timings.json").write_text(
        json.dumps(
            {
                "lab_up": lab.timings,
                "scenarios": {r.scenario.name: [(s.name, s.seconds) for s in r.steps] for r in runs},
                "total_s": total_seconds,
            },
            indent=2,
        )
    )
    pod_cidrs = {}
    for r in runs:
        pod_cidrs.update({k.split(".")[0]: v for k, v in r.variables.items() if k.endswith(".pod_cidr")})
    body = [
        f"<h1>podnet lab run {lab.run_id}</h1>",
        f"<p>{time.strftime('%Y-%m-%d %H:%M:%S')} · topology <b>{_esc(lab.topology.name)}</b> · "
        f"{sum(r.passed for r in runs)}/{len(runs)} scenarios passed · {total_seconds:.1f}s</p>",
        topology_svg(lab, pod_cidrs),
        "<h2>lab up</h2><table><tr><th>step</th><th>seconds</th></tr>",
    ]
    body += [f"<tr><td>{_esc(w)}</td><td>{s:.2f}</td></tr>" for w, s in lab.timings]
    body.append("</table>")
    for run in runs:
        status = '<span class="pass">PASS</span>' if run.passed else '<span class="fail">FAIL</span>'
        body.append(
            f'<h2 id="{_esc(run.scenario.name)}">{status} {_esc(run.scenario.name)} '
            f'<span class="muted">({run.seconds:.1f}s)</span></h2>'
        )
        body.append(f"<p>{_esc(run.scenario.description)}</p>")
        if run.scenario.seeds:
            body.append(f"<p class='muted'>replays: {_esc(', '.join(run.scenario.seeds))}</p>")
        for step in run.steps:
            cls = "skip" if step.skipped else ("pass" if step.passed else "fail")
            mark = "–" if step.skipped else ("✓" if step.passed else "✗")
            open_attr = " open" if not step.passed else ""
            body.append(
                f'<details{open_attr}><summary class="{cls}">{mark} {_esc(step.name)} '
                f'<span class="muted">({step.seconds:.2f}s)</span></summary>'
            )
            if step.command:
                body.append(f"<pre>{_esc(step.command)}\n{_esc(step.stdout)}{_esc(step.stderr)}</pre>")
            elif step.stdout:
                body.append(f"<pre>{_esc(step.stdout)}</pre>")
            if step.error:
                body.append(f'<p class="fail">{_esc(step.error)}</p>')
            for name, rel in step.pcaps.items():
                body.append(
                    f'<p class="check">pcap <a href="{_esc(run.scenario.name)}/{_esc(rel)}">{_esc(name)}</a></p>'
                )
            for c in step.checks:
                cmark = '<span class="pass">✓</span>' if c.passed else '<span class="fail">✗</span>'
                body.append(f'<div class="check">{cmark} <b>{_esc(c.kind)}</b>: {_esc(c.description)}')
                if not c.passed:
                    body.append(
                        f"<table><tr><th>expected</th><td>{_esc(c.expected)}</td></tr>"
                        f"<tr><th>actual</th><td>{_esc(c.actual)}</td></tr>"
                        f"<tr><th>where to look</th><td>{_esc(c.where)}</td></tr></table>"
                    )
                body.append("</div>")
            body.append("</details>")
        state = out / run.scenario.name / "state"
        if state.is_dir():
            links = " · ".join(
                f'<a href="{_esc(run.scenario.name)}/state/{p.name}">{_esc(p.name)}</a>'
                for p in sorted(state.iterdir())
            )
            body.append(f"<p class='muted'>state after the scenario: {links}</p>")
    logs = out / "logs"
    if logs.is_dir():
        body.append(
            "<h2>logs</h2><p>"
            + " · ".join(
                f'<a href="logs/{_esc(p.relative_to(logs))}">{_esc(p.relative_to(logs))}</a>'
                for p in sorted(logs.rglob("*.log"))
            )
            + "</p>"
        )
    page = f"<!doctype html><meta charset='utf-8'><title>podnet lab {lab.run_id}</title><style>{CSS}</style>{''.join(body)}"
    (out / "report.html").write_text(page)
    return out / "report.html"
