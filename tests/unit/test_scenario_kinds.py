"""Every step and check kind, and the runner, against a fake lab (no root): each check kind passes
where it should and fails where it should (a check kind without a failing test here is not real:
`test_every_check_kind_has_a_failing_test` keeps that true)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from lab.scenario.checks import CHECKS
from lab.scenario.context import Context, StepFailed
from lab.scenario.model import Scenario, ScenarioBase
from lab.scenario.runner import Runner
from lab.scenario.steps import STEPS
from tests.agent_harness import RunningAgent, running_agent
from tests.fakelab import FakeLab, fake_lab

APP1, APP2 = "10.20.30.2", "10.20.30.3"


@pytest.fixture
def lab(tmp_path: Path) -> FakeLab:
    return fake_lab(tmp_path)


@pytest.fixture
def agent(tmp_path: Path, lab: FakeLab) -> Iterator[RunningAgent]:
    """A real agent (fake kernel) behind node1's agent socket."""
    with running_agent(tmp_path, cluster_cidrs=["10.20.30.0/24"], mask_size=26) as running:
        lab.nodes["node1"].agent_socket = Path(running.socket)
        yield running


def ctx(lab: FakeLab, tmp_path: Path, **variables: str) -> Context:
    return Context(lab, tmp_path / "out", variables=dict(variables))


def check(kind: str, lab: FakeLab, tmp_path: Path, spec: dict[str, Any], c: Context | None = None) -> Any:
    context = c or ctx(lab, tmp_path)
    model = CHECKS[kind].spec.model_validate(spec)
    if CHECKS[kind].prepare is not None:
        CHECKS[kind].prepare(context, model)  # type: ignore[misc]
    return CHECKS[kind].evaluate(context, model)


def scenario(steps: list[dict[str, Any]], cleanup: list[dict[str, Any]] | None = None) -> ScenarioBase:
    return Scenario.model_validate({"name": "s", "steps": steps, "cleanup": cleanup or []})


def docker_replies(table: dict[str, tuple[int, str, str]]) -> Any:
    """A docker handler answering by the first argument(s)."""

    def handler(args: list[str]) -> tuple[int, str, str] | None:
        for prefix, reply in table.items():
            if " ".join(args).startswith(prefix):
                return reply
        return None

    return handler


# -- checks -------------------------------------------------------------------------------------
def test_check_compare_passes_and_fails(lab: FakeLab, tmp_path: Path) -> None:
    assert check("compare", lab, tmp_path, {"left": "7", "right": "2", "difference": 5}).passed
    failed = check("compare", lab, tmp_path, {"left": "7", "right": "2", "difference": 4, "what": "packets"})
    assert not failed.passed and failed.actual == "up by 5 (2 -> 7)"
    assert not check("compare", lab, tmp_path, {"left": "a", "right": "a", "equals": False}).passed
    assert not check("compare", lab, tmp_path, {"left": "x", "right": "1", "at_least": 1}).passed


def test_check_allocations_passes_and_fails(lab: FakeLab, tmp_path: Path, agent: RunningAgent) -> None:
    ip = agent.client.ipam_allocate("docker-ipam")["address"]["ipv4"]
    assert check("allocations", lab, tmp_path, {"node": "node1", "ip": ip, "in_pod_cidr": True}).passed
    wrong_owner = check("allocations", lab, tmp_path, {"node": "node1", "ip": ip, "owner_prefix": "endpoint:"})
    assert not wrong_owner.passed and "does not start with 'endpoint:'" in wrong_owner.actual
    assert not check("allocations", lab, tmp_path, {"node": "node1", "ip": ip, "held": False}).passed
    counted = check("allocations", lab, tmp_path, {"node": "node1", "endpoints": 0, "allocated": 3})
    assert not counted.passed and "'allocated IPs': 2" in counted.actual
    assert not check("allocations", lab, tmp_path, {"node": "node1", "distinct": [ip, ip]}).passed


def test_check_endpoint_passes_and_fails(lab: FakeLab, tmp_path: Path, agent: RunningAgent) -> None:
    ip = agent.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    agent.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}, "labels": ["id=app1"]})
    node = lab.nodes["node1"]
    node.on_docker.append(docker_replies({"inspect -f": (0, "ep1\n", ""), "inspect": (0, "", "")}))
    assert check(
        "endpoint", lab, tmp_path, {"node": "node1", "container": "app1", "field": "state", "equals": "ready"}
    ).passed
    failed = check(
        "endpoint", lab, tmp_path, {"node": "node1", "container": "app1", "field": "identity", "equals": "1"}
    )
    assert not failed.passed and failed.expected == "1"
    node.on_docker.insert(0, docker_replies({"inspect": (0, "\n", "")}))
    gone = check("endpoint", lab, tmp_path, {"node": "node1", "container": "app1", "field": "state", "equals": "ready"})
    assert not gone.passed and "has no endpoint" in gone.actual


