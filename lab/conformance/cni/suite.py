"""Run the CNI rules against one subject: VERSION first (the versions it claims), then every rule at
the versions it applies to — per version, or at the highest one tested — and `error.form` last,
over every call made."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence

from lab.conformance.cni import rules_add, rules_chain, rules_del, rules_env, rules_more
from lab.conformance.cni.context import Call, Context, Subject
from lab.conformance.cni.spec import VERSIONS, key
from lab.conformance.kernel import Kernel
from lab.conformance.model import Outcome, Rule, RuleResult, Status, SubjectResult, judged, run_check

RULES: list[Rule[Context]] = [
    *rules_env.RULES,
    *rules_add.RULES,
    *rules_chain.RULES,
    *rules_del.RULES,
    *rules_more.RULES,
    *rules_env.LAST,
]
Progress = Callable[[RuleResult], None]


def rule(rule_id: str) -> Rule[Context]:
    for r in RULES:
        if r.id == rule_id:
            return r
    raise KeyError(rule_id)


def applies(r: Rule[Context], version: str) -> bool:
    return (not r.since or key(version) >= key(r.since)) and (not r.until or key(version) <= key(r.until))


def claimed_versions(subject: Subject, kernel: Kernel) -> tuple[list[str], Call]:
    ctx = Context(subject, kernel, VERSIONS[-1], [], [])
    call = ctx.run({"CNI_COMMAND": "VERSION"}, json.dumps({"cniVersion": VERSIONS[-1]}))
    listed = call.output.get("supportedVersions") if isinstance(call.output, dict) else None
    return ([str(v) for v in listed] if isinstance(listed, list) else []), call


def _aggregate(outcomes: dict[str, Outcome]) -> Outcome:
    failed = [(v, o) for v, o in outcomes.items() if o.status == Status.FAIL]
    if failed:
        v, o = failed[0]
        more = f" (also at {', '.join(x for x, _ in failed[1:])})" if len(failed) > 1 else ""
        return Outcome.fail(f"at {v}: {o.message}{more}", o.expected, o.actual)
    passed = [v for v, o in outcomes.items() if o.status == Status.PASS]
    others = "; ".join(f"{o.status.value} at {v}: {o.message}" for v, o in outcomes.items() if o.status != Status.PASS)
    if passed:
        return Outcome.ok(f"at {', '.join(passed)}" + (f"; {others}" if others else ""))
    statuses = {o.status for o in outcomes.values()}
    return Outcome(Status.CANNOT if Status.CANNOT in statuses else Status.NA, others)


def run_subject(
    subject: Subject,
    kernel: Kernel,
    versions: Sequence[str] = VERSIONS,
    *,
    only: set[str] | None = None,
    progress: Progress | None = None,
) -> SubjectResult:
    t0 = time.perf_counter()
    claimed, version_call = claimed_versions(subject, kernel)
    tested = [v for v in versions if v in claimed]
    result = SubjectResult(subject.name, subject.description, subject.how, claimed, tested)
    history: list[Call] = [version_call]
    run_id = secrets.token_hex(2)
    for r in RULES:
        if only is not None and r.id not in only:
            continue
        started = time.perf_counter()
        at = [v for v in tested if applies(r, v)] or ([versions[-1]] if r.always and versions else [])
        per: dict[str, Outcome] = {}
        if not at and not tested:
            outcome = Outcome.na(
                f"the plugin claims {', '.join(claimed) or 'no version'}; asked: {', '.join(versions)}"
            )
        elif not at:
            outcome = Outcome.na(f"applies to spec {r.since or '…'}–{r.until or '…'}; tested at {', '.join(tested)}")
        else:
            for v in at if r.per_version else at[-1:]:
                ctx = Context(subject, kernel, v, claimed, tested, run_id, history=list(history))
                per[v] = run_check(r.check, ctx)
                history += ctx.transcript
            outcome = _aggregate(per) if r.per_version else per[at[-1]]
        rr = judged(r, outcome, time.perf_counter() - started, subject.known, per if r.per_version else None)
        result.rules.append(rr)
        if progress is not None:
            progress(rr)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result
