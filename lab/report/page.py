"""One topology's page: its lab (drawing, bring-up timeline), then every scenario, step by step."""

from __future__ import annotations

from pathlib import Path

from lab.report import svg
from lab.report.style import esc, mark, page, status
from lab.scenario.results import Flow, ScenarioRun, StepResult, TopologyResult


def _flows(rows: list[Flow]) -> str:
    if not rows:
        return "<p class='muted'>no packets</p>"
    body = "".join(
        f"<tr><td>{esc(f.proto)}</td><td>{esc(f.src)}</td><td>{esc(f.dst)}</td>"
        f"<td>{f.packets}</td><td>{f.bytes}</td><td>{esc(f.note)}</td></tr>"
        for f in rows
    )
    return (
        "<table class='flows'><tr><th>proto</th><th>from</th><th>to</th><th>packets</th><th>bytes</th>"
        f"<th>seen</th></tr>{body}</table>"
    )


def _step(run: ScenarioRun, step: StepResult) -> list[str]:
    cls = "skip" if step.skipped else ("pass" if step.passed else "fail")
    open_attr = " open" if not step.passed else ""
    waited = f" · held after <b>{step.waited_s:.2f}s</b> (within)" if step.waited_s is not None else ""
    out = [
        f'<details{open_attr}><summary class="{cls}">{mark(step.passed, step.skipped)} {esc(step.name)} '
        f'<span class="muted">({step.kind}, {step.seconds:.2f}s{waited})</span></summary>'
    ]
    if step.command:
        out.append(f"<pre>{esc(step.command)}\n{esc(step.stdout)}{esc(step.stderr)}</pre>")
    elif step.stdout:
        out.append(f"<pre>{esc(step.stdout)}</pre>")
    if step.error:
        out.append(f'<p class="fail">{esc(step.error)}</p>')
    for name, rel in step.pcaps.items():
        out.append(
            f'<div class="check">pcap <a href="{esc(run.name)}/{esc(rel)}">{esc(name)}</a>'
            f"{_flows(step.flows.get(name, []))}</div>"
        )
    for c in step.checks:
        out.append(f'<div class="check">{mark(c.passed)} <b>{esc(c.kind)}</b>: {esc(c.description)}')
        if not c.passed:
            out.append(
                f"<table><tr><th>expected</th><td>{esc(c.expected)}</td></tr>"
                f"<tr><th>actual</th><td>{esc(c.actual)}</td></tr>"
                f"<tr><th>where to look</th><td>{esc(c.where)}</td></tr></table>"
            )
        if c.kind == "plugin_calls" and "calls" in c.data:
            out.append(
                svg.sequence(list(c.data["calls"]), list(c.data.get("expected", [])), str(c.data.get("node", "")))
            )
        out.append("</div>")
    out.append("</details>")
    return out


def _scenario(run: ScenarioRun, base: Path) -> list[str]:
    out = [
        f'<h2 id="{esc(run.name)}">{status(run.passed)} {esc(run.name)} <span class="muted">({run.seconds:.1f}s)</span></h2>',
        f"<p>{esc(run.description)}</p>",
    ]
    if run.seeds:
        out.append(f"<p class='muted'>replays: {esc(', '.join(run.seeds))}</p>")
    if not run.passed:
        out.append(f'<p class="fail">{esc(run.failure)}</p>')
    recovered = [s for s in run.steps if s.waited_s is not None]
    if recovered:
        rows = "".join(f"<tr><td>{esc(s.name)}</td><td>{s.waited_s:.2f}s</td></tr>" for s in recovered)
        out.append(f"<table><tr><th>waited for</th><th>time until it held</th></tr>{rows}</table>")
    for step in run.steps:
        out += _step(run, step)
    state = base / run.name / "state"
    if state.is_dir():
        links = " · ".join(
            f'<a href="{esc(run.name)}/state/{esc(p.name)}">{esc(p.name)}</a>' for p in sorted(state.iterdir())
        )
        out.append(f"<p class='muted'>state after the scenario: {links}</p>")
    return out


def topology_page(result: TopologyResult, base: Path) -> str:
    """The page, for the topology's directory `base` (pcaps, state and logs are linked from it)."""
    lab = result.lab
    passed = sum(r.passed for r in result.runs)
    body = [
        f"<h1>{esc(lab.topology)} on {esc(lab.backend)} <span class='muted'>· lab {esc(lab.run_id)}</span></h1>",
        f"<p><a href='../index.html'>← the whole run</a> · {passed}/{len(result.runs)} scenarios passed · "
        f"{result.seconds:.1f}s · lab up {lab.up_seconds:.1f}s{' (reused)' if lab.reused else ''}</p>",
        svg.topology(lab),
        "<h2>lab up</h2>",
        svg.timeline(lab.timings, lab.up_seconds),
    ]
    if result.not_run:
        rows = "".join(f"<tr><td>{esc(n)}</td><td>{esc(why)}</td></tr>" for n, why in result.not_run.items())
        body.append(f"<h2>not run here</h2><table>{rows}</table>")
    for run in result.runs:
        body += _scenario(run, base)
    logs = base / "logs"
    if logs.is_dir():
        body.append(
            "<h2>logs</h2><p>"
            + " · ".join(
                f'<a href="logs/{esc(p.relative_to(logs))}">{esc(p.relative_to(logs))}</a>'
                for p in sorted(logs.rglob("*.log"))
            )
            + "</p>"
        )
    return page(f"podnet lab {lab.topology} {lab.run_id}", body)