def test_check_nodes_passes_and_fails(lab: FakeLab, tmp_path: Path) -> None:
    rows = [
        {"name": "node1", "pod-cidrs": ["10.20.30.0/26"], "condition": None},
        {"name": "node9", "pod-cidrs": [], "condition": {"reason": "ClusterPoolExhausted", "message": "8 of 8 in use"}},
    ]
    lab.nodes["ctrl"].on_cmd.append(
        lambda argv: (0, json.dumps(rows), "") if argv[:3] == ["podnet", "node", "list"] else None
    )
    assert check("nodes", lab, tmp_path, {"pod_cidrs": {"node1": "10.20.30.0/26", "node9": "none"}}).passed
    wrong = check("nodes", lab, tmp_path, {"pod_cidrs": {"node1": "10.20.30.64/26"}})
    assert not wrong.passed and "10.20.30.0/26" in wrong.actual
    cond = {"condition": {"node": "node9", "reason": "ClusterPoolExhausted", "message_contains": "8 of 8"}}
    assert check("nodes", lab, tmp_path, cond).passed
    assert not check("nodes", lab, tmp_path, {"condition": {"node": "node1", "reason": "ClusterPoolExhausted"}}).passed


ROUTES: list[dict[str, Any]] = [
    {"dst": "default", "gateway": "192.168.50.1", "dev": "uplink"},  # iproute2 leaves out proto boot
    {"dst": "10.20.30.0/26", "dev": "podnet_host", "protocol": 200},
    {"dst": "10.20.30.64/26", "gateway": "192.168.50.6", "dev": "to-node2", "protocol": 12},
]


def test_check_routes_passes_and_fails(lab: FakeLab, tmp_path: Path) -> None:
    for node in (lab.nodes["node1"], lab.tor):
        node.on_cmd.append(lambda argv: (0, json.dumps(ROUTES), "") if "route" in argv else None)
    assert check("routes", lab, tmp_path, {"node": "node1", "has": {"dst": "10.20.30.0/26", "proto": "podnet"}}).passed
    has = {"dst": "10.20.30.64/26", "gateway": "192.168.50.6", "proto": "bird"}
    assert check("routes", lab, tmp_path, {"node": "tor", "has": has}).passed
    missing = check("routes", lab, tmp_path, {"node": "node1", "has": {"dst": "10.20.30.2"}})
    assert not missing.passed and "10.20.30.0/26 dev podnet_host proto podnet" in missing.actual
    assert not check("routes", lab, tmp_path, {"node": "node1", "lacks": {"dst": "default"}}).passed
    pod = check("routes", lab, tmp_path, {"node": "node1", "pod": "p1", "has": {"dst": "default"}})
    assert pod.passed and "nsenter --net=/run/netns/fake-node1-p1" in pod.where


def test_check_inspect_passes_and_fails(lab: FakeLab, tmp_path: Path) -> None:
    network = [{"Name": "podnet-net", "IPAM": {"Driver": "podnet"}, "Options": {}}]
    lab.nodes["node1"].on_docker.append(docker_replies({"network inspect": (0, json.dumps(network), "")}))
    spec = {"node": "node1", "docker": ["network", "inspect", "podnet-net"], "path": "0.IPAM.Driver"}
    assert check("inspect", lab, tmp_path, {**spec, "equals": "podnet"}).passed
    assert not check("inspect", lab, tmp_path, {**spec, "equals": "default"}).passed
    missing = check("inspect", lab, tmp_path, {**spec, "path": "0.Nope", "equals": 1})
    assert not missing.passed and missing.expected == "a value at 0.Nope"


@pytest.mark.parametrize(("name", "process"), [("node1", "podnet-agent"), ("node2", "podnet-docker")])
def test_check_plugin_calls_passes_and_fails(lab: FakeLab, tmp_path: Path, name: str, process: str) -> None:
    """In the log of whichever process serves the plugin: the agent (node1's docker_plugin: agent) or podnet-docker."""
    node = lab.nodes[name]
    node.logs[process] = "x podnet.docker: /NetworkDriver.CreateNetwork {}\n"
    context = ctx(lab, tmp_path)
    spec = CHECKS["plugin_calls"].spec.model_validate(
        {"node": name, "sequence": ["/IpamDriver.RequestAddress", "/NetworkDriver.Join"]}
    )
    CHECKS["plugin_calls"].prepare(context, spec)  # type: ignore[misc]
    node.logs[process] += (
        "x podnet.docker: /IpamDriver.RequestAddress {}\n"
        "x podnet.docker: /NetworkDriver.CreateEndpoint {}\n"
        "x podnet.docker: /NetworkDriver.Join {}\n"
    )
    result = CHECKS["plugin_calls"].evaluate(context, spec)
    assert result.passed and result.data["calls"][0] == "/IpamDriver.RequestAddress"  # the mark hid CreateNetwork
    assert result.where == f"logs/{name}/{process}.log"
    reversed_order = CHECKS["plugin_calls"].spec.model_validate(
        {"node": name, "sequence": ["/NetworkDriver.Join", "/IpamDriver.RequestAddress"]}
    )
    assert not CHECKS["plugin_calls"].evaluate(context, reversed_order).passed


