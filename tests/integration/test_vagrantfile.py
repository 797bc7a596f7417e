"""The root Vagrantfile reads the same topology files as the netns backend and derives the same addresses.

Runs `vagrant validate` (Debian's vagrant + vagrant-libvirt; no VM is started)
with LAB_VAGRANT_DUMP=1, which makes the Vagrantfile print its plan as JSON,
and compares that plan with lab/topology.py's for every shipped topology.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab.backends.vagrant import placement
from lab.backends.vagrant.provision import link_mac, node_files
from lab.model.topology import TOPOLOGIES as TOPOLOGY_DIR
from lab.model.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
ALL_TOPOLOGIES = sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))
TOPOLOGIES = [name for name in ALL_TOPOLOGIES if not load_topology(name).is_fabric()]
FABRICS = [name for name in ALL_TOPOLOGIES if load_topology(name).is_fabric()]


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


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_vagrantfile_derives_what_the_netns_backend_derives(name: str) -> None:
    topology = load_topology(name)
    vagrant = plan(name)
    assert vagrant["topology"] == topology.name and vagrant["tor"] == topology.tor.name
    assert vagrant["datapath"] == topology.datapath
    assert vagrant["tor_uri"] == "qemu:///system"
    tunnels = placement.tunnels(topology)
    want = [
        {
            "name": spec.name,
            "role": spec.role,
            "cpus": spec.cpus,
            "memory_mib": spec.memory_mib,
            "link": link.index,
            "subnet": link.subnet,
            "tor_ip": link.tor_ip,
            "node_ip": link.node_ip,
            "tor_mac": link_mac(link.index, 1),
            "node_mac": link_mac(link.index, 2),
            "uri": "qemu:///system",
            "tunnel": tunnel_plan(tunnel),
        }
        for spec, link, tunnel in zip(topology.nodes, topology.links(), tunnels, strict=True)
    ]
    assert vagrant["nodes"] == want


def tunnel_plan(tunnel: placement.Tunnel) -> dict[str, Any]:
    """placement.Tunnel as the Vagrantfile dumps it."""

    def end(e: placement.TunnelEnd) -> dict[str, Any]:
        return {
            "local_ip": e.local_ip,
            "local_port": e.local_port,
            "remote_ip": e.remote_ip,
            "remote_port": e.remote_port,
        }

    return {"upper": end(tunnel.upper), "lower": end(tunnel.lower), "mtu": tunnel.guest_mtu}


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
    assert vagrant["tor_uri"] == "qemu:///system"
    assert [n["uri"] for n in vagrant["nodes"]] == [
        "qemu:///system",
        "qemu+ssh://lab@10.0.0.2/system",
        "qemu:///system",
    ]
    tunnels = placement.tunnels(topology, local_address="10.0.0.1")
    assert [n["tunnel"] for n in vagrant["nodes"]] == [tunnel_plan(t) for t in tunnels]
    node2 = vagrant["nodes"][1]["tunnel"]
    assert node2["lower"] == {
        "local_ip": "10.0.0.2",
        "local_port": 47003,
        "remote_ip": "10.0.0.1",
        "remote_port": 47002,
    }
    assert node2["mtu"] == 1458 and vagrant["nodes"][0]["tunnel"]["upper"]["local_ip"] == "127.0.0.1"
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


@pytest.mark.parametrize("name", FABRICS)
def test_a_fabric_is_refused_naming_the_netns_backend(name: str) -> None:
    proc = validate(name)
    assert proc.returncode != 0
    assert "a fabric (spines and leaves)" in proc.stdout + proc.stderr and "netns backend" in proc.stdout + proc.stderr


def test_the_labs_own_topology_file_is_planned_like_the_shipped_one(tmp_path: Path) -> None:
    """`lab up --backend vagrant` hands the Vagrantfile the topology as the model dumps it (with
    `spines: []` and `leaves: []`): that is one ToR, not a fabric."""
    dumped = tmp_path / "topology.yaml"
    dumped.write_text(json.dumps(load_topology("three-nodes").model_dump(), indent=2))
    assert plan(str(dumped))["nodes"] == plan("three-nodes")["nodes"]


def test_a_path_works_as_well_as_a_name(tmp_path: Path) -> None:
    custom = tmp_path / "two.yaml"
    custom.write_text(
        "name: two\nunderlay: 10.99.0.0/28\ncluster_cidrs: [10.20.0.0/16]\nmask_size: 24\n"
        "nodes:\n  - {name: a, cpus: 2, memory_mib: 1024}\n  - {name: b}\n"
    )
    vagrant = plan(str(custom))
    assert [(n["name"], n["node_ip"], n["tor_ip"], n["cpus"]) for n in vagrant["nodes"]] == [
        ("a", "10.99.0.2", "10.99.0.1", 2),
        ("b", "10.99.0.6", "10.99.0.5", 1),
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
