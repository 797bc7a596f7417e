"""The usage checks both `lab conformance` commands make before anything is set up (exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable


def usage_problem(args: argparse.Namespace, rule_ids: Iterable[str], plugin_form: str, ci: Iterable[str]) -> str | None:
    """What is wrong with --rule, --plugin and --subject, or None."""
    known = set(rule_ids)
    unknown = set(args.rule or ()) - known
    if unknown:
        return f"unknown rule(s) {', '.join(sorted(unknown))}"
    if bool(args.plugin) == bool(args.subject):
        return f"give --plugin {plugin_form}, or --subject NAME (CI subjects: {', '.join(ci)})"
    return None