def conversation() -> list[Any]:
    return [
        Ether() / IP(src=APP2, dst=APP1) / TCP(sport=40000, dport=80, flags="S"),
        Ether() / IP(src=APP1, dst=APP2) / TCP(sport=80, dport=40000, flags="SA"),
        Ether() / IP(src=APP1, dst=APP2) / TCP(sport=80, dport=40000, flags="PA") / Raw(b"HTTP/1.1 200 OK\r\n\r\nhi"),
        Ether() / IP(src=APP2, dst=APP1) / ICMP(type=8),
    ]


def test_check_packets_passes_and_fails(lab: FakeLab, tmp_path: Path) -> None:
    lab.nodes["node1"].packets["lxc1"] = conversation()
    steps = [
        {
            "name": "capture",
            "docker": {"node": "node1", "args": ["ps"]},
            "pcap": [{"name": "veth", "node": "node1", "interface": "lxc1"}],
            "checks": [
                {"packets": {"pcap": "veth", "tcp_syn": {"dst": APP1, "dport": 80}}},
                {"packets": {"pcap": "veth", "http_response": {"status": 200, "src": APP1}}},
                {"packets": {"pcap": "veth", "icmp_reply": {}, "absent": True}},
                {"packets": {"pcap": "veth", "tcp_syn": {"dst": APP2}}},
                {"packets": {"pcap": "veth", "none_from": "10.20.30.0/30"}},
            ],
        }
    ]
    lab.nodes["node1"].on_docker.append(docker_replies({"ps": (0, "", "")}))
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    results = run.steps[0].checks
    assert [c.passed for c in results] == [True, True, True, False, False]
    assert "matching: 0" in results[3].actual
    flows = run.steps[0].flows["veth"]
    assert flows[0].proto == "TCP" and flows[0].packets == 3 and "HTTP 200" in flows[0].note


def test_a_packets_check_without_its_capture_fails_the_step(lab: FakeLab, tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="no step captured it"):
        check("packets", lab, tmp_path, {"pcap": "nope", "tcp_syn": {}})


def test_check_store_connections_passes_and_fails(lab: FakeLab, tmp_path: Path) -> None:
    node_ip = lab.topology.node_ip("node1")
    listed: list[str] = []
    lab.nodes["node1"].on_cmd.append(lambda argv: (0, "".join(listed), "") if argv[:1] == ["ss"] else None)
    spec = {"node": "node1"}
    result = check("store_connections", lab, tmp_path, spec)
    assert not result.passed and result.actual == "no connection"  # none open: at least one is asked for
    listed.append(f"0 0 {node_ip}:40312 10.0.0.5:2379\n")
    assert check("store_connections", lab, tmp_path, spec).passed
    listed.append("0 0 192.0.2.2:40313 10.0.0.5:2379\n")  # one from an uplink's own address
    result = check("store_connections", lab, tmp_path, spec)
    assert not result.passed and result.actual == f"{node_ip}, 192.0.2.2"
    assert check("store_connections", lab, tmp_path, {"node": "node1", "min_count": 0}).passed is False


def test_every_check_kind_has_a_failing_test() -> None:
    """A check kind is real only with a unit test where it fails: one here per kind, by name."""
    names = {name for name in dir(sys.modules[__name__]) if name.startswith("test_check_")}
    missing = [kind for kind in CHECKS if f"test_check_{kind}_passes_and_fails" not in names]
    assert missing == []


# -- steps --------------------------------------------------------------------------------------
def test_docker_and_exec_steps_with_expect(lab: FakeLab, tmp_path: Path) -> None:
    node = lab.nodes["node1"]
    node.on_docker.append(docker_replies({"run": (0, "hello from podnet\n", ""), "exec app1 ls": (2, "", "nope")}))
    node.on_cmd.append(lambda argv: (0, "podnet 1.0\n", "") if argv[:1] == ["podnet"] else None)
    steps = [
        {"name": "run", "docker": {"node": "node1", "args": ["run", "x"]}, "expect": {"stdout_contains": "hello"}},
        {"name": "exec", "exec": {"node": "node1", "cmd": ["podnet", "version"]}, "expect": {"stdout_contains": "1.0"}},
        {
            "name": "fails as expected",
            "exec": {"node": "node1", "container": "app1", "cmd": ["ls"]},
            "expect": {"ok": False},
        },
        {"name": "fails", "exec": {"node": "node1", "container": "app1", "cmd": ["ls"]}},
        {"name": "skipped", "wait": {"seconds": 0.01}},
    ]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert [s.passed for s in run.steps] == [True, True, True, False, True]
    assert run.steps[4].skipped and "exited 2: nope" in run.failure
    assert run.steps[0].command == "node1$ docker run x"


def test_capture_step_sets_variables_for_later_steps(lab: FakeLab, tmp_path: Path, agent: RunningAgent) -> None:
    lab.nodes["node1"].on_docker.append(docker_replies({"inspect": (0, "10.20.30.7\n", "")}))
    steps = [
        {
            "name": "learn",
            "capture": {
                "app1.ip": {"node": "node1", "docker": ["inspect", "app1"]},
                "cidr": {"node": "node1", "agent": "/v1/node", "field": "pod-cidrs.0"},
            },
        },
        {"name": "use", "checks": [{"compare": {"left": "{app1.ip}", "right": "10.20.30.7", "equals": True}}]},
        {"name": "use", "checks": [{"compare": {"left": "{cidr}", "right": "10.20.30.0/26", "equals": True}}]},
    ]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert run.passed, run.failure
    assert run.variables["app1.ip"] == "10.20.30.7" and run.variables["node1.pod_cidr"] == "10.20.30.0/26"


