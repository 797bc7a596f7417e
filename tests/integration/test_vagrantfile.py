"""The root Vagrantfile reads the same topology files as the netns backend and derives the same addresses.

Runs `vagrant validate` (Debian's vagrant + vagrant-libvirt; no VM is started, no root needed)
with LAB_VAGRANT_DUMP=1, which makes the Vagrantfile print its plan as JSON,
and compares that plan with Python's (lab/backends/vagrant/placement.vagrant_plan, from
lab/model/topology.py) for every shipped topology, the one-ToR ones and the fabrics.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab.backends.vagrant import placement
from lab.backends.vagrant.provision import node_files
from lab.model.topology import TOPOLOGIES as TOPOLOGY_DIR
from lab.model.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
ALL_TOPOLOGIES = sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))


def validate(topology: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["vagrant", "validate"],
        cwd=ROOT,
        env={**os.environ, "LAB_TOPOLOGY": topology, "LAB_VAGRANT_DUMP": "1", "VAGRANT_CHECKPOINT_DISABLE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def plan(topology: str) -> dict[str, Any]:
    proc = validate(topology)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Vagrantfile validated successfully" in proc.stdout
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[0])
    return result


@pytest.mark.parametrize("name", ALL_TOPOLOGIES)
def test_vagrantfile_derives_what_the_netns_backend_derives(name: str) -> None:
    """Every VM (routers and nodes, their sizes and URIs) and every link (its ends, addresses, MACs,
    tunnel ports, MTU), the fabrics included (issue 18: "The Vagrantfile reads the same file")."""
    topology = load_topology(name)
    vagrant = plan(name)
    assert vagrant == placement.vagrant_plan(topology)
    # and what the model says, not only what placement.py says
    assert [vm["name"] for vm in vagrant["vms"]] == [r.name for r in topology.routers()] + [
        n.name for n in topology.nodes
    ]
    assert [(lk["upper"], lk["lower"], lk["subnet"], lk["upper_ip"], lk["lower_ip"]) for lk in vagrant["links"]] == [
        (lk.upper, lk.lower, lk.subnet, lk.upper_ip, lk.lower_ip) for lk in topology.links()
    ]
    ports = [lk["tunnel"][end]["local_port"] for lk in vagrant["links"] for end in ("upper", "lower")]
    macs = [lk[f"{end}_mac"] for lk in vagrant["links"] for end in ("upper", "lower")]
    assert len(set(ports)) == len(ports) and len(set(macs)) == len(macs)


def test_spine_leaf_as_vms_every_router_a_vm_and_a_dual_homed_node_two_nics() -> None:
    """The shipped spine-leaf fabric: 2 spines, 4 leaves and 9 nodes are 15 VMs; node1's two uplinks
    (to leaf1 and leaf2) are two NICs; every leaf has a link to every spine; AS-free facts checked
    against the topology file's own numbers (RFC 7938 layout: node uplinks first, then leaf–spine)."""
    vagrant = plan("spine-leaf")
    roles = [(vm["name"], vm["role"]) for vm in vagrant["vms"]]
    assert roles[:6] == [("spine1", "spine"), ("spine2", "spine"), *((f"leaf{i}", "leaf") for i in range(1, 5))]
    assert len(roles) == 15 and roles[-1] == ("ctrl", "control")
    assert {vm["memory_mib"] for vm in vagrant["vms"][:6]} == {512}
    links = vagrant["links"]
    assert len(links) == 8 * 2 + 1 + 4 * 2  # 8 dual-homed workers, the control node, 4 leaves x 2 spines
    node1 = [lk for lk in links if lk["lower"] == "node1"]
    assert [(lk["upper"], lk["upper_ip"], lk["lower_ip"], lk["lower_mac"]) for lk in node1] == [
        ("leaf1", "192.168.50.1", "192.168.50.2", "52:54:00:52:00:00"),
        ("leaf2", "192.168.50.5", "192.168.50.6", "52:54:00:52:00:01"),
    ]
    ctrl = [lk for lk in links if lk["lower"] == "ctrl"]
    assert [(lk["link"], lk["upper"], lk["lower_ip"]) for lk in ctrl] == [(16, "leaf1", "192.168.50.66")]
    up = [(lk["upper"], lk["lower"]) for lk in links[17:]]
    assert up == [(s, f"leaf{i}") for i in range(1, 5) for s in ("spine1", "spine2")]
    assert links[17]["subnet"] == "192.168.50.68/30" and links[17]["tunnel"]["upper"]["local_port"] == 47034


