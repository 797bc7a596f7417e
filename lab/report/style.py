"""What every report page shares: the style sheet, escaping, status marks."""

from __future__ import annotations

import html

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1250px}
h1{font-size:1.5em} h2{margin-top:2em;border-bottom:1px solid #ddd} h3{margin:1.2em 0 .4em}
.pass{color:#17803d}.fail{color:#c0262d}.skip{color:#888}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f6f8} details{margin:.3em 0 .3em 1em} summary{cursor:pointer}
pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:22em;white-space:pre-wrap}
.check{margin-left:1.5em}.muted{color:#777}.box{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}
.flows td{font-family:ui-monospace,monospace;font-size:12px}.badge{border-radius:3px;padding:0 .4em;background:#eef}
"""


def esc(text: object) -> str:
    return html.escape(str(text))


def mark(passed: bool, skipped: bool = False) -> str:
    if skipped:
        return '<span class="skip">–</span>'
    return '<span class="pass">✓</span>' if passed else '<span class="fail">✗</span>'


def status(passed: bool) -> str:
    return '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>'


def page(title: str, body: list[str]) -> str:
    return f"<!doctype html><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style>{''.join(body)}"
