"""The CNI conformance suite on real namespaces: cfplug (tests/conformance/cniplug.py) passes every rule,
each of its mutants fails its own rule, and `lab conformance cni --plugin … --conf …` judges a plugin
given by path. (The rules × mutants cross runs on the fake kernel: tests/unit/test_conformance_cni.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab.conformance.cni.context import NETWORK, Subject
from lab.conformance.cni.probes import HostLocalProbe
from lab.conformance.cni.suite import run_subject
from lab.conformance.kernel import Namespaces
from lab.conformance.model import Status
from tests.conformance.cniplug import MUTANTS, unavailable

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
# Rules over the whole run need calls before them that fail.
BEFORE = {"error.form": {"del.never-added"}, "error.cniversion": {"version.unsupported"}}


def cfplug(tmp: Path, mutant: str | None) -> Path:
    script = tmp / f"cfplug-{mutant or 'good'}"
    script.write_text(
        f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m tests.conformance.cniplug {mutant or '-'}\n"
    )
    script.chmod(0o755)
    return script


@contextmanager
def real_subject(tmp: Path, mutant: str | None = None) -> Iterator[tuple[Subject, Namespaces]]:
    data = tmp / "host-local"

    ns = Namespaces("cfplug").create()
    try:
        yield (
            Subject(
                name=f"cfplug-{mutant or 'good'}",
                plugin=str(cfplug(tmp, mutant)),
                conf={
                    "type": "cfplug",
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.92.0.0/24"}]], "dataDir": str(data)},
                },
                description="the suite's own test plugin",
                cni_path=["/usr/lib/cni"],
                probe=HostLocalProbe(data, NETWORK),
                unavailable=lambda: unavailable(data / NETWORK),
                chain_conf={"dataDir": str(tmp / "tuning")},
            ),
            ns,
        )
    finally:
        ns.close()
    assert not [
        n
        for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        if n.startswith(ns.host)
    ], "the suite left namespaces"


def test_cfplug_passes_every_rule_on_real_namespaces(tmp_path: Path) -> None:
    with real_subject(tmp_path) as (subject, ns):
        result = run_subject(subject, ns)
    failed = {r.id: r.message for r in result.rules if r.status == Status.FAIL}
    assert failed == {}
    assert all(r.status == Status.PASS for r in result.rules), [(r.id, r.status, r.message) for r in result.rules]
    assert result.seconds < 60


@pytest.mark.parametrize("rule", sorted(MUTANTS))
def test_each_mutant_fails_its_rule_on_real_namespaces(tmp_path: Path, rule: str) -> None:
    with real_subject(tmp_path, rule) as (subject, ns):
        result = run_subject(subject, ns, only={rule, *BEFORE.get(rule, ())})
    by_id = {r.id: r for r in result.rules}
    assert by_id[rule].status == Status.FAIL, (MUTANTS[rule], by_id[rule])


def test_lab_conformance_cni_judges_a_plugin_given_by_path(tmp_path: Path) -> None:
    conf = tmp_path / "cfplug.conflist"
    conf.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "mine",
                "plugins": [
                    {
                        "type": "cfplug",
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": "10.93.0.0/24"}]],
                            "dataDir": "/var/lib/cni/must-not-be-used",
                        },
                    }
                ],
            }
        )
    )
    out = tmp_path / "report"
    lab = Path(sys.executable).parent / "lab"
    proc = subprocess.run(
        [
            str(lab),
            "conformance",
            "cni",
            "--plugin",
            str(cfplug(tmp_path, "del.releases")),
            "--conf",
            str(conf),
            "--rule",
            "del.releases",
            "--rule",
            "add.result-schema",
            "--json",
            "--html",
            str(out / "cni.html"),
            "--junit",
            str(out / "junit.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A failing run keeps its work files for the user and says where: this test removes them.
    kept = re.search(r"work files \(logs, IPAM dataDirs\): (\S*podnet-conformance-cni-\S+)", proc.stdout + proc.stderr)
    if kept:
        shutil.rmtree(kept.group(1))
    assert kept, f"a failing run does not say where its work files are: {proc.stderr}"
    assert proc.returncode == 1, proc.stderr  # the mutant's failure is nobody's known deviation
    data = json.loads(proc.stdout)
    rules = {r["id"]: r for r in data["subjects"][0]["rules"]}
    assert rules["del.releases"]["status"] == "fail" and rules["add.result-schema"]["status"] == "pass"
    assert "host-local dataDir /tmp/podnet-conformance-cni-" in data["subjects"][0]["how"]  # its own, temporary
    assert not Path("/var/lib/cni/must-not-be-used").exists()
    assert "wall time" in proc.stderr and (out / "cni.html").exists() and (out / "junit.xml").exists()