def test_fabric_mini_is_five_vms_and_validates() -> None:
    """The small fabric for VMs (lab/topologies/fabric-mini.yaml): one spine, two leaves, node1
    dual-homed, the control node on leaf1 — five VMs, five links, all on this machine."""
    vagrant = plan("fabric-mini")
    assert [(vm["name"], vm["role"]) for vm in vagrant["vms"]] == [
        ("spine1", "spine"), ("leaf1", "leaf"), ("leaf2", "leaf"), ("node1", "worker"), ("ctrl", "control"),
    ]  # fmt: skip
    assert [(lk["upper"], lk["lower"]) for lk in vagrant["links"]] == [
        ("leaf1", "node1"), ("leaf2", "node1"), ("leaf1", "ctrl"), ("spine1", "leaf1"), ("spine1", "leaf2"),
    ]  # fmt: skip
    assert {lk["tunnel"]["mtu"] for lk in vagrant["links"]} == {1500}
    assert {vm["uri"] for vm in vagrant["vms"]} == {"qemu:///system"}


FABRIC_TWO_HOSTS = """\
name: fabrictwo
loopbacks: 192.168.51.0/24
cluster_cidrs: [10.20.30.0/24]
mask_size: 26
hosts:
  - {name: far, uri: "qemu+ssh://lab@10.0.0.2/system", address: 10.0.0.2}
spines:
  - {name: spine1}
leaves:
  - {name: leaf1}
  - {name: leaf2, host: far}
nodes:
  - {name: node1, uplinks: [leaf1, leaf2]}
  - {name: node2, uplinks: [leaf2], host: far}
  - {name: ctrl, role: control, uplinks: [leaf1]}
"""


