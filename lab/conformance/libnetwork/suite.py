"""Run the libnetwork rules against one subject: Plugin.Activate first (what it implements), then every
rule whose interface it implements, and the errors rule last, over every reply seen."""

from __future__ import annotations

import time
from collections.abc import Callable

from lab.conformance.libnetwork import rules_docker, rules_protocol
from lab.conformance.libnetwork.context import Context, Reply, Side, Subject
from lab.conformance.model import Outcome, Rule, RuleResult, SubjectResult, judged, run_check

RULES: list[Rule[Context]] = [*rules_protocol.RULES, *rules_docker.RULES, *rules_protocol.LAST]
Progress = Callable[[RuleResult], None]


def implemented(subject: Subject, side: Side) -> list[str]:
    ctx = Context(subject, side, [])
    r = ctx.post("/Plugin.Activate")
    found = r.body.get("Implements") if isinstance(r.body, dict) else None
    return [str(i) for i in found] if isinstance(found, list) else []


def run_subject(
    subject: Subject, side: Side, *, only: set[str] | None = None, progress: Progress | None = None
) -> SubjectResult:
    t0 = time.perf_counter()
    implements = implemented(subject, side)
    result = SubjectResult(subject.name, subject.description, subject.how, implements, implements)
    history: list[Reply] = []
    for r in RULES:
        if only is not None and r.id not in only:
            continue
        started = time.perf_counter()
        if r.needs and r.needs not in implements and not r.always:
            outcome = Outcome.na(
                f"the plugin does not implement {r.needs} (it implements {', '.join(implements) or 'nothing'})"
            )
        else:
            ctx = Context(subject, side, implements, history=list(history))
            outcome = run_check(r.check, ctx)
            history += ctx.transcript
        rr = judged(r, outcome, time.perf_counter() - started, subject.known)
        result.rules.append(rr)
        if progress is not None:
            progress(rr)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result
