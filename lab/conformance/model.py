"""What both conformance suites share: a rule (id, the spec text it cites, a check), an outcome, results.

A rule's check returns an `Outcome`: `pass`, `fail` (with what was expected,
what came back and a message), `n/a` (the rule does not apply to what the
plugin claims: a spec version, a driver interface) or `cannot check` (the
suite has no way to observe it for this plugin, e.g. an IPAM it does not
know). Results are plain data: the reports and `--json` read them only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NA = "n/a"
    CANNOT = "cannot check"


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str = ""  # fail: what went wrong; n/a and cannot check: why
    expected: str = ""
    actual: str = ""

    @classmethod
    def ok(cls, message: str = "") -> Outcome:
        return cls(Status.PASS, message)

    @classmethod
    def fail(cls, message: str, expected: str = "", actual: str = "") -> Outcome:
        return cls(Status.FAIL, message, expected, actual)

    @classmethod
    def na(cls, why: str) -> Outcome:
        return cls(Status.NA, why)

    @classmethod
    def cannot(cls, why: str) -> Outcome:
        return cls(Status.CANNOT, why)


class Failed(Exception):
    """Raised inside a check to fail the rule at once (the check's helpers use it)."""

    def __init__(self, message: str, expected: str = "", actual: str = ""):
        super().__init__(message)
        self.outcome = Outcome.fail(message, expected, actual)


class CannotCheck(Exception):
    def __init__(self, why: str):
        super().__init__(why)
        self.outcome = Outcome.cannot(why)


@dataclass(frozen=True)
class Citation:
    """Where a rule comes from: the document, its section, a link, the sentence it enforces."""

    document: str
    section: str
    url: str
    text: str


C = TypeVar("C")


@dataclass(frozen=True)
class Rule(Generic[C]):
    id: str
    title: str
    cites: Citation
    check: Callable[[C], Outcome]
    since: str = ""  # CNI: the first spec version it applies to ("" = every one)
    until: str = ""  # CNI: the last one
    per_version: bool = False  # CNI: checked at every version tested, not only the highest
    needs: str = ""  # libnetwork: the interface it applies to (NetworkDriver, IpamDriver)
    always: bool = False  # judged whatever the plugin claims (the rule that judges the claim itself)


def run_check(check: Callable[[C], Outcome], ctx: C) -> Outcome:
    """The check's outcome; an exception of the suite's own (or a reply it could not read) is a failure
    that says so."""
    try:
        return check(ctx)
    except (Failed, CannotCheck) as err:
        return err.outcome
    except Exception as err:
        return Outcome.fail(f"the check could not complete: {type(err).__name__}: {err}")


@dataclass
class RuleResult:
    id: str
    title: str
    cites: Citation
    status: Status
    message: str = ""
    expected: str = ""
    actual: str = ""
    seconds: float = 0.0
    versions: dict[str, Outcome] = field(default_factory=dict)  # per version, for per-version rules
    explained: str = ""  # a known deviation of this subject, and why


@dataclass
class SubjectResult:
    name: str
    description: str
    how: str  # how the suite ran it: namespaces, the agent it started, …
    claimed: list[str] = field(default_factory=list)  # CNI versions, or libnetwork interfaces
    tested: list[str] = field(default_factory=list)
    rules: list[RuleResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # the subject could not be set up at all

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for r in self.rules:
            out[r.status.value] += 1
        return out

    @property
    def unexpected(self) -> list[RuleResult]:
        """Failures no known deviation explains."""
        return [r for r in self.rules if r.status == Status.FAIL and not r.explained]

    @property
    def ok(self) -> bool:
        return not self.error and not self.unexpected


@dataclass
class SuiteResult:
    suite: str  # "cni" or "libnetwork"
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    subjects: list[SubjectResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.subjects)

    def rule_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.subjects:
            for r in s.rules:
                seen.setdefault(r.id, None)
        return list(seen)


def as_json(result: SuiteResult) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Status):
            return value.value
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    data: dict[str, Any] = convert(asdict(result))
    data["ok"] = result.ok
    for subject, out in zip(result.subjects, data["subjects"], strict=True):
        out["ok"] = subject.ok
        out["counts"] = subject.counts()
    return data


def judged(
    rule: Rule[Any], outcome: Outcome, seconds: float, known: dict[str, str], versions: dict[str, Outcome] | None = None
) -> RuleResult:
    """A rule's result for a subject: a failure the subject is known for is explained; a known failure
    that no longer fails is itself a failure (the list of deviations is stale)."""
    result = RuleResult(
        rule.id,
        rule.title,
        rule.cites,
        outcome.status,
        outcome.message,
        outcome.expected,
        outcome.actual,
        round(seconds, 3),
        versions or {},
    )
    if result.status == Status.FAIL and rule.id in known:
        result.explained = known[rule.id]
    elif rule.id in known:
        result.message = f"listed as a known failure ({known[rule.id]}), but it is {result.status.value} now"
        result.status = Status.FAIL
    return result