def test_a_fabric_across_two_hosts_tunnels_only_the_crossing_links(tmp_path: Path) -> None:
    """A rack on another libvirt host (leaf2 and node2 there): those VMs run on its URI; the links
    that cross (node1's second uplink, leaf2's link to the spine) are tunnels between the hosts'
    addresses with MTU 1458, set on both ends by the staged files; the rest stay on the loopback."""
    path = tmp_path / "fabrictwo.yaml"
    path.write_text(FABRIC_TWO_HOSTS)
    topology = load_topology(str(path))
    proc = validate(str(path), LAB_LOCAL_ADDRESS="10.0.0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vagrant = json.loads(proc.stdout.splitlines()[0])
    assert vagrant == placement.vagrant_plan(topology, local_address="10.0.0.1")
    far = "qemu+ssh://lab@10.0.0.2/system"
    assert {vm["name"]: vm["uri"] for vm in vagrant["vms"] if vm["uri"] == far} == {"leaf2": far, "node2": far}
    crossing = {(lk["upper"], lk["lower"]): lk["tunnel"] for lk in vagrant["links"] if lk["tunnel"]["mtu"] != 1500}
    assert sorted(crossing) == [("leaf2", "node1"), ("spine1", "leaf2")]
    node1 = crossing[("leaf2", "node1")]  # link 1: leaf2 (there) listens on 47002, node1 (here) on 47003
    assert node1 == {
        "upper": {"local_ip": "10.0.0.2", "local_port": 47002, "remote_ip": "10.0.0.1", "remote_port": 47003},
        "lower": {"local_ip": "10.0.0.1", "local_port": 47003, "remote_ip": "10.0.0.2", "remote_port": 47002},
        "mtu": 1458,
    }
    inside = [lk for lk in vagrant["links"] if (lk["upper"], lk["lower"]) not in crossing]
    assert {lk["tunnel"]["upper"]["local_ip"] for lk in inside} == {"127.0.0.1"}  # leaf2–node2 too: one host
    # the provisioner sets 1458 on both ends of each crossing link, and only there
    assert [line.split()[1:] for line in node_files(topology, "node1")["links"].splitlines()] == [
        ["to-leaf1", "52:54:00:52:00:00"],
        ["to-leaf2", "52:54:00:52:00:01", "1458"],
    ]
    assert [line.split()[1:] for line in node_files(topology, "leaf2")["links"].splitlines()] == [
        ["to-node1", "52:54:00:51:00:01", "1458"],
        ["to-node2", "52:54:00:51:00:02"],
        ["to-spine1", "52:54:00:52:00:05", "1458"],
    ]
    refused = validate(str(path))
    assert refused.returncode != 0
    assert "link 1 (leaf2–node1) crosses to another host" in refused.stdout + refused.stderr


FABRIC = "name: x\nloopbacks: 10.9.0.0/24\nspines: [{name: spine1}]\nleaves: [{name: leaf1}, {name: leaf2}]\nnodes:\n"

TWO_HOSTS = """\
name: twohosts
cluster_cidrs: [10.20.30.0/24]
mask_size: 26
hosts:
  - {name: far, uri: "qemu+ssh://lab@10.0.0.2/system", address: 10.0.0.2}
nodes:
  - {name: node1}
  - {name: node2, host: far}
  - {name: ctrl, role: control}
"""


def test_a_two_host_placement_puts_each_vm_on_its_uri_and_tunnels_across(tmp_path: Path) -> None:
    """Issue 18 item 4: a node that names another libvirt host runs there (its URI), its link is a UDP
    tunnel between the two hosts' addresses with the ports Python plans, and the crossing link's MTU
    leaves room for the outer headers — in the Vagrantfile, in Python's plan and in the staged files."""
    path = tmp_path / "twohosts.yaml"
    path.write_text(TWO_HOSTS)
    topology = load_topology(str(path))
    proc = validate(str(path), LAB_LOCAL_ADDRESS="10.0.0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vagrant = json.loads(proc.stdout.splitlines()[0])
    assert [(vm["name"], vm["uri"]) for vm in vagrant["vms"]] == [
        ("tor", "qemu:///system"),
        ("node1", "qemu:///system"),
        ("node2", "qemu+ssh://lab@10.0.0.2/system"),
        ("ctrl", "qemu:///system"),
    ]
    assert vagrant == placement.vagrant_plan(topology, local_address="10.0.0.1")
    links = vagrant["links"]
    node2 = links[1]["tunnel"]
    assert links[1]["lower"] == "node2"
    assert node2["lower"] == {
        "local_ip": "10.0.0.2",
        "local_port": 47003,
        "remote_ip": "10.0.0.1",
        "remote_port": 47002,
    }
    assert node2["mtu"] == 1458 and links[0]["tunnel"]["upper"]["local_ip"] == "127.0.0.1"
    # the provisioner sets that MTU on both ends of the crossing link, and only there
    assert node_files(topology, "node2")["links"].split()[3:] == ["1458"]
    assert node_files(topology, "node1")["links"].split()[3:] == []
    tor_links = node_files(topology, "tor")["links"].splitlines()
    assert [len(line.split()) for line in tor_links] == [3, 4, 3]
    # without this machine's address the crossing link cannot be planned: refused, naming the link
    refused = validate(str(path))
    assert refused.returncode != 0
    assert "link 1 (tor–node2) crosses to another host" in refused.stdout + refused.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(TWO_HOSTS.replace("host: far", "host: near"))
    proc = validate(str(unknown), LAB_LOCAL_ADDRESS="10.0.0.1")
    assert proc.returncode != 0 and 'nodes.1.host: no host "near" (hosts: far)' in proc.stdout + proc.stderr


def test_the_labs_own_topology_file_is_planned_like_the_shipped_one(tmp_path: Path) -> None:
    """`lab up --backend vagrant` hands the Vagrantfile the topology as the model dumps it (with
    `spines: []` and `leaves: []`): that is one ToR, not a fabric."""
    dumped = tmp_path / "topology.yaml"
    dumped.write_text(json.dumps(load_topology("three-nodes").model_dump(), indent=2))
    assert plan(str(dumped)) == plan("three-nodes")


def test_the_labs_own_fabric_file_is_planned_like_the_shipped_one(tmp_path: Path) -> None:
    """The same for a fabric: the model's dump carries `tor: {name: tor}` beside the spines and
    leaves, which is no router of a fabric (no `tor` VM)."""
    dumped = tmp_path / "topology.yaml"
    dumped.write_text(json.dumps(load_topology("fabric-mini").model_dump(), indent=2))
    assert plan(str(dumped)) == plan("fabric-mini")


def test_a_path_works_as_well_as_a_name(tmp_path: Path) -> None:
    custom = tmp_path / "two.yaml"
    custom.write_text(
        "name: two\nunderlay: 10.99.0.0/28\ncluster_cidrs: [10.20.0.0/16]\nmask_size: 24\n"
        "nodes:\n  - {name: a, cpus: 2, memory_mib: 1024}\n  - {name: b}\n"
    )
    vagrant = plan(str(custom))
    assert [(vm["name"], vm["cpus"]) for vm in vagrant["vms"]] == [("tor", 1), ("a", 2), ("b", 1)]
    assert [(lk["lower"], lk["lower_ip"], lk["upper_ip"]) for lk in vagrant["links"]] == [
        ("a", "10.99.0.2", "10.99.0.1"),
        ("b", "10.99.0.6", "10.99.0.5"),
    ]


def test_a_31_link_prefix_gives_the_netmask_and_addresses_the_model_gives(tmp_path: Path) -> None:
    custom = tmp_path / "p31.yaml"
    custom.write_text(
        "name: p31\nunderlay: 10.99.0.0/28\nlink_prefix: 31\ncluster_cidrs: [10.20.0.0/16]\nmask_size: 24\n"
        "nodes:\n  - {name: a}\n  - {name: b}\n"
    )
    vagrant = plan(str(custom))
    assert vagrant == placement.vagrant_plan(load_topology(str(custom)))
    assert [(lk["subnet"], lk["upper_ip"], lk["lower_ip"]) for lk in vagrant["links"]] == [
        ("10.99.0.0/31", "10.99.0.0", "10.99.0.1"),
        ("10.99.0.2/31", "10.99.0.2", "10.99.0.3"),
    ]


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        (None, {}, "podnet lab: no topology file"),
        ("name: x\nnodes:\n  - {name: Node_1}\n", {}, 'nodes.0.name: "Node_1" must be a lowercase letter'),
        ("name: x\nnodes: [\n", {}, "not valid YAML"),
        ("name: x\nnodes: []\n", {}, "nodes: must be a non-empty list"),
        ("name: x\nnodes:\n  - {name: a}\n", {"LAB_LIBVIRT_DRIVER": "xen"}, "LAB_LIBVIRT_DRIVER must be qemu or kvm"),
        ("name: x\nnodes:\n  - {name: a}\n", {"LAB_RUN_ID": "../etc"}, "LAB_RUN_ID must be up to 8"),
        (FABRIC + "  - {name: a}\n", {}, "nodes.0.uplinks: in a fabric each node names its leaf or two leaves"),
        (
            FABRIC + "  - {name: a, uplinks: [leaf1, leaf9]}\n",
            {},
            'nodes.0.uplinks.1: no leaf "leaf9" (leaves: leaf1, leaf2)',
        ),
        (FABRIC + "  - {name: a, uplinks: [leaf1, leaf1]}\n", {}, "leaf1 twice: a dual-homed node's two uplinks"),
        (FABRIC + "  - {name: leaf1, uplinks: [leaf1]}\n", {}, "names must be unique (spines and leaves count): leaf1"),
        ("name: x\nspines: [{name: s}]\nnodes:\n  - {name: a}\n", {}, "spines: spines need leaves below them"),
        (
            "name: x\nleaves: [{name: l1}, {name: l2}]\nnodes:\n  - {name: a, uplinks: [l1]}\n",
            {},
            "leaves: two or more leaves need spines",
        ),
        (
            "name: x\nunderlay: 10.0.0.0/29\nnodes:\n  - {name: a}\n  - {name: b}\n  - {name: c}\n",
            {},
            "underlay: 10.0.0.0/29 has room for 2 links (/30 each), not 3",
        ),
        (
            FABRIC.replace("loopbacks: 10.9.0.0/24\n", "") + "  - {name: a, uplinks: [leaf1, leaf2]}\n",
            {},
            "nodes.0.uplinks: a node with two uplinks needs `loopbacks`",
        ),
        (
            "name: x\nnodes:\n  - {name: a, uplinks: [x]}\n",
            {},
            "nodes.0.uplinks: with one ToR a node's only uplink is the ToR (tor)",
        ),
    ],
)
def test_bad_topologies_are_refused_with_the_reason(
    tmp_path: Path, content: str | None, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "t.yaml"
    if content is not None:
        path.write_text(content)
    proc = validate(str(path), **env)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_provisioners_upload_the_staged_files_or_say_what_to_run(tmp_path: Path) -> None:
    """Each VM is provisioned from `lab wheelhouse`'s staging (one tar per VM); without it,
    provisioning fails naming the command, and every other vagrant command still works."""
    path = tmp_path / "unstaged.yaml"
    path.write_text("name: unstaged\nnodes:\n  - {name: a}\n")
    proc = validate(str(path), LAB_VAGRANT_DUMP="0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (ROOT / "Vagrantfile").read_text()
    assert "run `lab wheelhouse --topology" in text
    assert 'destination: "/tmp/podnet-stage.tar"' in text and "provision.sh" in text