def test_process_step_stops_and_starts(lab: FakeLab, tmp_path: Path) -> None:
    steps = [{"name": "restart", "process": {"node": "node1", "name": "podnet-agent", "action": "restart"}}]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert run.passed and lab.stopped == [("node1", "podnet-agent")] and lab.started == [("node1", "podnet-agent")]


def test_cni_step_saves_the_result_and_judges_errors(lab: FakeLab, tmp_path: Path) -> None:
    lab.fake_pods.fail["DEL"] = (1, {"code": 11, "msg": "agent unreachable"})
    steps = [
        {"name": "add", "cni": {"node": "node1", "command": "ADD", "pod": "p", "count": 2}},
        {"name": "del fails", "cni": {"node": "node1", "command": "DEL", "pod": "p-1", "ok": False, "code": 11}},
        {"name": "wrong code", "cni": {"node": "node1", "command": "DEL", "pod": "p-2", "ok": False, "code": 7}},
    ]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert [s.passed for s in run.steps] == [True, True, False]
    assert run.variables["p-1.ip"] == "10.20.30.1" and run.variables["p-2.veth"] == "lxcp-2"
    assert "CNI error code 11 (expected 7)" in run.failure


def test_within_retries_until_the_checks_hold_and_records_how_long(lab: FakeLab, tmp_path: Path) -> None:
    tables = iter([[], [], ROUTES[:1]])
    lab.nodes["node1"].on_cmd.append(
        lambda argv: (0, json.dumps(next(tables, ROUTES[:1])), "") if "route" in argv else None
    )
    steps = [{"name": "wait", "within": 5, "checks": [{"routes": {"node": "node1", "has": {"dst": "default"}}}]}]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert run.passed and run.steps[0].waited_s is not None and run.steps[0].waited_s >= 0.4
    never = [{"name": "never", "within": 0.5, "checks": [{"routes": {"node": "node1", "lacks": {"dst": "default"}}}]}]
    failed = Runner(lab).run(scenario(never), tmp_path / "out2")
    assert not failed.passed and failed.steps[0].waited_s is None and failed.steps[0].seconds >= 0.5


def test_a_check_that_cannot_be_evaluated_fails_and_is_retried(lab: FakeLab, tmp_path: Path) -> None:
    """An agent that does not answer (it may be down in a fault scenario) is a failed check, not a crash."""
    steps = [{"name": "ask", "checks": [{"allocations": {"node": "node1", "endpoints": 0}}]}]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert not run.passed and "unreachable" in run.failure


def test_cleanup_runs_after_a_failure(lab: FakeLab, tmp_path: Path) -> None:
    lab.nodes["node1"].on_docker.append(docker_replies({"network rm": (0, "", ""), "run": (1, "", "boom")}))
    steps = [{"name": "fails", "docker": {"node": "node1", "args": ["run", "x"]}}]
    cleanup = [{"name": "remove", "docker": {"node": "node1", "args": ["network", "rm", "n"]}}]
    run = Runner(lab).run(scenario(steps, cleanup), tmp_path / "out")
    assert not run.passed and run.steps[-1].name == "cleanup: remove" and run.steps[-1].passed


def test_every_step_kind_is_run_by_a_test_here() -> None:
    source = Path(__file__).read_text()
    assert [kind for kind in STEPS if f'"{kind}": {{' not in source] == []


# -- faults -------------------------------------------------------------------------------------
def recorder(node: Any, prefix: str) -> list[list[str]]:
    """Answer every command starting with `prefix` with success, and record it."""
    seen: list[list[str]] = []

    def handler(argv: list[str]) -> tuple[int, str, str] | None:
        if argv[:1] == [prefix]:
            seen.append(argv)
            return 0, "", ""
        return None

    node.on_cmd.append(handler)
    return seen


def test_fault_process_kills_and_restore_starts_it_again(lab: FakeLab, tmp_path: Path) -> None:
    steps = [
        {"name": "kill", "fault": {"id": "agent", "process": {"node": "node1", "name": "podnet-agent"}}},
        {"name": "dead", "checks": [{"compare": {"left": "x", "right": "x", "equals": True}}]},
        {"name": "back", "restore": {"fault": "agent"}},
    ]
    runner = Runner(lab)
    run = runner.run(scenario(steps[:2]), tmp_path / "a")
    assert lab.started == [("node1", "podnet-agent")], "not restored automatically at the end"
    assert run.steps[-1].name == "cleanup: restore fault agent (automatic)" and run.steps[-1].passed
    lab.started.clear()
    run = runner.run(scenario(steps), tmp_path / "b")
    assert run.passed and lab.started == [("node1", "podnet-agent")]  # once: by the restore step, not again
    paused = runner.run(
        scenario([{"name": "pause", "fault": {"process": {"node": "ctrl", "name": "etcd", "signal": "STOP"}}}]),
        tmp_path / "c",
    )
    assert paused.passed and "SIGCONT etcd on ctrl" in paused.steps[0].stdout


