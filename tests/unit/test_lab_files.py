"""Topology and scenario files: valid ones load, bad ones say file, step and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.model.topology import DEFAULT, TopologyError, load_topology
from lab.model.variables import VariableError, dig, substitute
from lab.paths import all_scenarios
from lab.scenario.model import ScenarioError, load_scenario


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
            "nodes.0.colour: unknown field (known here: cpus, docker_plugin, host, memory_mib, name, role, runtime, uplinks)",
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
            "step 1 (typo): dokcer: unknown field; did you mean docker?",
        ),
        ("  - name: both\n    exec: {node: n, container: c, pod: p, cmd: [ls]}\n", "give container or pod, not both"),
        (
            "  - name: verb\n    cni: {node: n, command: PUT, pod: p}\n",
            "step 1 (verb): cni.command: Input should be 'ADD'",
        ),
        ("  - name: w\n    wait: {seconds: 1}\n    within: 5\n", "within applies to checks: the step has none"),
        (
            "  - name: proc\n    process: {node: n, name: dockr, action: stop}\n",
            "step 1 (proc): process.name: no process 'dockr'; did you mean dockerd?",
        ),
        (
            "  - name: d\n    docker: {node: n, args: [ps]}\n    expect: {stdout_contain: x}\n",
            "step 1 (d): expect.stdout_contain: unknown field; did you mean stdout_contains?",
        ),
        (
            "  - name: c\n    checks: [{packet: {pcap: p}}]\n",
            "step 1 (c): checks.0.packet: unknown field; did you mean packets?",
        ),
        (
            "  - name: c\n    checks: [{routes: {node: n, has: {dst: default, gatway: x}}}]\n",
            "step 1 (c): checks.0.routes.has.gatway: unknown field; did you mean gateway?",
        ),
        (
            "  - name: c\n    capture: {x: {node: n, endpoint: app1, field: a}}\n",
            "step 1 (c): capture.x.endpoint: unknown field; did you mean endpoint_of?",
        ),
    ],
)
def test_bad_scenarios_name_file_step_and_field(tmp_path: Path, steps: str, message: str) -> None:
    path = write(tmp_path, "bad.yaml", SCENARIO_HEAD + steps)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_unknown_capability_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path, "r.yaml", "name: s\nrequires: [host-cni-runtim]\nsteps:\n  - name: w\n    wait: {seconds: 1}\n"
    )
    with pytest.raises(
        ScenarioError, match="requires.0: unknown capability 'host-cni-runtim'; did you mean host-cni-runtime?"
    ):
        load_scenario(path)


def test_needs_come_from_declarations_and_kinds(tmp_path: Path) -> None:
    cni = write(tmp_path, "c.yaml", SCENARIO_HEAD + "  - name: a\n    cni: {node: n, command: ADD, pod: p}\n")
    plain = write(tmp_path, "p.yaml", SCENARIO_HEAD + "  - name: a\n    docker: {node: n, args: [ps]}\n")
    routes = write(
        tmp_path,
        "r.yaml",
        SCENARIO_HEAD + "  - name: a\n    checks: [{routes: {node: n, pod: p, has: {dst: default}}}]\n",
    )
    assert load_scenario(cni).needs() == {"host-cni-runtime"}
    assert load_scenario(routes).needs() == {"host-cni-runtime"}
    assert load_scenario(plain).needs() == set()
    assert "needs host-cni-runtime" in load_scenario(cni).why_not("vagrant", frozenset())
    assert load_scenario(cni).why_not("netns", frozenset({"host-cni-runtime"})) == ""


def test_backends_still_read_as_a_deprecated_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "b.yaml", "name: s\nbackends: [netns]\nsteps:\n  - name: w\n    wait: {seconds: 1}\n")
    scenario = load_scenario(path)
    assert scenario.why_not("netns", frozenset()) == ""
    assert "deprecated: use requires" in scenario.why_not("vagrant", frozenset())


def test_variables_leave_docker_templates_alone() -> None:
    variables = {"app1.ip": "10.0.0.2", "image": "busybox"}
    assert substitute("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} {app1.ip}", variables) == (
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} 10.0.0.2"
    )
    with pytest.raises(VariableError, match=r"unknown variable \{app2.ip\} \(known: app1.ip, image\)"):
        substitute("http://{app2.ip}/", variables)
    assert dig({"a": [{"b": 3}]}, "a.0.b") == 3
