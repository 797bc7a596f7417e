"""The eBPF datapath on a real kernel: load, attach, pins, restart, policy, monitor, verifier errors.

One node namespace runs the agent (datapath bpf); pods are network namespaces
added with the podnet CNI plugin, labelled through `args.cni.labels`. What the
agent says is checked against the kernel itself with bpftool and tc.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from lab.backends.base import wait_for
from lab.backends.netns import cniexec
from lab.backends.netns.node import NetnsNode
from podnet.api.client import AgentClient, AgentError
from podnet.datapath.bpf import compile_object
from podnet.datapath.bpf.loader import BpfLoadError, BpfObject
from tests.integration.nodes import bare_node, in_pod, pod_netns

pytestmark = pytest.mark.root

POD_CIDR = "10.57.0.0/28"
HERE = Path(__file__).resolve().parent
CURL = ("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2")


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    with bare_node("bpf") as n:
        n.start_agent(sys.executable, "--pod-cidr", POD_CIDR, "--datapath", "bpf")
        yield n


def agent(node: NetnsNode) -> AgentClient:
    return AgentClient(str(node.agent_sock))


class Pod:
    def __init__(self, node: NetnsNode, netns: str, name: str, result: dict[str, Any]):
        self.node, self.netns, self.name = node, netns, name
        self.ip = result["ips"][0]["address"].split("/")[0]
        self.host_if = result["interfaces"][0]["name"]

    def sh(self, *argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={self.netns}", *argv], capture_output=True, text=True, check=check, timeout=timeout
        )


@pytest.fixture
def pods(node: NetnsNode) -> Iterator[dict[str, Pod]]:
    """app1 (serving HTTP on :80 and :8080), app2 and app3, labelled id=<name>."""
    made: dict[str, Pod] = {}
    with ExitStack() as stack:
        servers: list[subprocess.Popen[bytes]] = []
        for name in ("app1", "app2", "app3"):
            netns = stack.enter_context(pod_netns(node))
            conf = {
                "cniVersion": "1.1.0",
                "name": "podnet",
                "type": "podnet",
                "agentSocket": str(node.agent_sock),
                "args": {"cni": {"labels": [{"key": "id", "value": name}]}},
            }
            argv = [sys.executable, "-m", "podnet.cmd.cni"]
            status, result, _ = cniexec.exec_cni(node, argv, "ADD", conf, netns, f"{name}-{netns[-4:]}", pod=name)
            assert status == 0, result
            stack.callback(cniexec.exec_cni, node, argv, "DEL", conf, netns, f"{name}-{netns[-4:]}", pod=name)
            made[name] = Pod(node, netns, name, result)
        www = node.root / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text("podnet\n")
        for port in ("80", "8080"):
            server = subprocess.Popen(
                ["nsenter", f"--net={made['app1'].netns}", "busybox", "httpd", "-f", "-p", port, "-h", str(www)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers.append(server)
        stack.callback(lambda: [s.kill() for s in servers])
        for port in ("80", "8080"):
            wait_for(lambda p=port: f":{p} " in made["app1"].sh("ss", "-ltn").stdout, 5, f"httpd on :{port}")
        yield made
        agent(node).request("DELETE", "/v1/policy")


def http(pod: Pod, target: str, port: int = 80) -> bool:
    """Did GET http://target:port/ answer 200 within 2 s? (busybox wget -T crashes: curl)"""
    proc = pod.sh(*CURL, f"http://{target}:{port}/", check=False)
    return proc.stdout == "200"


def bpf_maps(node: NetnsNode) -> dict[str, Any]:
    result: dict[str, Any] = agent(node).request("GET", "/v1/bpf")
    return result


def counters(node: NetnsNode, ifname: str) -> dict[str, Any]:
    return next(c for c in bpf_maps(node)["counters"] if c["interface-name"] == ifname)