def test_fault_link_bgp_loss_bandwidth_run_their_commands_and_undo_them(lab: FakeLab, tmp_path: Path) -> None:
    ip = recorder(lab.nodes["node2"], "ip")
    iptables = recorder(lab.nodes["node1"], "iptables")
    tc = recorder(lab.nodes["node1"], "tc")
    birdc = recorder(lab.tor, "birdc")
    steps = [
        {"name": "a", "fault": {"link": {"node": "node2", "interface": "uplink"}}},
        {"name": "b", "fault": {"bgp": {"peer": "node2"}}},
        {"name": "c", "fault": {"loss": {"node": "node1", "interface": "uplink", "percent": 30}}},
        {"name": "d", "fault": {"bandwidth": {"node": "node1", "interface": "uplink", "rate": "1mbit"}}},
    ]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert run.passed, run.failure
    links = [argv for argv in ip if argv[1:3] == ["link", "set"]]  # (the state dump reads addresses too)
    assert links == [["ip", "link", "set", "dev", "uplink", "down"], ["ip", "link", "set", "dev", "uplink", "up"]]
    assert birdc == [["birdc", "disable", "node2"], ["birdc", "enable", "node2"]]
    inserted = [r for r in iptables if "-I" in r]
    deleted = [r for r in iptables if "-D" in r]
    assert len(inserted) == 2 and len(deleted) == 2 and "0.3000" in inserted[0]
    assert [r[r.index("-I") + 1 :] for r in inserted] == [r[r.index("-D") + 1 :] for r in deleted]
    assert tc[0][:3] == ["tc", "qdisc", "replace"] and tc[-1][:3] == ["tc", "qdisc", "del"]
    # restored newest first
    restored = [s.name for s in run.steps if s.name.startswith("cleanup: restore")]
    assert restored == [f"cleanup: restore fault {k} (automatic)" for k in ("bandwidth", "loss", "bgp", "link")]


def test_fault_bgp_to_a_node_without_a_session_fails(lab: FakeLab, tmp_path: Path) -> None:
    run = Runner(lab).run(scenario([{"name": "x", "fault": {"bgp": {"peer": "ctrl"}}}]), tmp_path / "out")
    assert not run.passed and "has no BGP session to 'ctrl'" in run.failure


def test_fault_store_stops_etcd_or_locks_sqlite(lab: FakeLab, tmp_path: Path) -> None:
    run = Runner(lab).run(scenario([{"name": "x", "fault": {"store": {}}}]), tmp_path / "out")
    assert run.passed and lab.stopped == [("ctrl", "etcd")] and lab.started == [("ctrl", "etcd")]
    import sqlite3

    db = tmp_path / "cluster.db"
    sqlite3.connect(db).execute("CREATE TABLE kv (k TEXT)")
    type(lab).store_url = property(lambda self: f"sqlite://{db}")  # type: ignore[method-assign,assignment]
    try:
        steps = [
            {"name": "lock", "fault": {"id": "db", "store": {}}},
            {"name": "a writer waits", "capture": {"w": {"node": "node1", "exec": ["write"]}}},
        ]

        def write(argv: list[str]) -> tuple[int, str, str] | None:
            if argv != ["write"]:
                return None
            try:
                sqlite3.connect(db, timeout=0.2).execute("INSERT INTO kv VALUES ('x')")
            except sqlite3.OperationalError as err:
                return 0, str(err), ""
            return 0, "written", ""

        lab.nodes["node1"].on_cmd.append(write)
        run = Runner(lab).run(scenario(steps), tmp_path / "out2")
        assert run.passed and run.variables["w"] == "database is locked"
        con = sqlite3.connect(db, timeout=0.2)
        con.execute("INSERT INTO kv VALUES ('y')")  # released at the end
        con.commit()
    finally:
        del type(lab).store_url


def test_fault_reboot_needs_the_capability_and_boots_again(lab: FakeLab, tmp_path: Path) -> None:
    run = Runner(lab).run(scenario([{"name": "x", "fault": {"reboot": {"node": "node2"}}}]), tmp_path / "out")
    assert run.passed and lab.started[0] == ("node2", "power-off") and lab.started[-1] == ("node2", "boot")
    assert scenario([{"name": "x", "fault": {"reboot": {"node": "node2"}}}]).needs() == {"reboot"}


def test_restore_names_an_applied_fault(lab: FakeLab, tmp_path: Path) -> None:
    run = Runner(lab).run(scenario([{"name": "r", "restore": {"fault": "nope"}}]), tmp_path / "out")
    assert not run.passed and "no fault 'nope' is applied (applied: none)" in run.failure


def test_a_failing_step_still_restores_every_fault(lab: FakeLab, tmp_path: Path) -> None:
    steps = [
        {"name": "kill", "fault": {"process": {"node": "node2", "name": "podnet-docker"}}},
        {"name": "fails", "checks": [{"compare": {"left": "1", "right": "2", "equals": True}}]},
        {"name": "never", "wait": {"seconds": 0.01}},
    ]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert not run.passed and run.steps[2].skipped
    assert lab.nodes["node2"].alive("podnet-docker") and run.steps[-1].passed


