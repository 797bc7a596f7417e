"""`lab conformance cni|libnetwork`: run a suite against a plugin (or the CI subjects), print each rule
as it is judged and each subject's wall time, write the reports.

Exit codes: 0 every failure explained (a CI subject's known deviation), 1 a
rule failed unexplained, 2 bad usage, 3 a subject could not be set up.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.console import Console

from lab.conformance.model import RuleResult, Status, SubjectResult, SuiteResult, as_json
from lab.conformance.report import html_page, write_junit
from lab.conformance.usage import usage_problem

console = Console(stderr=True, highlight=False)
MARKS = {Status.PASS: "[green]✓[/]", Status.FAIL: "[red]✗[/]", Status.NA: "[dim]–[/]", Status.CANNOT: "[yellow]?[/]"}


def _progress(rule: RuleResult) -> None:
    mark = "[yellow]✗[/]" if rule.explained else MARKS[rule.status]
    detail = f": {rule.message}" if rule.status != Status.PASS and rule.message else ""
    note = " (explained)" if rule.explained else ""
    console.print(f"  {mark} {rule.id}{note} ({rule.seconds:.2f}s){detail[:220]}")


def _summary(s: SubjectResult) -> str:
    c = s.counts()
    explained = sum(1 for r in s.rules if r.status == Status.FAIL and r.explained)
    return (
        f"{s.name}: {c['pass']} pass, {c['fail']} fail ({explained} explained), {c['n/a']} n/a, "
        f"{c['cannot check']} cannot check — wall time {s.seconds:.1f}s"
    )


def _finish(result: SuiteResult, args: argparse.Namespace) -> int:
    console.print()
    for s in result.subjects:
        style = "green" if s.ok else "red"
        console.print(f"[{style}]{_summary(s) if not s.error else s.name + ': ' + s.error}[/]")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(html_page(result))
        console.print(f"report: {args.html}")
    if args.junit:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        write_junit(result, args.junit)
        console.print(f"junit: {args.junit}")
    if args.json:
        import json

        print(json.dumps(as_json(result), indent=2))
    if any(s.error for s in result.subjects):
        return 3
    return 0 if result.ok else 1


def _run_subjects(
    suite: str,
    subjects: list[tuple[str, Callable[[Path], AbstractContextManager[Any]]]],
    run: Callable[[Any], SubjectResult],
    args: argparse.Namespace,
) -> int:
    if os.geteuid() != 0:
        console.print("[red]lab conformance: the suites make network namespaces (and a dockerd): run as root[/]")
        return 2
    result = SuiteResult(suite)
    work = Path(tempfile.mkdtemp(prefix=f"podnet-conformance-{suite}-"))
    t0 = time.perf_counter()
    try:
        for name, make in subjects:
            console.print(f"[bold]{suite}: {name}[/]")
            started = time.perf_counter()
            try:
                with make(work / name) as prepared:
                    console.print(f"  [dim]{prepared.subject.how}[/]")
                    result.subjects.append(run(prepared))
            except Exception as err:  # a subject that cannot be set up: said, and the others still run
                result.subjects.append(
                    SubjectResult(
                        name,
                        name,
                        "",
                        error=f"{type(err).__name__}: {err}",
                        seconds=round(time.perf_counter() - started, 3),
                    )
                )
    finally:
        result.seconds = round(time.perf_counter() - t0, 3)
        if result.ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"[dim]work files (logs, IPAM dataDirs): {work}[/]")
    return _finish(result, args)


def cmd_cni(args: argparse.Namespace) -> int:
    from lab.conformance.cni.spec import VERSIONS
    from lab.conformance.cni.subjects import CI, ci_subject, user_subject
    from lab.conformance.cni.suite import RULES, run_subject

    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    unknown = [v for v in versions if v not in VERSIONS]
    if unknown:
        console.print(f"[red]unknown version(s) {', '.join(unknown)} (the suite knows {', '.join(VERSIONS)})[/]")
        return 2
    rules = set(args.rule) if args.rule else None
    problem = usage_problem(args, (r.id for r in RULES), "PATH [--conf FILE]", [*CI, "all"])
    if problem:
        console.print(f"[red]{problem}[/]")
        return 2
    subjects: list[tuple[str, Callable[[Path], AbstractContextManager[Any]]]] = []
    if args.plugin and not (args.plugin.is_file() and os.access(args.plugin, os.X_OK)):
        console.print(f"[red]lab conformance cni: {args.plugin} is not an executable file[/]")
        return 2
    if args.conf and not args.conf.is_file():
        console.print(f"[red]lab conformance cni: {args.conf}: no such file[/]")
        return 2
    if args.plugin:
        cni_path = [p for p in args.cni_path.split(":") if p]
        subjects.append((args.plugin.name, lambda work: user_subject(args.plugin, args.conf, work, cni_path)))
    else:
        names = list(CI) if "all" in args.subject else list(dict.fromkeys(args.subject))
        python = None
        if "podnet" in names:
            from lab.deploy import lab_venv

            with console.status("the podnet wheel in the lab venv…"):
                python, built = lab_venv()
            if built:
                console.print(f"built the lab venv: {python}")
        subjects += [(name, functools.partial(ci_subject, name, python=python)) for name in names]

    def run(prepared: Any) -> SubjectResult:
        return run_subject(prepared.subject, prepared.kernel, versions, only=rules, progress=_progress)

    return _run_subjects("cni", subjects, run, args)


def cmd_libnetwork(args: argparse.Namespace) -> int:
    from lab.conformance.libnetwork.cli import run_libnetwork

    return run_libnetwork(args, _run_subjects, _progress, console)


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--junit", type=Path, help="write JUnit XML here (a testsuite per subject)")
    p.add_argument("--html", type=Path, help="write the HTML report here (rules × subjects, failures cited)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--keep", action="store_true", help="keep the work files (logs, IPAM state) even on success")


def add_commands(sub: Any) -> None:
    conformance = sub.add_parser(
        "conformance", help="judge a CNI plugin or a libnetwork remote driver against its spec, on real namespaces"
    )
    which = conformance.add_subparsers(dest="suite", metavar="SUITE", required=True)
    cni = which.add_parser("cni", help="the CNI spec (0.3.0 … 1.1.0): a plugin exec'd as a runtime does")
    cni.add_argument("--plugin", type=Path, help="the plugin executable")
    cni.add_argument("--conf", type=Path, help="its plugin configuration (JSON; the first plugin of a conflist)")
    cni.add_argument(
        "--cni-path", default="", help="CNI_PATH for delegated plugins (default: the plugin's dir:/usr/lib/cni)"
    )
    cni.add_argument(
        "--subject", action="append", help="a CI subject instead: podnet, bridge, ptp, macvlan, host-device, all"
    )
    cni.add_argument(
        "--versions", default="0.3.0,0.3.1,0.4.0,1.0.0,1.1.0", help="spec versions to test (comma-separated)"
    )
    cni.add_argument("--rule", action="append", help="only this rule (repeat)")
    _outputs(cni)
    cni.set_defaults(handler=cmd_cni)
    lnw = which.add_parser("libnetwork", help="the libnetwork remote driver API, driven by a real dockerd 20.10")
    lnw.add_argument("--plugin", type=Path, help="the plugin's unix socket")
    lnw.add_argument("--start", help="the command that starts the plugin; the suite runs it in its dockerd's namespace")
    lnw.add_argument("--driver", default="", help="the driver name dockerd knows it by (default: the socket's name)")
    lnw.add_argument("--subject", action="append", help="a CI subject instead: podnet")
    lnw.add_argument("--rule", action="append", help="only this rule (repeat)")
    _outputs(lnw)
    lnw.set_defaults(handler=cmd_libnetwork)