def bpftool(*argv: str) -> Any:
    out = subprocess.run(["bpftool", "-j", *argv], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_programs_attached_maps_pinned_no_per_pod_routes(node: NetnsNode, pods: dict[str, Pod]) -> None:
    app1 = pods["app1"]
    for direction, program in (("ingress", "from_container"), ("egress", "to_container")):
        out = node.cmd("tc", "filter", "show", "dev", app1.host_if, direction).stdout
        assert f"{program}" in out and "direct-action" in out, out
    assert "from_host" in node.cmd("tc", "filter", "show", "dev", "podnet_host", "egress").stdout
    pins = {p.name for p in node.bpf_pin_dir.iterdir()}
    assert {"pn_endpoints", "pn_policy", "pn_counters", "pn_events", "pn_ipcache", "pn_config"} <= pins
    # the kernel's own view of the endpoints map: one entry per pod
    dump = bpftool("map", "dump", "pinned", str(node.bpf_pin_dir / "pn_endpoints"))
    assert len(dump) == 3
    routes = node.cmd("ip", "route").stdout
    assert routes.strip() == f"{POD_CIDR} dev podnet_host proto 200 scope link", routes
    entries = {e["ip"]: e for e in bpf_maps(node)["endpoints"]}
    assert entries[app1.ip]["interface-name"] == app1.host_if and not entries[app1.ip]["policy-enforced"]
    ep = next(
        e for e in agent(node).request("GET", "/v1/endpoint") if e["networking"]["interface-name"] == app1.host_if
    )
    assert entries[app1.ip]["identity"] == ep["identity"] >= 256 and ep["labels"][0] == "K8S_POD_NAME=app1"


def test_same_node_traffic_is_redirected_and_counted(node: NetnsNode, pods: dict[str, Pod]) -> None:
    app1, app2 = pods["app1"], pods["app2"]
    before1, before2 = counters(node, app1.host_if), counters(node, app2.host_if)
    forward_before = node.cmd("iptables", "-w", "-nvxL", "FORWARD").stdout
    ping = app2.sh("busybox", "ping", "-c", "5", "-i", "0.2", "-s", "100", app1.ip)
    assert "5 packets received" in ping.stdout
    after1, after2 = counters(node, app1.host_if), counters(node, app2.host_if)
    # 5 echo requests of 128 bytes IP (+14 Ethernet) each way, nothing else IPv4
    assert after2["from-container-packets"] - before2["from-container-packets"] == 5
    assert after1["to-container-packets"] - before1["to-container-packets"] == 5
    assert after1["to-container-bytes"] - before1["to-container-bytes"] == 5 * 142
    assert after1["from-container-packets"] - before1["from-container-packets"] == 5
    assert after2["to-container-packets"] - before2["to-container-packets"] == 5

    # bpf_redirect_peer: the node's netfilter never saw the packets
    def packets(table: str) -> list[str]:
        return [line.split()[0] for line in table.splitlines()[2:]]

    assert packets(node.cmd("iptables", "-w", "-nvxL", "FORWARD").stdout) == packets(forward_before)
    assert "ttl=63" in ping.stdout  # one routed hop, as with the kernel


def test_policy_l4_allows_app2_to_app1_port_80_only(node: NetnsNode, pods: dict[str, Pod]) -> None:
    app1, app2, app3 = pods["app1"], pods["app2"], pods["app3"]
    assert http(app3, app1.ip) and http(app2, app1.ip, 8080)  # default allow
    rule = {
        "name": "app1-from-app2",
        "endpointSelector": {"matchLabels": {"id": "app1"}},
        "ingress": [
            {
                "fromEndpoints": [{"matchLabels": {"id": "app2"}}],
                "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}],
            }
        ],
    }
    state = agent(node).request("PUT", "/v1/policy", body=[rule])
    assert state["enforced"] and "1 endpoint(s) of this node under policy" in state["message"]
    drops_before = counters(node, app1.host_if)["drops"].get("policy denied", 0)
    events: list[dict[str, Any]] = []
    watcher = threading.Thread(
        target=lambda: events.extend(agent(node).stream("/v1/monitor", query={"type": "drop"}, timeout=6)),
        daemon=True,
    )
    watcher.start()
    time.sleep(0.3)
    assert http(app2, app1.ip, 80)
    assert not http(app3, app1.ip, 80)
    assert not http(app2, app1.ip, 8080)
    assert app2.sh("busybox", "ping", "-c", "1", "-W", "1", app1.ip, check=False).returncode != 0
    watcher.join(8)
    assert counters(node, app1.host_if)["drops"]["policy denied"] > drops_before
    denied = [e for e in events if e["saddr"] == app3.ip and e["dport"] == 80]
    assert denied, events
    assert denied[0]["reason"] == "policy denied" and denied[0]["protocol"] == "TCP"
    assert "id=app3" in denied[0]["src-labels"] and "id=app1" in denied[0]["dst-labels"]
    policy = bpf_maps(node)["policy"]
    assert [(p["protocol"], p["port"]) for p in policy] == [("TCP", 80)] and policy[0]["packets"] > 0
    # the node (host identity) may still reach app1
    assert node.cmd(*CURL, f"http://{app1.ip}:8080/", check=False).stdout == "200"
    agent(node).request("DELETE", "/v1/policy/app1-from-app2")
    assert http(app3, app1.ip, 80) and http(app2, app1.ip, 8080)
    assert bpf_maps(node)["policy"] == []


def test_bad_policy_is_refused_with_the_reason(node: NetnsNode) -> None:
    with pytest.raises(AgentError) as err:
        agent(node).request("PUT", "/v1/policy", body={"name": "Bad Name", "endpointSelector": {}})
    assert err.value.status == 400 and "policy name 'Bad Name'" in str(err.value)
    with pytest.raises(AgentError) as err:
        agent(node).request(
            "PUT",
            "/v1/policy",
            body={"name": "p", "endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "http"}]}]}]},
        )
    assert "named ports are not supported" in str(err.value)
    assert agent(node).request("GET", "/v1/policy")["rules"] == []


def test_agent_restart_reuses_pins_and_traffic_never_stops(node: NetnsNode, pods: dict[str, Pod]) -> None:
    app1, app2 = pods["app1"], pods["app2"]
    map_id = bpftool("map", "show", "pinned", str(node.bpf_pin_dir / "pn_endpoints"))["id"]
    prog_before = node.cmd("tc", "filter", "show", "dev", app1.host_if, "ingress").stdout
    pinger = subprocess.Popen(
        ["nsenter", f"--net={app2.netns}", "busybox", "ping", "-c", "60", "-i", "0.05", app1.ip],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    node.stop("podnet-agent")
    node.start_agent(sys.executable)
    out, _ = pinger.communicate(timeout=30)
    assert "60 packets received" in out, out
    assert bpftool("map", "show", "pinned", str(node.bpf_pin_dir / "pn_endpoints"))["id"] == map_id
    prog_after = node.cmd("tc", "filter", "show", "dev", app1.host_if, "ingress").stdout
    assert prog_after != prog_before and "from_container" in prog_after  # new program, replaced in place
    assert len(bpf_maps(node)["endpoints"]) == 3
    assert http(app2, app1.ip)
    saved = node.cmd("iptables-save", "-t", "filter").stdout  # the restarted agent added no second copy
    for rule in (
        "-A FORWARD -j PODNET-FORWARD",
        "-A PODNET-FORWARD -i lxc+ -j ACCEPT",
        "-A PODNET-FORWARD -o podnet_host -j ACCEPT",
    ):
        assert saved.count(rule) == 1, saved


def test_cni_del_removes_the_map_entry(node: NetnsNode) -> None:
    with pod_netns(node) as netns:
        conf = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "agentSocket": str(node.agent_sock)}
        argv = [sys.executable, "-m", "podnet.cmd.cni"]
        status, result, _ = cniexec.exec_cni(node, argv, "ADD", conf, netns, "gone1")
        assert status == 0
        ip = result["ips"][0]["address"].split("/")[0]
        assert ip in {e["ip"] for e in bpf_maps(node)["endpoints"]}
        assert cniexec.exec_cni(node, argv, "DEL", conf, netns, "gone1")[0] == 0
        assert ip not in {e["ip"] for e in bpf_maps(node)["endpoints"]}
        assert in_pod(netns, "ip", "-o", "link").count("eth0") == 0


def test_verifier_log_reaches_the_user(tmp_path: Path) -> None:
    bad = tmp_path / "bad_access.o"
    compile_object(HERE / "bpf" / "bad_access.c", bad)
    with pytest.raises(BpfLoadError) as err:
        BpfObject(bad)
    assert str(err.value) == (
        "the kernel refused BPF object bad_access.o (Permission denied); "
        "verifier on from_container: R1 offset is outside of the packet"
    )
    assert "--- verifier log of from_container ---" in err.value.verifier_log


def test_agent_falls_back_to_routes_and_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad_access.o"
    compile_object(HERE / "bpf" / "bad_access.c", bad)
    with bare_node("fallback") as n:
        n.start_agent(sys.executable, "--pod-cidr", "10.58.0.0/28", "--bpf-object", str(bad))
        health = AgentClient(str(n.agent_sock)).healthz()
        assert health["datapath"]["state"] == "degraded"
        message = health["datapath"]["message"]
        assert message.startswith("veth + per-pod /32 routes") and "R1 offset is outside of the packet" in message
        log = (n.logs / "podnet-agent.log").read_text()
        assert "--- verifier log of from_container ---" in log
        with pytest.raises(AgentError) as err:
            AgentClient(str(n.agent_sock)).request("GET", "/v1/bpf")
        assert "runs the routes datapath" in str(err.value)
        with pod_netns(n) as netns:
            conf = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "agentSocket": str(n.agent_sock)}
            status, result, _ = cniexec.exec_cni(n, [sys.executable, "-m", "podnet.cmd.cni"], "ADD", conf, netns, "fb")
            assert status == 0, result
            ip = result["ips"][0]["address"].split("/")[0]
            assert f"{ip} dev lxc" in n.cmd("ip", "route").stdout


def test_python_layouts_match_the_compiled_maps() -> None:
    from podnet.datapath.bpf import object_file
    from podnet.datapath.bpf.maps import EndpointCounters, EndpointInfo, PolicyKey, PolicyValue

    obj = BpfObject(object_file())  # unpinned: a private copy of every map
    try:
        sizes = {name: (obj.map(name).key_size, obj.map(name).value_size) for name in ("pn_endpoints", "pn_policy")}
        assert sizes["pn_endpoints"] == (4, EndpointInfo.FORMAT.size)
        assert sizes["pn_policy"] == (PolicyKey.FORMAT.size, PolicyValue.FORMAT.size)
        assert obj.map("pn_counters").value_size == EndpointCounters.FORMAT.size
    finally:
        obj.close()


def test_an_open_monitor_stream_does_not_hold_up_the_agents_shutdown(node: NetnsNode) -> None:
    """aiohttp does not cancel a streaming handler whose client left; the agent must still stop at once."""
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(node.agent_sock))
    sock.sendall(b"GET /v1/monitor?type=drop HTTP/1.1\r\nHost: podnet\r\n\r\n")
    assert sock.recv(200).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    node.stop("podnet-agent", timeout_s=8)
    took = time.monotonic() - started
    sock.close()
    ended = node.processes()["podnet-agent"]  # the supervisor recorded how it ended
    node.start_agent(sys.executable)
    assert not ended.running and ended.detail == "exited 0", ended
    assert took < 5, f"the agent took {took:.1f}s to stop"