@pytest.mark.parametrize("kind", ["fault", "process"])
def test_podnet_docker_on_a_node_whose_agent_serves_the_plugin_is_a_clear_error(
    lab: FakeLab, tmp_path: Path, kind: str
) -> None:
    """node1's agent serves the plugin (docker_plugin: agent): there is no podnet-docker to kill or stop."""
    target = {"node": "node1", "name": "podnet-docker"}
    step = {"process": target} if kind == "fault" else {**target, "action": "restart"}
    run = Runner(lab).run(scenario([{"name": "kill", kind: step}]), tmp_path / "out")
    assert not run.passed
    assert "node1 runs no podnet-docker: its podnet-agent serves the libnetwork plugin" in run.failure
    assert lab.nodes["node1"].alive("podnet-agent")


def test_every_fault_kind_is_tested_here() -> None:
    from lab.scenario.faults import FAULTS

    source = Path(__file__).read_text()
    assert [kind for kind in FAULTS if f'"{kind}": {{' not in source] == []


def test_connections_open_flows_stopped_at_the_end(lab: FakeLab, tmp_path: Path) -> None:
    node = lab.nodes["node1"]
    node.on_docker.append(
        docker_replies({"inspect -f {{.State.Pid}}": (0, "4242\n", ""), "inspect": (0, "10.20.30.9\n", "")})
    )
    started: list[list[str]] = []
    node.on_cmd.append(
        lambda argv: (started.append(argv), (0, f"{900 + len(started)}\n", ""))[1] if argv[:1] == ["sh"] else None
    )
    flow = {"from": {"node": "node1", "container": "app2"}, "to": {"node": "node1", "container": "app1"}}
    run = Runner(lab).run(scenario([{"name": "open", "connections": {"stream": flow}}]), tmp_path / "out")
    assert run.passed, run.failure
    assert "--net=/proc/4242/ns/net" in started[0][2] and "receive tcp 9000" in started[0][2]
    assert "send tcp 10.20.30.9 9000 0.01" in started[1][2]
    # at the end each probe is stopped and its stats file removed (nothing left in /tmp)
    stops = sorted(argv[2] for argv in started[2:])
    assert len(stops) == 2 and all(stop.startswith("kill 90") and "kill -9 90" in stop for stop in stops), stops
    run_id = lab.run_id
    assert (
        f"rm -f /tmp/pn-probe-{run_id}-stream-receiver.json /tmp/pn-probe-{run_id}-stream-receiver.json.tmp" in stops[0]
    )
    assert f"rm -f /tmp/pn-probe-{run_id}-stream-sender.json" in stops[1]


def test_check_connection_passes_and_fails(lab: FakeLab, tmp_path: Path) -> None:
    stats = {"count": 300, "gaps": 0, "max_silence_ms": 40.0, "silent_now_ms": 5.0, "reset": False, "closed": False}
    answers: dict[str, Any] = {"stats": stats}
    lab.nodes["node1"].on_cmd.append(
        lambda argv: (0, json.dumps(answers["stats"]), "") if argv[:1] == ["cat"] else None
    )
    assert check("connection", lab, tmp_path, {"name": "stream", "node": "node1"}).passed
    answers["stats"] = {**stats, "max_silence_ms": 900.0}
    slow = check("connection", lab, tmp_path, {"name": "stream", "node": "node1"})
    assert not slow.passed and "silent for 900 ms" in slow.actual
    assert check(
        "connection", lab, tmp_path, {"name": "stream", "node": "node1", "max_silence_ms": {"fake": 1000}}
    ).passed
    answers["stats"] = {**stats, "silent_now_ms": 4000.0}
    stopped = check("connection", lab, tmp_path, {"name": "stream", "node": "node1"})
    assert not stopped.passed and "nothing for the last 4000 ms" in stopped.actual
    answers["stats"] = {**stats, "reset": True, "gaps": 3}
    broken = check("connection", lab, tmp_path, {"name": "stream", "node": "node1"})
    assert not broken.passed and "reset" in broken.actual and "3 sequence number(s) missing" in broken.actual


def test_check_endpoints_passes_and_fails(lab: FakeLab, tmp_path: Path, agent: RunningAgent) -> None:
    ip = agent.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    created = agent.client.endpoint_create(
        "ep1",
        {"addressing": {"ipv4": ip}, "docker-endpoint-id": "ep1", "container-name": "app1", "labels": ["id=app1"]},
    )
    veth = created["networking"]["interface-name"]
    node = lab.nodes["node1"]
    containers = [
        {"Name": "/app1", "NetworkSettings": {"Networks": {"podnet-net": {"NetworkID": "net1", "EndpointID": "ep1"}}}}
    ]
    node.on_docker.append(lambda args: (0, json.dumps(containers), "") if args[:1] == ["inspect"] else None)
    node.on_docker.append(docker_replies({"network ls": (0, "net1\n", ""), "ps -q": (0, "c1\n", "")}))
    links = {"text": f"1: lo: <LOOPBACK>\n5: {veth}@if4: <UP>\n"}
    node.on_cmd.append(lambda argv: (0, links["text"], "") if argv[:2] == ["ip", "-o"] else None)
    assert check("endpoints", lab, tmp_path, {"node": "node1", "ready": True, "count": 1}).passed
    links["text"] += "9: lxcdeadbeef@if8: <UP>\n"
    leaked = check("endpoints", lab, tmp_path, {"node": "node1"})
    assert not leaked.passed and "veths no endpoint owns: lxcdeadbeef" in leaked.actual
    containers.append(
        {"Name": "/app2", "NetworkSettings": {"Networks": {"p": {"NetworkID": "net1", "EndpointID": "ep2"}}}}
    )
    missing = check("endpoints", lab, tmp_path, {"node": "node1"})
    assert "containers without an endpoint: app2" in missing.actual
    agent.client.endpoint_patch("ep1", {"labels": []})
    assert "identity" in check("endpoints", lab, tmp_path, {"node": "node1", "ready": True}).actual


