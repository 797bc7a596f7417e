"""Stage what each VM of a topology needs, for the Vagrantfile's provisioners.

`stage()` writes `.vagrant/podnet/<topology>/<vm>/` (and the same as
`<vm>.tar`, which the Vagrantfile uploads): the guest provisioning
script and systemd units (lab/backends/vagrant/guest/), podnet's venv for
/opt/podnet (built on this machine: venv.py; the ToR needs none), the lab
image, and the node's configuration, rendered here from the same topology
the netns backend uses:

- every VM: `role`, `hostname`, `links` (underlay address/prefix, the interface
  name the netns backend uses — `uplink` on a node, `to-<node>` on the ToR —
  the MAC the Vagrantfile gives that NIC, and the MTU when the link crosses to
  another libvirt host: placement.Tunnel.guest_mtu), `gateway`;
- the ToR: `bird.conf` (cluster.tor_config), and `etcd.env` when the topology has
  no control node (the agents then share the ToR's etcd as their store, where
  the netns backend shares one SQLite file);
- the control node: `etcd.env`, `register` (workers in topology order),
  `operator.env`;
- a worker: `agent.toml` (cluster.agent_settings), `image.tar`, and
  `registered_by` when the control node registers it (with `registration`:
  the etcd request that finds the registration, so the wait costs a curl).

`vagrant up` alone then gives a working lab; `lab up --backend vagrant` stages
first and runs the same provisioners.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import tarfile
from pathlib import Path

from lab import paths
from lab.backends.vagrant import placement
from lab.backends.vagrant.venv import VENV, vm_venv
from lab.image import build_rootfs_tar
from lab.model import cluster
from lab.model.topology import Topology
from podnet.kvstore import keys

GUEST = Path(__file__).resolve().parent / "guest"
ETCD_DATA = "/var/lib/etcd/podnet"
VENV_TAR = "podnet-venv.tar.gz"  # in a VM's staging directory: unpacked at VENV


def link_mac(link: int, side: int) -> str:
    """The MAC of link `link`'s NIC on the ToR (side 1) or on its node (side 2); the Vagrantfile
    derives the same (lab_mac) and gives the NIC that address, provision.sh finds it by it."""
    return f"52:54:00:{0x50 + side:02x}:{link >> 8:02x}:{link & 0xFF:02x}"


def registration_request(topology: Topology, node: str) -> str:
    """`<etcd URL> <JSON range request>`: how provision.sh asks etcd whether the control node has
    registered `node` (the key podnet's registry writes)."""
    store = store_url(topology, node).removeprefix("etcd://").split(",")[0]
    request = {"key": base64.b64encode(keys.cluster_node(node).encode()).decode(), "count_only": True}
    return f"http://{store}/v3/kv/range {json.dumps(request, separators=(',', ':'))}\n"


def stage_dir() -> Path:
    """Where staged files go: .vagrant/podnet/ of the checkout (the Vagrantfile reads them there)."""
    return paths.repo() / ".vagrant" / "podnet"


def store_url(topology: Topology, node: str) -> str:
    """The cluster store a VM's agent uses: etcd on the control node, else on the ToR
    (at the ToR's address on the node's own link)."""
    return cluster.control_store_url(topology) or f"etcd://{topology.link_of(node).tor_ip}:{cluster.ETCD_CLIENT_PORT}"


def etcd_env(name: str, advertise_ip: str) -> str:
    return cluster.etcd_env(
        cluster.etcd_settings(name, listen_ips=["0.0.0.0"], advertise_ip=advertise_ip, data_dir=ETCD_DATA)
    )


def _cidr(ip: str, subnet: str) -> str:
    return f"{ip}/{subnet.split('/')[1]}"


def _mtu(where: dict[str, placement.Host], upper: str, lower: str) -> str:
    """` <mtu>` for a link whose two VMs sit on different libvirt hosts (`where`: placement.placement;
    its frames cross in UDP), nothing for one inside a host (1500, the NIC's own)."""
    return "" if where[upper] == where[lower] else f" {placement.HOST_MTU - placement.CROSSING_OVERHEAD}"


def node_files(topology: Topology, name: str) -> dict[str, str]:
    """The configuration files of one VM (name -> content)."""
    links = topology.links()
    where = placement.placement(topology)
    if name == topology.tor.name:
        files = {
            "role": "tor\n",
            "hostname": f"{name}\n",
            "links": "".join(
                f"{_cidr(link.tor_ip, link.subnet)} to-{link.node} {link_mac(link.index, 1)}"
                f"{_mtu(where, name, link.node)}\n"
                for link in links
            ),
            "bird.conf": cluster.tor_config(topology),
        }
        if topology.control() is None:
            files["etcd.env"] = etcd_env(name, links[0].tor_ip)
        return files
    link = topology.link_of(name)
    store = store_url(topology, name)
    files = {
        "hostname": f"{name}\n",
        "links": f"{_cidr(link.node_ip, link.subnet)} uplink {link_mac(link.index, 2)}"
        f"{_mtu(where, topology.tor.name, name)}\n",
        "gateway": f"{link.tor_ip}\n",
        "profile.sh": f"export PATH={VENV}/bin:$PATH\nexport PODNET_STORE={store}\n",
    }
    spec = next(n for n in topology.nodes if n.name == name)
    if spec.role == "control":
        files |= {
            "role": "control\n",
            "etcd.env": etcd_env(name, link.node_ip),
            "register": "".join(f"{worker} {ip}\n" for worker, ip in cluster.registrations(topology)),
            "operator.env": f"PODNET_OPERATOR_ARGS={shlex.join(cluster.operator_args(topology, store))}\n",
        }
    else:
        settings = {"node_name": name, **cluster.agent_settings(topology, name, store)}
        files |= {
            "role": "worker\n",
            "agent.toml": cluster.as_toml(settings),
            "plugin.env": f"PODNET_PLUGIN_ARGS={shlex.join(cluster.plugin_args())}\n",
        }
        control = topology.control()
        if control is not None:  # provision.sh starts the agent once the control node registered it
            files["registered_by"] = f"{control.name}\n"
            files["registration"] = registration_request(topology, name)
    return files


def _link(src: Path, dest: Path) -> None:
    """A hard link where the filesystem allows (the venv is large and shared), else a copy."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _link_tree(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and not path.name.startswith("."):
            _link(path, dest / path.name)


def stage(topology: Topology) -> Path:
    """Write every VM's provisioning directory; returns the topology's staging directory."""
    venv, _ = vm_venv()
    root = stage_dir() / topology.name
    shutil.rmtree(root, ignore_errors=True)
    stage_dir().mkdir(parents=True, exist_ok=True)
    image = build_rootfs_tar(stage_dir() / "image.tar")
    for name in [topology.tor.name, *(n.name for n in topology.nodes)]:
        node_dir = root / name
        _link_tree(GUEST, node_dir)
        for filename, content in node_files(topology, name).items():
            (node_dir / filename).write_text(content)
        if name != topology.tor.name:  # podnet runs on the nodes; the ToR runs bird (and etcd)
            _link(venv, node_dir / VENV_TAR)
            (node_dir / "venv").write_text(venv.name + "\n")
        if (node_dir / "agent.toml").exists():
            _link(image, node_dir / "image.tar")
        # One file: vagrant's file provisioner uploads a directory file by file, minutes under TCG.
        with tarfile.open(root / f"{name}.tar", "w") as tar:
            tar.add(node_dir, arcname=".")
    (root / ".complete").write_text(venv.name + "\n")
    return root
