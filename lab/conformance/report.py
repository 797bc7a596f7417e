"""A conformance run's reports: one HTML page (rules × subjects, then every failure with expected,
actual and the spec text it cites), JUnit (a testsuite per subject), and JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from lab.conformance.model import RuleResult, Status, SubjectResult, SuiteResult, as_json
from lab.report.style import esc, page

EXTRA_CSS = """
<style>.na{color:#888}.cannot{color:#a86a00}.explained{color:#a86a00}td.cell{text-align:center;white-space:nowrap}
blockquote{margin:.3em 0 .3em 1em;padding-left:.6em;border-left:3px solid #ccd;color:#444}
.rule{font-family:ui-monospace,monospace}</style>
"""
TITLES = {"cni": "CNI plugin conformance", "libnetwork": "libnetwork remote driver conformance"}


def _cell(subject: str, r: RuleResult | None) -> str:
    if r is None:
        return "<td class='cell na'>–</td>"
    tip = esc(r.message or r.title)
    if r.status == Status.PASS:
        return f"<td class='cell pass' title='{tip}'>✓ pass</td>"
    if r.status == Status.NA:
        return f"<td class='cell na' title='{tip}'>n/a</td>"
    if r.status == Status.CANNOT:
        return f"<td class='cell cannot' title='{tip}'>cannot check</td>"
    css = "explained" if r.explained else "fail"
    mark = "✗ fail (explained)" if r.explained else "✗ fail"
    return f"<td class='cell {css}' title='{tip}'><a href='#{esc(subject)}-{esc(r.id)}'>{mark}</a></td>"


def html_page(result: SuiteResult) -> str:
    title = TITLES.get(result.suite, result.suite)
    subjects = result.subjects
    body = [
        EXTRA_CSS,
        f"<h1>{esc(title)}</h1>",
        f"<p>{esc(result.started)} · {len(subjects)} subject(s) · {result.seconds:.1f}s · "
        + (
            "<span class='pass'>every failure explained</span>"
            if result.ok
            else "<span class='fail'>unexplained failures</span>"
        )
        + "</p>",
        "<table><tr><th>subject</th><th>claims</th><th>tested</th><th>pass</th><th>fail (explained)</th>"
        "<th>n/a</th><th>cannot check</th><th>wall time</th><th>how it ran</th></tr>",
    ]
    for s in subjects:
        c = s.counts()
        explained = sum(1 for r in s.rules if r.status == Status.FAIL and r.explained)
        body.append(
            f"<tr><td><b>{esc(s.name)}</b><br><span class='muted'>{esc(s.description)}</span></td>"
            f"<td>{esc(', '.join(s.claimed))}</td><td>{esc(', '.join(s.tested))}</td><td class='pass'>{c['pass']}</td>"
            f"<td class='{'fail' if s.unexpected else 'explained'}'>{c['fail']} ({explained})</td><td>{c['n/a']}</td>"
            f"<td>{c['cannot check']}</td><td>{s.seconds:.1f}s</td><td class='muted'>{esc(s.error or s.how)}</td></tr>"
        )
    body.append("</table><h2>Rules × subjects</h2><table><tr><th>rule</th><th>spec</th>")
    body += [f"<th>{esc(s.name)}</th>" for s in subjects]
    body.append("</tr>")
    by_subject = [{r.id: r for r in s.rules} for s in subjects]
    for rule_id in result.rule_ids():
        first = next(m[rule_id] for m in by_subject if rule_id in m)
        body.append(
            f"<tr><td><span class='rule'>{esc(rule_id)}</span><br>{esc(first.title)}</td>"
            f"<td><a href='{esc(first.cites.url)}'>{esc(first.cites.section)}</a>"
            f"<br><span class='muted'>{esc(first.cites.document)}</span></td>"
        )
        for s, m in zip(subjects, by_subject, strict=True):
            body.append(_cell(s.name, m.get(rule_id)))
        body.append("</tr>")
    body.append("</table>")
    for s in subjects:
        body += _subject_details(s)
    return page(title, body)


def _subject_details(s: SubjectResult) -> list[str]:
    out = [f"<h2>{esc(s.name)}</h2><p class='muted'>{esc(s.how)}</p>"]
    if s.error:
        out.append(f"<p class='fail'>could not be set up: {esc(s.error)}</p>")
    failing = [r for r in s.rules if r.status == Status.FAIL]
    if not failing:
        out.append("<p class='pass'>no rule failed</p>")
    for r in failing:
        out.append(
            f"<h3 id='{esc(s.name)}-{esc(r.id)}'><span class='rule'>{esc(r.id)}</span> — {esc(r.title)}</h3>"
            f"<p class='fail'>{esc(r.message)}</p>"
            + (f"<p class='explained'>explained: {esc(r.explained)}</p>" if r.explained else "")
            + "<table>"
            + (f"<tr><th>expected</th><td><pre>{esc(r.expected)}</pre></td></tr>" if r.expected else "")
            + (f"<tr><th>actual</th><td><pre>{esc(r.actual)}</pre></td></tr>" if r.actual else "")
            + f"<tr><th>cites</th><td>{esc(r.cites.document)}, <a href='{esc(r.cites.url)}'>{esc(r.cites.section)}</a>"
            f"<blockquote>{esc(r.cites.text)}</blockquote></td></tr>"
            + "".join(
                f"<tr><th>at {esc(v)}</th><td>{esc(o.status.value)}{': ' + esc(o.message) if o.message else ''}</td></tr>"
                for v, o in r.versions.items()
            )
            + "</table>"
        )
    others = [r for r in s.rules if r.status in (Status.NA, Status.CANNOT)]
    if others:
        out.append("<details><summary>n/a and cannot check, and why</summary><table>")
        out += [
            f"<tr><td class='rule'>{esc(r.id)}</td><td>{esc(r.status.value)}</td><td>{esc(r.message)}</td></tr>"
            for r in others
        ]
        out.append("</table></details>")
    return out


def write_junit(result: SuiteResult, path: Path) -> None:
    """A testsuite per subject, a testcase per rule; n/a, cannot check and explained failures are skipped
    (with why), so the file fails only on what nobody explained."""
    suites = ET.Element("testsuites", name=f"conformance {result.suite}", time=f"{result.seconds:.3f}")
    for s in result.subjects:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{result.suite}: {s.name}",
            tests=str(len(s.rules)),
            failures=str(len(s.unexpected)),
            skipped=str(sum(1 for r in s.rules if r.status in (Status.NA, Status.CANNOT) or r.explained)),
            time=f"{s.seconds:.3f}",
        )
        for r in s.rules:
            case = ET.SubElement(
                suite, "testcase", classname=f"conformance.{result.suite}.{s.name}", name=r.id, time=f"{r.seconds:.3f}"
            )
            if r.status == Status.FAIL and not r.explained:
                failure = ET.SubElement(case, "failure", message=r.message[:500])
                failure.text = (
                    f"{r.message}\nexpected: {r.expected}\nactual: {r.actual}\ncites {r.cites.section}: {r.cites.text}"
                )
            elif r.status == Status.FAIL:
                ET.SubElement(case, "skipped", message=f"known deviation: {r.explained}"[:500])
            elif r.status in (Status.NA, Status.CANNOT):
                ET.SubElement(case, "skipped", message=f"{r.status.value}: {r.message}"[:500])
        if s.error:
            ET.SubElement(
                ET.SubElement(suite, "testcase", classname=f"conformance.{result.suite}", name=s.name),
                "error",
                message=s.error[:500],
            )
    ET.ElementTree(suites).write(path, encoding="unicode", xml_declaration=True)


def write_json(result: SuiteResult, path: Path) -> None:
    path.write_text(json.dumps(as_json(result), indent=2))