def test_check_agent_passes_and_fails(lab: FakeLab, tmp_path: Path, agent: RunningAgent) -> None:
    spec = {"node": "node1", "path": "/v1/node", "field": "pod-cidrs.0"}
    assert check("agent", lab, tmp_path, {**spec, "equals": "10.20.30.0/26"}).passed
    wrong = check("agent", lab, tmp_path, {**spec, "equals": "10.99.0.0/26"})
    assert not wrong.passed and wrong.actual == "10.20.30.0/26"
    assert check(
        "agent", lab, tmp_path, {"node": "node1", "path": "/v1/healthz", "field": "state", "contains": "o"}
    ).passed
    missing = check("agent", lab, tmp_path, {"node": "node1", "path": "/v1/node", "field": "nope", "equals": "x"})
    assert not missing.passed and missing.actual == "(no field nope)"


# -- fabrics (spine-leaf) -------------------------------------------------------------------------
ECMP_ROUTES = [
    {
        "dst": "50.60.70.0/26",
        "protocol": 12,
        "nexthops": [
            {"gateway": "192.168.50.73", "dev": "to-spine1", "flags": []},
            {"gateway": "192.168.50.77", "dev": "to-spine2", "flags": []},
        ],
    },
    {
        "dst": "50.60.70.64/26",
        "protocol": 12,
        "nexthops": [
            {"gateway": "192.168.50.73", "dev": "to-spine1", "flags": []},
            {"gateway": "192.168.50.77", "dev": "to-spine2", "flags": ["linkdown"]},
        ],
    },
]


def test_check_routes_gateways_names_every_equal_path(lab: FakeLab, tmp_path: Path) -> None:
    lab.tor.on_cmd.append(lambda argv: (0, json.dumps(ECMP_ROUTES), "") if "route" in argv else None)
    both = {"dst": "50.60.70.0/26", "gateways": ["192.168.50.77", "192.168.50.73"], "proto": "bird"}
    result = check("routes", lab, tmp_path, {"node": "tor", "has": both})
    assert result.passed and "nexthops via 192.168.50.73 + 192.168.50.77" in result.actual
    # a path over a link without carrier is not a path; one next hop is not two
    down = {"dst": "50.60.70.64/26", "gateways": ["192.168.50.73", "192.168.50.77"]}
    assert not check("routes", lab, tmp_path, {"node": "tor", "has": down}).passed
    one = {"dst": "50.60.70.64/26", "gateways": ["192.168.50.73"]}
    assert check("routes", lab, tmp_path, {"node": "tor", "has": one}).passed
    assert not check("routes", lab, tmp_path, {"node": "tor", "has": {**both, "gateways": ["192.168.50.73"]}}).passed


def test_check_packets_udp_by_address_or_cidr(lab: FakeLab, tmp_path: Path) -> None:
    lab.nodes["node1"].packets["any"] = [
        Ether() / IP(src="10.20.30.2", dst="50.60.70.3") / UDP(sport=40000, dport=9001) / Raw(b"1\n"),
        Ether() / IP(src="10.20.30.2", dst="50.60.70.3") / UDP(sport=40000, dport=9001) / Raw(b"2\n"),
        *conversation(),
    ]
    steps = [
        {
            "name": "capture",
            "wait": {"seconds": 0.01},
            "pcap": [{"name": "spine", "node": "node1", "interface": "any"}],
            "checks": [
                {"packets": {"pcap": "spine", "udp": {"src": "10.20.30.0/24", "dst": "50.60.70.0/24"}, "min_count": 2}},
                {"packets": {"pcap": "spine", "udp": {"dport": 9001}}},
                {"packets": {"pcap": "spine", "udp": {"src": "50.60.70.0/24"}}},
                {"packets": {"pcap": "spine", "udp": {"dst": "50.60.70.3", "dport": 9002}}},
                {"packets": {"pcap": "spine", "udp": {}, "min_count": 3}},
            ],
        }
    ]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert [c.passed for c in run.steps[0].checks] == [True, True, False, False, False]
    assert "UDP datagram(s) from 10.20.30.0/24 to 50.60.70.0/24" in run.steps[0].checks[0].expected


