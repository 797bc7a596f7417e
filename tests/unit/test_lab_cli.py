"""What users see of the harness without root: schemas, `lab status --json`, the run's reports."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jsonschema
import pytest
import yaml

from lab import cli, paths
from lab.backends.base import ProcessState, Timing
from lab.model.status import LabStatus
from lab.model.topology import TOPOLOGIES
from lab.report import write_run
from lab.scenario.results import CheckResult, Flow, RunResult, ScenarioRun, StepResult, TopologyResult
from lab.session import summary
from tests.fakelab import fake_lab


def schema(what: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert cli.main(["schema", what]) == 0
    exported: dict[str, Any] = json.loads(capsys.readouterr().out)
    return exported


def test_every_shipped_scenario_and_topology_validates_against_the_exported_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for what, files in (("scenario", paths.all_scenarios()), ("topology", sorted(TOPOLOGIES.glob("*.yaml")))):
        exported = schema(what, capsys)
        jsonschema.Draft202012Validator.check_schema(exported)
        assert files
        for path in files:
            jsonschema.validate(yaml.safe_load(path.read_text()), exported)


def test_the_scenario_schema_refuses_an_unknown_kind_as_the_loader_does(capsys: pytest.CaptureFixture[str]) -> None:
    exported = schema("scenario", capsys)
    bad = {"name": "s", "steps": [{"name": "x", "dokcer": {"node": "n", "args": ["ps"]}}]}
    with pytest.raises(jsonschema.ValidationError, match="dokcer"):
        jsonschema.validate(bad, exported)
    bad_check = {"name": "s", "steps": [{"name": "x", "checks": [{"packet": {"pcap": "p"}}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_check, exported)


def test_lab_status_json_has_every_node_and_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = fake_lab(tmp_path)
    lab.nodes["node1"].states["podnet-agent"] = ProcessState("podnet-agent", False, None, None, "killed by SIGKILL")
    status = lab.status()
    data = json.loads(status.model_dump_json())
    jsonschema.validate(data, schema("status", capsys))
    assert LabStatus.model_validate(data) == status
    assert [n["name"] for n in data["nodes"]] == ["tor", "node1", "node2", "ctrl"]
    assert [n["role"] for n in data["nodes"]] == ["tor", "worker", "worker", "control"]
    node1 = data["nodes"][1]
    agent = {p["name"]: p for p in node1["processes"]}["podnet-agent"]
    assert not agent["running"] and agent["detail"] == "killed by SIGKILL"
    assert node1["agent"]["state"] == "unreachable"  # no agent behind the fake's socket
    assert data["nodes"][0]["underlay_ip"] == ["192.168.50.1", "192.168.50.5", "192.168.50.9"]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if name == "href" and value]


def topology_result(tmp_path: Path, topology: str, passed: bool) -> TopologyResult:
    lab = fake_lab(tmp_path / topology, topology)
    lab.timings = [
        Timing("namespaces", 0.0, 1.0),
        Timing("node1: dockerd", 1.0, 2.0),
        Timing("node2: dockerd", 1.1, 2.2),
    ]
    lab.up_seconds = 3.3
    check = CheckResult(
        "routes", "node1 has route default", passed, "a route default", "empty table", "node1: ip route"
    )
    calls = ["/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join"]
    plugin = CheckResult(
        "plugin_calls", "in order", True, "", "", "", data={"node": "node1", "calls": calls, "expected": calls}
    )
    step = StepResult("s1", "docker", 1.5, passed, "node1$ docker run", checks=[check, plugin], waited_s=0.8)
    step.pcaps = {"veth": "pcaps/veth.pcap"}
    step.flows = {"veth": [Flow("TCP", "10.0.0.3:40000", "10.0.0.2:80", 5, 400, "SYN, SYN-ACK, HTTP 200")]}
    run = ScenarioRun(f"flow-{topology}", tmp_path / "x", "a flow", steps=[step], seconds=2.0)
    return TopologyResult(summary(lab), [run], f"{topology}-fake01/report.html", 3.0, {"cni-flow": "needs X"})


def test_one_run_one_index_linking_every_topology(tmp_path: Path) -> None:
    run = RunResult("r1", tmp_path / "r1", "2026-11-30 12:00:00")
    run.topologies = [topology_result(tmp_path, "default", True), topology_result(tmp_path, "three-nodes", False)]
    index = write_run(run)
    html = index.read_text()
    links = Links()
    links.feed(html)
    assert {"default-fake01/report.html", "three-nodes-fake01/report.html"} <= set(links.hrefs)
    assert "three-nodes-fake01/report.html#flow-three-nodes" in links.hrefs
    # the failure is readable on the index itself: expected, actual, where
    assert "expected a route default" in html and "got empty table" in html and "node1: ip route" in html
    assert "0.80s" in html and "needs X" in html  # recovery times and what did not run
    page = (tmp_path / "r1" / "three-nodes-fake01" / "report.html").read_text()
    assert "<svg" in page and "/NetworkDriver.Join" in page and "SYN, SYN-ACK, HTTP 200" in page
    assert "control" in page and "etcd, podnet-operator" in page  # the control node, drawn with its role
    suites = ET.parse(tmp_path / "r1" / "junit.xml").getroot()
    assert [s.get("name") for s in suites] == ["default (fake)", "three-nodes (fake)"]
    assert suites.get("failures") == "1"
    assert json.loads((tmp_path / "r1" / "results.json").read_text())["topologies"][1]["passed"] is False


@pytest.mark.parametrize("left", [[], ["`vagrant destroy` exited 1: libvirt cannot be reached"]])
def test_a_failed_lab_up_says_whether_it_cleaned_up(
    left: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lab up` failing says "cleaned up" only when its own `lab down` removed everything."""

    class FailingSession:
        def __init__(self, run: object, topology: object, backend: str, console: object) -> None:
            self.lab = fake_lab(tmp_path)
            self.out = tmp_path / "out"
            self.cleanup_errors: list[str] = []

        def up(self, progress: object) -> None:
            self.cleanup_errors = list(left)
            raise cli.LabError("`vagrant up` exited 1")

    monkeypatch.setattr(cli, "LabSession", FailingSession)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    assert cli.main(["up", "--artifacts", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "lab up failed" in err and "`vagrant up` exited 1" in err
    if left:
        assert "cleaned up" not in err and "did not finish" in err and left[0] in err and "lab clean" in err
    else:
        assert "cleaned up lab" in err


def test_a_scenario_names_only_members_of_its_own_topology_and_another_topology_is_refused_by_name() -> None:
    """`lab run --topology T` puts every scenario on T: one that names a node T lacks is not run,
    with the nodes said (it used to fail midway on an unknown variable {node3.pod_cidr})."""
    from lab.model.topology import load_topology
    from lab.scenario.model import load_scenario

    for path in sorted(paths.scenarios().glob("*.yaml")):
        scenario = load_scenario(path.stem, paths.scenarios())
        assert scenario.names_used(), f"{scenario.name} names no lab member"
        assert scenario.why_not_on(load_topology(scenario.topology)) == "", scenario.name
    bgp = load_scenario("bgp-pod-routes", paths.scenarios())
    assert bgp.why_not_on(load_topology("default")) == (
        "names node3, which topology default does not have (the scenario is written for three-nodes)"
    )
    assert load_scenario("fault-agent-kill", paths.scenarios()).why_not_on(load_topology("default")) == ""
