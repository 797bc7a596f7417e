"""`lab conformance libnetwork`: the CI subject (podnet) or a plugin given by its socket."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from lab.conformance.libnetwork.subjects import CI, podnet_subject, user_subject
from lab.conformance.libnetwork.suite import RULES, run_subject
from lab.conformance.model import SubjectResult
from lab.conformance.usage import usage_problem


def run_libnetwork(
    args: argparse.Namespace, run_subjects: Callable[..., int], progress: Callable[..., None], console: Console
) -> int:
    rules = set(args.rule) if args.rule else None
    problem = usage_problem(args, (r.id for r in RULES), "SOCKET [--start COMMAND]", CI)
    if problem:
        console.print(f"[red]{problem}[/]")
        return 2
    subjects: list[tuple[str, Callable[[Path], Any]]] = []
    if args.plugin and not args.start and not Path(args.plugin).is_socket():
        console.print(
            f"[red]lab conformance libnetwork: {args.plugin}: no unix socket there (or give --start COMMAND)[/]"
        )
        return 2
    if args.plugin:
        driver = args.driver or Path(args.plugin).stem
        subjects.append((driver, lambda work: user_subject(work, Path(args.plugin), args.start, driver)))
    else:
        unknown = [s for s in args.subject if s not in CI]
        if unknown:
            console.print(f"[red]unknown subject(s) {', '.join(unknown)} (CI subjects: {', '.join(CI)})[/]")
            return 2
        from lab.deploy import lab_venv

        with console.status("the podnet wheel in the lab venv…"):
            python, _ = lab_venv()
        subjects.append(("podnet", lambda work: podnet_subject(work, python)))

    def run(prepared: Any) -> SubjectResult:
        return run_subject(prepared.subject, prepared.side, only=rules, progress=progress)

    return run_subjects("libnetwork", subjects, run, args)
