"""Stage what each VM of a topology needs, for the Vagrantfile's provisioners.

`stage()` writes `.vagrant/podnet/<topology>/<vm>/` (and the same as
`<vm>.tar`, which the Vagrantfile uploads): the guest provisioning
script and systemd units (lab/vagrant/guest/), podnet's wheelhouse (every
wheel, installed in the VM with no index), the lab image, and the node's
configuration, rendered here from the same topology the netns backend uses:

- every VM: `role`, `links` (underlay address -> the interface name the netns
  backend uses: `uplink` on a node, `to-<node>` on the ToR), `gateway`;
- the ToR: `bird.conf` (cluster.tor_config), and `etcd.env` when the topology has
  no control node (the agents then share the ToR's etcd as their store, where
  the netns backend shares one SQLite file);
- the control node: `etcd.env`, `register` (workers in topology order),
  `operator.env`;
- a worker: `agent.toml` (cluster.agent_settings), `image.tar`, and
  `registered_by` when the control node registers it.

`vagrant up` alone then gives a working lab; `lab up --backend vagrant` stages
first and runs the same provisioners.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tarfile
from pathlib import Path

from lab import paths
from lab.deploy import wheelhouse
from lab.image import build_rootfs_tar
from lab.model import cluster
from lab.model.topology import Topology

GUEST = Path(__file__).resolve().parent / "guest"
VENV = "/opt/podnet"  # where provision.sh installs the wheelhouse in each VM
ETCD_DATA = "/var/lib/etcd/podnet"


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


def node_files(topology: Topology, name: str) -> dict[str, str]:
    """The configuration files of one VM (name -> content)."""
    links = topology.links()
    if name == topology.tor.name:
        files = {
            "role": "tor\n",
            "links": "".join(f"{link.tor_ip} to-{link.node}\n" for link in links),
            "bird.conf": cluster.tor_config(topology),
        }
        if topology.control() is None:
            files["etcd.env"] = etcd_env(name, links[0].tor_ip)
        return files
    link = topology.link_of(name)
    store = store_url(topology, name)
    files = {
        "links": f"{link.node_ip} uplink\n",
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
    return files


def _link_tree(src: Path, dest: Path) -> None:
    """Copy a tree by hard links where the filesystem allows (wheels are large and shared)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and not path.name.startswith("."):
            try:
                os.link(path, dest / path.name)
            except OSError:
                shutil.copy2(path, dest / path.name)


def stage(topology: Topology) -> Path:
    """Write every VM's provisioning directory; returns the topology's staging directory."""
    house, _ = wheelhouse()
    root = stage_dir() / topology.name
    shutil.rmtree(root, ignore_errors=True)
    stage_dir().mkdir(parents=True, exist_ok=True)
    image = build_rootfs_tar(stage_dir() / "image.tar")
    for name in [topology.tor.name, *(n.name for n in topology.nodes)]:
        node_dir = root / name
        _link_tree(GUEST, node_dir)
        for filename, content in node_files(topology, name).items():
            (node_dir / filename).write_text(content)
        _link_tree(house, node_dir / "wheelhouse")
        if (node_dir / "agent.toml").exists():
            os.link(image, node_dir / "image.tar")
        # One file: vagrant's file provisioner uploads a directory file by file, minutes under TCG.
        with tarfile.open(root / f"{name}.tar", "w") as tar:
            tar.add(node_dir, arcname=".")
    (root / ".complete").write_text(house.name + "\n")
    return root
