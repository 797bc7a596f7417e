"""Topology and scenario files: valid ones load, bad ones say file, step and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.scenario import ScenarioError, all_scenarios, load_scenario
from lab.topology import DEFAULT, TopologyError, load_topology
from lab.variables import VariableError, dig, substitute


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_topology_and_derived_addresses() -> None:
    topo = load_topology(DEFAULT)
    assert [n.name for n in topo.nodes] == ["node1", "node2", "ctrl"]
    assert [w.name for w in topo.workers()] == ["node1", "node2"]
    control = topo.control()
    assert control is not None and control.name == "ctrl"
    assert [(link.tor_ip, link.node_ip) for link in topo.links()] == [
        ("192.168.50.1", "192.168.50.2"),
        ("192.168.50.5", "192.168.50.6"),
        ("192.168.50.9", "192.168.50.10"),
    ]
    assert load_topology("default") == topo
    nine = load_topology("nine-nodes")
    assert len(nine.workers()) == 9 and nine.control() is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: x\ncluster_cidrs: [10.0.0.0/16]\nmask_size: 24\nnodes: []\n",
            "nodes: List should have at least 1 item",
        ),
        (
            "name: x\ncluster_cidrs: [10.0.0.0/16]\nmask_size: 24\nnodes: [{name: Node_1}]\n",
            "nodes.0.name: String should match pattern",
        ),
        (
            "name: x\ncluster_cidrs: [10.0.0.0/16]\nmask_size: 24\nnodes: [{name: a}, {name: a}]\n",
            "names must be unique",
        ),
        ("name: x\ncluster_cidrs: [10.0.0.0/16, 10.0.1.0/24]\nmask_size: 24\nnodes: [{name: a}]\n", "overlap"),
        (
            "name: x\ncluster_cidrs: [10.0.0.0/16]\nmask_size: 24\nnodes: [{name: a}, {name: b, role: control}, {name: c, role: control}]\n",
            "at most one node can have role control, not 2 (b, c)",
        ),
        (
            "name: x\ncluster_cidrs: [10.0.0.0/16]\nmask_size: 24\nnodes: [{name: b, role: control}]\n",
            "needs at least one node with role worker",
        ),
        ("name: x\ncluster_cidrs: [192.168.50.0/24]\nmask_size: 26\nnodes: [{name: a}]\n", "overlaps the underlay"),
        (
            "name: x\nunderlay: 10.9.0.0/30\ncluster_cidrs: [10.0.0.0/16]\nmask_size: 24\nnodes: [{name: a}]\n",
            "underlay: Value error, must be",
        ),
        (
            "name: x\ncluster_cidrs: [10.0.0.0/16]\nmask_size: 24\nnodes: [{name: a, colour: red}]\n",
            "nodes.0.colour: Extra inputs are not permitted",
        ),
        ("- just\n- a list\n", "a topology is a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_topologies_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "t.yaml", text)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    assert str(path) in str(err.value) and message.removeprefix("underlay: Value error, ") in str(err.value)


def test_shipped_scenarios_are_valid() -> None:
    names = [load_scenario(p).name for p in all_scenarios()]
    assert {"docker-network-create", "docker-app1-app2-curl"} <= set(names)


SCENARIO_HEAD = "name: s\ntopology: default\nsteps:\n"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            "  - name: two things\n    docker: {node: n, args: [ps]}\n    wait: {seconds: 1}\n",
            "step 1 (two things): a step does one thing",
        ),
        (
            "  - name: ok\n    wait: {seconds: 1}\n  - name: no args\n    docker: {node: n, args: []}\n",
            "step 2 (no args): docker.args: List should have at least 1 item",
        ),
        (
            "  - name: c\n    checks: [{packets: {pcap: p}}]\n",
            "step 1 (c): checks.0.packets: give exactly one of tcp_syn",
        ),
        (
            "  - name: c\n    checks: [{routes: {node: n, has: {dst: default}}, inspect: {node: n, docker: [x], path: a}}]\n",
            "step 1 (c): checks.0: a check is exactly one of",
        ),
        (
            "  - name: c\n    capture: {x: {node: n, endpoint_of: app1}}\n",
            "endpoint_of, agent and counter_of need a field",
        ),
        ("  - name: e\n    wait: {seconds: 1}\n    expect: {ok: false}\n", "expect applies to docker and exec steps"),
        (
            "  - name: typo\n    dokcer: {node: n, args: [ps]}\n",
            "step 1 (typo): dokcer: Extra inputs are not permitted",
        ),
        ("  - name: both\n    exec: {node: n, container: c, pod: p, cmd: [ls]}\n", "give container or pod, not both"),
        (
            "  - name: verb\n    cni: {node: n, command: PUT, pod: p}\n",
            "step 1 (verb): cni.command: Input should be 'ADD'",
        ),
        ("  - name: w\n    wait: {seconds: 1}\n    within: 5\n", "within applies to checks: the step has none"),
        ("  - name: proc\n    process: {node: n, name: dockerd, action: stop}\n", "process.name: Input should be"),
    ],
)
def test_bad_scenarios_name_file_step_and_field(tmp_path: Path, steps: str, message: str) -> None:
    path = write(tmp_path, "bad.yaml", SCENARIO_HEAD + steps)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_variables_leave_docker_templates_alone() -> None:
    variables = {"app1.ip": "10.0.0.2", "image": "busybox"}
    assert substitute("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} {app1.ip}", variables) == (
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} 10.0.0.2"
    )
    with pytest.raises(VariableError, match=r"unknown variable \{app2.ip\} \(known: app1.ip, image\)"):
        substitute("http://{app2.ip}/", variables)
    assert dig({"a": [{"b": 3}]}, "a.0.b") == 3
