"""The Vagrant backend, end to end (tox -e vagrant): the box, the default lab
as VMs (ToR, control node, node1 with the libnetwork plugin in its agent, node2
with podnet-docker), the smoke scenarios replayed there with the same scenario
files as the netns backend, then `lab down`.

Slow by nature (TCG emulation here): one lab for the whole module.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from rich.console import Console

from lab import paths
from lab.backends import registry
from lab.backends.vagrant import box
from lab.backends.vagrant.clean import lab_vms
from lab.model.topology import load_topology
from lab.scenario.model import load_scenario
from lab.session import LabSession, Run

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TOPOLOGY = "default"  # 4 VMs: what issue 17 times (three-nodes adds a fifth, ~25 % more emulated CPU)
# The docker flow (create, then app2 fetching app1 by name on the eBPF datapath), and faults on VMs:
# the agent killed (its speaker and eBPF programs survive it), the ToR's BGP session to node2
# disabled (node2's pod CIDR withdrawn, a pod on node1 loses app2 on node2 across the ToR, and
# gets it back on the same TCP connection: pod routing over BGP between VMs).
SMOKE = ["docker-network-create", "ebpf-host-routing", "fault-agent-kill", "fault-bgp-peer-down"]


@pytest.fixture(scope="module")
def session() -> Iterator[LabSession]:
    if os.geteuid() != 0:
        pytest.fail("the Vagrant backend needs root (libvirt)")
    if registry.existing_labs() or any(lab_vms()):
        leftovers = f"{registry.existing_labs()}, {lab_vms()}"
        pytest.fail(f"lab leftovers present ({leftovers}): run `lab down` or `lab clean` first")
    run = Run(ARTIFACTS)
    s = LabSession(run, load_topology(TOPOLOGY), "vagrant", console=Console(stderr=True))
    s.up(progress=lambda what: print(f"lab up {s.lab.run_id}: {what}", flush=True))
    lab = s.lab
    print(f"\nlab {lab.run_id} up in {lab.up_seconds:.0f}s:")
    for t in lab.timings:
        print(f"  {t.start:7.1f}s +{t.seconds:7.1f}s  {t.what}")
    try:
        yield s
    finally:
        s.close()
        print(f"\nlab report (vagrant, {TOPOLOGY}): {run.write()}")
        assert lab_vms() == ([], []), f"lab down left VMs or networks behind: {lab_vms()}"


def test_the_box_is_reused_while_its_inputs_are_unchanged() -> None:
    """Built (or found) once, then reused: a second build in the same run builds nothing.
    (Whether a box was left by an earlier run does not matter: the first call makes sure.)"""
    first = box.build(report=lambda _: None)
    second = box.build(report=lambda _: None)
    assert first.path.exists() and second.path == first.path
    assert not second.built, "the box was rebuilt although its inputs did not change"


def test_every_vm_runs_its_services(session: LabSession) -> None:
    """testinfra over the VMs' ssh-config: each VM runs its role's units, with its own kernel."""
    import testinfra

    lab = session.lab
    host_kernel = os.uname().release
    expected = {lab.tor.name: ["bird", "etcd"] if lab.control is None else ["bird"]}
    expected |= {  # the libnetwork plugin in the agent, or podnet-docker (docker_plugin: process)
        name: [
            "docker",
            "podnet-agent",
            *(["podnet-docker"] if lab.topology.spec(name).docker_plugin == "process" else []),
        ]
        for name in lab.workers
    }
    if lab.control is not None:
        expected[lab.control.name] = ["etcd", "podnet-operator"]
    assert {lab.topology.spec(n).docker_plugin for n in lab.workers} == {"agent", "process"}  # both kinds
    for name, units in expected.items():
        host = testinfra.get_host(f"ssh://{name}", ssh_config=str(lab.tor.ssh_config))
        for unit in units:
            assert host.service(unit).is_running, f"{unit} is not running on {name}"
        assert host.check_output("uname -r") != host_kernel, f"{name} shares this machine's kernel"
        if name in lab.nodes:  # podnet's venv: the read-only disk venv.py made, mounted (nothing unpacked)
            label, options = host.check_output("findmnt -n -o LABEL,OPTIONS /opt/podnet").split()[:2]
            assert label == "podnetvenv" and "ro" in options.split(","), f"{name}: /opt/podnet is {label} {options}"
        links = {link.node: link for link in lab.topology.links()}
        if name in links:
            assert f"{links[name].node_ip}" in host.interface("uplink").addresses


def test_lab_ranges_stay_off_this_machine(session: LabSession) -> None:
    """Isolation: no lab range is routed here, the management network forwards nothing, and every
    underlay NIC is one end of a UDP tunnel on this machine's loopback (no bridge, no libvirt network)."""
    lab = session.lab
    ranges = [ipaddress.ip_network(lab.topology.underlay)] + [
        ipaddress.ip_network(c, strict=False) for c in lab.topology.cluster_cidrs
    ]
    routes = json.loads(subprocess.run(["ip", "-j", "route"], capture_output=True, text=True, check=True).stdout)
    for route in routes:
        if route["dst"] != "default":
            dst = ipaddress.ip_network(route["dst"], strict=False)
            assert not any(dst.overlaps(r) for r in ranges), f"this machine routes {dst} (a lab range)"
    domains, networks = lab_vms()
    assert len(networks) == 1  # management only: the underlay links are tunnels
    tunnels = []
    for domain in domains:
        xml = subprocess.run(["virsh", "dumpxml", domain], capture_output=True, text=True, check=True).stdout
        for interface in ElementTree.fromstring(xml).iter("interface"):
            if interface.get("type") == "network":
                continue  # the management NIC
            source, local = interface.find("source"), interface.find("source/local")
            assert interface.get("type") == "udp" and source is not None and local is not None, xml
            assert source.get("address") == local.get("address") == "127.0.0.1", xml
            tunnels.append((int(local.get("port", "0")), int(source.get("port", "0"))))
    # every link's two ends: each listens where the other sends
    assert sorted(tunnels) == sorted((b, a) for a, b in tunnels) and len(tunnels) == 2 * len(lab.topology.nodes)
    for network in networks:
        xml = subprocess.run(["virsh", "net-dumpxml", network], capture_output=True, text=True, check=True).stdout
        assert "<forward" not in xml, f"{network} forwards: {xml}"
        dnsmasq = Path(f"/var/lib/libvirt/dnsmasq/{network}.conf")
        if dnsmasq.exists():  # the management network: DHCP, no router, no upstream DNS
            text = dnsmasq.read_text()
            assert "no-resolv" in text and "dhcp-option=3\n" in text, text


