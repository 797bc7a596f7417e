"""The run's index: every topology and scenario at a glance, each failure inline with where to look."""

from __future__ import annotations

from lab.report.style import esc, page, status
from lab.scenario.results import RunResult


def index_page(run: RunResult) -> str:
    runs = run.runs
    body = [
        f"<h1>podnet lab run {esc(run.id)}</h1>",
        f"<p>{esc(run.started)} · {status(run.passed)} · {sum(r.passed for r in runs)}/{len(runs)} scenarios passed "
        f"on {len(run.topologies)} topolog{'y' if len(run.topologies) == 1 else 'ies'} · {run.seconds:.1f}s</p>",
        "<table><tr><th>topology</th><th>backend</th><th>lab</th><th>lab up</th><th>scenarios</th><th>page</th></tr>",
    ]
    for t in run.topologies:
        passed = sum(r.passed for r in t.runs)
        body.append(
            f"<tr><td>{esc(t.lab.topology)}</td><td>{esc(t.lab.backend)}</td><td>{esc(t.lab.run_id)}</td>"
            f"<td>{t.lab.up_seconds:.1f}s</td><td>{status(t.passed)} {passed}/{len(t.runs)}</td>"
            f"<td><a href='{esc(t.page)}'>{esc(t.page)}</a></td></tr>"
        )
    body.append("</table>")
    for t in run.topologies:
        body.append(f"<h2>{esc(t.lab.topology)} <span class='muted'>({esc(t.lab.backend)})</span></h2>")
        body.append(
            "<table><tr><th>scenario</th><th>result</th><th>time</th><th>waits until held (within)</th><th>what failed</th></tr>"
        )
        for r in t.runs:
            recoveries = ", ".join(f"{s.waited_s:.2f}s" for s in r.steps if s.waited_s is not None)
            failure = ""
            if not r.passed:
                step = next(s for s in r.steps if not s.passed)
                check = next((c for c in step.checks if not c.passed), None)
                failure = f"<b>{esc(step.name)}</b>: " + (
                    esc(step.error)
                    if step.error or check is None
                    else f"{esc(check.description)}<br>expected {esc(check.expected)}<br>got {esc(check.actual)}"
                    f"<br><span class='muted'>where to look: {esc(check.where)}</span>"
                )
            body.append(
                f"<tr><td><a href='{esc(t.page)}#{esc(r.name)}'>{esc(r.name)}</a></td><td>{status(r.passed)}</td>"
                f"<td>{r.seconds:.1f}s</td><td>{recoveries}</td><td>{failure}</td></tr>"
            )
        for name, why in t.not_run.items():
            body.append(
                f"<tr><td>{esc(name)}</td><td class='skip'>not run</td><td></td><td></td><td>{esc(why)}</td></tr>"
            )
        body.append("</table>")
    return page(f"podnet lab run {run.id}", body)
