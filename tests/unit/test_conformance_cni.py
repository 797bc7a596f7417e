"""The CNI conformance suite judged on a fake kernel: a plugin that keeps every rule passes them all,
and each mutant (tests/conformance/cniplug.py) fails exactly its own rule. Integration tests run each
mutant against its rule on real namespaces (tests/integration/test_conformance.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from lab.conformance.cni.context import NETWORK, Subject
from lab.conformance.cni.probes import HostLocalProbe
from lab.conformance.cni.suite import RULES, run_subject
from lab.conformance.model import Status, SubjectResult, SuiteResult, as_json
from lab.conformance.report import html_page, write_junit
from tests.conformance.cniplug import MUTANTS, CNIPlug, unavailable
from tests.conformance.fakekernel import FakeKernel, FakeTuning

PLUGIN, TUNING = "/fake/cfplug", "/fake/tuning"


def subject(tmp: Path, kernel: FakeKernel, mutant: str | None = None, **changes: Any) -> Subject:
    kernel.plugins[PLUGIN] = CNIPlug(kernel, mutant, race_s=0.05).main
    kernel.plugins[TUNING] = FakeTuning(kernel).main
    data = tmp / "host-local"

    fields: dict[str, Any] = {
        "name": f"cfplug{'-' + mutant if mutant else ''}",
        "plugin": PLUGIN,
        "conf": {
            "type": "cfplug",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.91.0.0/24"}]], "dataDir": str(data)},
        },
        "description": "the suite's own test plugin",
        "probe": HostLocalProbe(data, NETWORK),
        "unavailable": lambda: unavailable(data / NETWORK),
        "chain": TUNING,
        **changes,
    }
    return Subject(**fields)


def judged(tmp: Path, mutant: str | None = None, **changes: Any) -> dict[str, Any]:
    kernel = FakeKernel()
    result = run_subject(subject(tmp, kernel, mutant, **changes), kernel)
    assert set(kernel.namespaces) == {None} and kernel.namespaces[None] == {}, "the suite left namespaces or links"
    return {r.id: r for r in result.rules}


def test_every_rule_has_a_mutant_and_every_mutant_a_rule() -> None:
    assert sorted(MUTANTS) == sorted(r.id for r in RULES)
    assert len({r.id for r in RULES}) == len(RULES)


def test_a_plugin_keeping_every_rule_passes_them_all(tmp_path: Path) -> None:
    results = judged(tmp_path)
    assert {i: (r.status.value, r.message) for i, r in results.items() if r.status != Status.PASS} == {}


@pytest.mark.parametrize("rule", sorted(MUTANTS))
def test_each_mutant_fails_its_rule_and_passes_the_others(tmp_path: Path, rule: str) -> None:
    results = judged(tmp_path, rule)
    assert results[rule].status == Status.FAIL, (MUTANTS[rule], results[rule])
    others = {i: r.message for i, r in results.items() if r.status == Status.FAIL and i != rule}
    assert others == {}, f"the mutant '{MUTANTS[rule]}' also fails {others}"


def test_rules_of_versions_the_plugin_does_not_claim_are_na(tmp_path: Path) -> None:
    kernel = FakeKernel()
    result = run_subject(subject(tmp_path, kernel), kernel, ["0.3.1", "0.4.0"])
    by_id = {r.id: r for r in result.rules}
    assert by_id["gc.removes-stale"].status == Status.NA and "1.1.0" in by_id["gc.removes-stale"].message
    assert by_id["check.after-add"].status == Status.PASS  # from 0.4.0
    assert by_id["version.echo"].status == Status.NA  # from 1.0.0
    assert result.tested == ["0.3.1", "0.4.0"]
    assert set(by_id["add.result-schema"].versions) == {"0.3.1", "0.4.0"}


def test_without_an_ipam_probe_release_rules_cannot_be_checked(tmp_path: Path) -> None:
    results = judged(tmp_path, probe=None, unavailable=None)
    assert results["del.releases"].status == Status.CANNOT and "no probe" in results["del.releases"].message
    assert results["gc.removes-stale"].status == Status.CANNOT
    assert results["status.unavailable"].status == Status.CANNOT
    assert all(r.status != Status.FAIL for r in results.values())


def test_a_known_deviation_is_explained_and_a_stale_one_fails(tmp_path: Path) -> None:
    results = judged(tmp_path, "env.command-missing", known={"env.command-missing": "does it on purpose"})
    assert results["env.command-missing"].status == Status.FAIL and results["env.command-missing"].explained
    results = judged(tmp_path / "2", known={"del.idempotent": "used to fail"})
    assert (
        results["del.idempotent"].status == Status.FAIL
        and "listed as a known failure" in results["del.idempotent"].message
    )


def test_reports_show_rules_by_subject_with_expected_actual_and_the_cited_text(tmp_path: Path) -> None:
    kernel = FakeKernel()
    good = run_subject(subject(tmp_path / "a", kernel), kernel)
    bad = run_subject(subject(tmp_path / "b", kernel, "check.address-gone"), kernel)
    bad.rules[0].explained = ""
    suite = SuiteResult("cni", subjects=[good, bad])
    page = html_page(suite)
    assert "<th>cfplug</th><th>cfplug-check.address-gone</th>" in page
    failure = next(r for r in bad.rules if r.id == "check.address-gone")
    assert f"id='cfplug-check.address-gone-{failure.id}'" in page
    assert "should return an error if a resource included in the CNI Result type" in page  # the cited spec text
    assert "expected</th>" in page and "actual</th>" in page and failure.cites.url in page
    junit = tmp_path / "junit.xml"
    write_junit(suite, junit)
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [(s.get("name"), s.get("failures")) for s in suites] == [
        ("cni: cfplug", "0"),
        ("cni: cfplug-check.address-gone", "1"),
    ]
    data = json.loads(json.dumps(as_json(suite)))
    assert data["ok"] is False and data["subjects"][1]["counts"]["fail"] == 1
    assert [r["status"] for r in data["subjects"][1]["rules"] if r["id"] == "check.address-gone"] == ["fail"]


def test_a_subject_result_counts_and_judges() -> None:
    s = SubjectResult("x", "x", "")
    assert s.ok and s.counts() == {"pass": 0, "fail": 0, "n/a": 0, "cannot check": 0}