def test_pod_cidrs_follow_topology_order(session: LabSession) -> None:
    """As on the netns backend: the operator serves workers in topology order, although the
    VMs come up in parallel (each worker's agent waits for the control node's registration)."""
    lab = session.lab
    mask = lab.topology.mask_size
    subnets = [
        str(s)
        for c in lab.topology.cluster_cidrs
        for s in ipaddress.ip_network(c, strict=False).subnets(new_prefix=mask)
    ]
    expected = dict(zip(lab.workers, subnets, strict=False))
    assert {name: lab.pod_cidr(name) for name in lab.workers} == expected


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_the_lab_command_works_on_the_vms(session: LabSession) -> None:
    """`lab status [--json]`, `lab exec` (an ssh session as root, podnet on PATH) and `lab logs` on the VM lab."""
    status = lab_cli("status")
    assert status.returncode == 0, status.stderr
    assert "vagrant" in status.stdout and "VM node1" in status.stdout
    assert session.lab.pod_cidr("node1") in status.stdout
    as_json = lab_cli("status", "--json")
    data = json.loads(as_json.stdout)
    assert data["backend"] == "vagrant" and data["run_id"] == session.lab.run_id
    node1 = next(n for n in data["nodes"] if n["name"] == "node1")
    assert node1["role"] == "worker" and node1["pod_cidr"] == session.lab.pod_cidr("node1")
    units = {p["name"]: p for p in node1["processes"]}
    assert units["podnet-agent"]["running"] and units["podnet-agent"]["unit"] == "podnet-agent"
    assert isinstance(units["podnet-agent"]["pid"], int)
    podnet = lab_cli("exec", "node1", "--", "podnet", "status")
    assert podnet.returncode == 0, podnet.stderr
    assert "node1" in podnet.stdout
    logs = lab_cli("logs", "node1", "podnet-agent")
    assert logs.returncode == 0 and "serving the agent API" in logs.stdout, logs.stderr
    unknown = lab_cli("logs", "node1", "sshd")
    assert unknown.returncode == 3 and "no log for process 'sshd'" in unknown.stderr


@pytest.mark.parametrize("name", SMOKE)
def test_scenario(session: LabSession, name: str) -> None:
    scenario = load_scenario(name, paths.scenarios())
    assert not scenario.why_not("vagrant", session.capabilities), scenario.why_not("vagrant", session.capabilities)
    run = session.run(scenario)
    assert run.passed, run.failure