def test_fault_router_power_off_and_freeze_and_their_undo(tmp_path: Path) -> None:
    lab = fake_lab(tmp_path, "spine-leaf")
    leaf_routes = [
        {"dst": "default", "protocol": "boot", "nexthops": [
            {"gateway": "192.168.50.85", "dev": "to-spine1"}, {"gateway": "192.168.50.89", "dev": "to-spine2"}]},
        {"dst": "192.168.50.84/30", "dev": "to-spine1", "protocol": "kernel"},
        {"dst": "10.20.30.0/26", "gateway": "192.168.50.85", "dev": "to-spine1", "protocol": "bird"},
    ]  # fmt: skip
    lab.routers["leaf3"].on_cmd.append(
        lambda argv: (0, json.dumps(leaf_routes), "") if argv[:3] == ["ip", "-j", "route"] else None
    )
    ip = recorder(lab.routers["leaf3"], "ip")
    iptables = recorder(lab.routers["spine1"], "iptables")
    steps = [
        {"name": "leaf3 off", "fault": {"router": {"node": "leaf3"}}},
        {"name": "spine1 hangs", "fault": {"id": "hang", "router": {"node": "spine1", "mode": "freeze"}}},
    ]
    run = Runner(lab).run(scenario(steps), tmp_path / "out")
    assert run.passed, run.failure
    downs = [argv[4] for argv in ip if argv[-1] == "down"]
    ups = [argv[4] for argv in ip if argv[-1] == "up"]
    restore = [
        argv[4] if argv[-1] == "up" else "route" for argv in ip if argv[-1] == "up" or argv[1:3] == ["route", "replace"]
    ]
    # the leaf's default over its spines (the lab's, dropped with the links) is put back; bird's and the kernel's not
    assert [argv for argv in ip if argv[1:3] == ["route", "replace"]] == [
        ["ip", "route", "replace", "default",
         "nexthop", "via", "192.168.50.85", "dev", "to-spine1", "nexthop", "via", "192.168.50.89", "dev", "to-spine2"]
    ]  # fmt: skip
    # leaf3: node5-node8 below it (to-node5 …), spine1 and spine2 above it
    assert downs == ["to-node5", "to-node6", "to-node7", "to-node8", "to-spine1", "to-spine2"]
    # back on: up towards the spines, the default put back, and only then the links the nodes send over
    assert restore == ["to-spine1", "to-spine2", "route", "to-node5", "to-node6", "to-node7", "to-node8"]
    assert sorted(ups) == sorted(downs)
    inserted = [r[r.index("-I") + 1 :] for r in iptables if "-I" in r]
    deleted = [r[r.index("-D") + 1 :] for r in iptables if "-D" in r]
    assert [r[0] for r in inserted] == ["PREROUTING", "OUTPUT"] and inserted == deleted
    assert all(r[:4] == ["iptables", "-w", "-t", "raw"] for r in iptables)
    bgp = Runner(lab).run(scenario([{"name": "x", "fault": {"bgp": {"peer": "node1"}}}]), tmp_path / "o3")
    assert not bgp.passed and "a fabric has no single ToR" in bgp.failure
    nope = Runner(lab).run(scenario([{"name": "x", "fault": {"router": {"node": "node1"}}}]), tmp_path / "o2")
    assert not nope.passed and "'node1' is not a router (routers: spine1, spine2, leaf1, leaf2" in nope.failure


def test_connections_between_cni_pods(tmp_path: Path) -> None:
    lab = fake_lab(tmp_path, "spine-leaf")
    started: list[tuple[str, list[str]]] = []
    for name in ("node1", "node5"):
        node = lab.nodes[name]
        node.on_cmd.append(
            lambda argv, n=name: (
                (started.append((n, argv)), (0, f"{900 + len(started)}\n", ""))[1] if argv[:1] == ["sh"] else None
            )
        )
        recorder(node, "kill")
    flow = {"proto": "udp", "from": {"node": "node1", "pod": "a1"}, "to": {"node": "node5", "pod": "b1"}, "port": 9001}
    steps = [
        {"name": "a1", "cni": {"node": "node1", "command": "ADD", "pod": "a1"}},
        {"name": "b1", "cni": {"node": "node5", "command": "ADD", "pod": "b1"}},
        {"name": "open", "connections": {"f1": flow}},
    ]
    made = scenario(steps)
    assert made.needs() == {"host-cni-runtime"}
    run = Runner(lab).run(made, tmp_path / "out")
    assert run.passed, run.failure
    (where_r, receiver), (where_s, sender) = started[:2]  # then the two stops
    assert where_r == "node5" and "--net=/run/netns/fake-node5-b1" in receiver[2] and "receive udp 9001" in receiver[2]
    assert where_s == "node1" and "--net=/run/netns/fake-node1-a1" in sender[2]
    assert f"send udp {run.variables['b1.ip']} 9001" in sender[2]
    no_pod = Runner(lab).run(scenario([{"name": "open", "connections": {"f1": flow}}]), tmp_path / "o2")
    assert not no_pod.passed and "no pod 'b1' on node5: a cni step makes it first" in no_pod.failure
    with pytest.raises(ValueError, match="give container or pod"):
        scenario(
            [{"name": "x", "connections": {"f": {"from": {"node": "node1"}, "to": {"node": "node5", "pod": "b"}}}}]
        )