def test_tc_attach_replace_query_detach(node: NetnsNode) -> None:
    """The loader's tc calls, on a scratch veth in the node (libbpf's netlink works in the caller's namespace)."""
    from pyroute2 import IPRoute

    from podnet.datapath.bpf import object_file, tc
    from podnet.datapath.netns import run_in_netns

    node.cmd("ip", "link", "add", "tcprobe0", "type", "veth", "peer", "name", "tcprobe1")
    try:
        index = int(
            node.cmd("ip", "-o", "link", "show", "tcprobe0").stdout.split(":")[0]
        )  # (nsenter: /sys is the host's)
        obj = BpfObject(object_file())
        try:

            def exercise(_ipr: IPRoute) -> tuple[int, int, int | None, bool, bool]:
                first = tc.attach(index, "ingress", obj.program_fd("from_container"))
                again = tc.attach(index, "ingress", obj.program_fd("to_container"))  # replaces in place
                seen = tc.attached(index, "ingress")
                gone = tc.detach(index, "ingress")
                return first, again, seen, gone, tc.detach(index, "ingress")

            first, again, seen, gone, twice = run_in_netns(node.netns_path, exercise)
        finally:
            obj.close()
        assert first != again and seen == again
        assert gone is True and twice is False
        assert "bpf" not in node.cmd("tc", "filter", "show", "dev", "tcprobe0", "ingress").stdout
    finally:
        node.cmd("ip", "link", "del", "tcprobe0", check=False)
