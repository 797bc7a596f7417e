"""Stage what each VM of a topology needs, for the Vagrantfile's provisioners.

`stage()` writes `.vagrant/podnet/<topology>/<vm>/` (and the same as
`<vm>.tar`, which the Vagrantfile uploads): the guest provisioning
script and systemd units (lab/vagrant/guest/), podnet's wheelhouse (every
wheel, installed in the VM with no index), the lab image, and the node's
configuration, rendered here from the same topology the netns backend uses:

- every VM: `role`, `links` (underlay address -> the interface name the netns
  backend uses: `uplink` on a node, `to-<node>` on the ToR), `gateway`;
- the ToR: `bird.conf` (bgp.tor_config), and `etcd.env` when the topology has
  no control node (the agents then share the ToR's etcd as their store, where
  the netns backend shares one SQLite file);
- the control node: `etcd.env`, `register` (workers in topology order),
  `operator.env`;
- a worker: `agent.toml` (nodeconfig.agent_settings), `image.tar`, and
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

from lab.bgp import tor_config
from lab.control import ETCD_CLIENT_PORT, ETCD_PEER_PORT
from lab.deploy import REPO, wheelhouse
from lab.image import build_rootfs_tar
from lab.nodeconfig import agent_settings, as_toml
from lab.topology import Topology

STAGE = REPO / ".vagrant" / "podnet"
GUEST = Path(__file__).resolve().parent / "vagrant" / "guest"
VENV = "/opt/podnet"  # where provision.sh installs the wheelhouse in each VM


def store_url(topology: Topology, node: str) -> str:
    """The cluster store a VM's agent uses: etcd on the control node, else on the ToR."""
    control = topology.control()
    if control is not None:
        return f"etcd://{topology.node_ip(control.name)}:{ETCD_CLIENT_PORT}"
    link = next(link for link in topology.links() if link.node == node)
    return f"etcd://{link.tor_ip}:{ETCD_CLIENT_PORT}"


def etcd_env(name: str, advertise_ip: str) -> str:
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    return "".join(
        f"{k}={v}\n"
        for k, v in {
            "ETCD_NAME": name,
            "ETCD_DATA_DIR": "/var/lib/etcd/podnet",
            "ETCD_LISTEN_CLIENT_URLS": f"http://0.0.0.0:{ETCD_CLIENT_PORT}",
            "ETCD_ADVERTISE_CLIENT_URLS": f"http://{advertise_ip}:{ETCD_CLIENT_PORT}",
            "ETCD_LISTEN_PEER_URLS": peer,
            "ETCD_INITIAL_ADVERTISE_PEER_URLS": peer,
            "ETCD_INITIAL_CLUSTER": f"{name}={peer}",
            "ETCD_LOG_LEVEL": "warn",
        }.items()
    )


def node_files(topology: Topology, name: str) -> dict[str, str]:
    """The configuration files of one VM (name -> content)."""
    links = topology.links()
    if name == topology.tor.name:
        files = {
            "role": "tor\n",
            "links": "".join(f"{link.tor_ip} to-{link.node}\n" for link in links),
            "bird.conf": tor_config(topology),
        }
        if topology.control() is None:
            files["etcd.env"] = etcd_env(name, links[0].tor_ip)
        return files
    link = next(link for link in links if link.node == name)
    store = store_url(topology, name)
    files = {
        "links": f"{link.node_ip} uplink\n",
        "gateway": f"{link.tor_ip}\n",
        "profile.sh": f"export PATH={VENV}/bin:$PATH\nexport PODNET_STORE={store}\n",
    }
    spec = next(n for n in topology.nodes if n.name == name)
    if spec.role == "control":
        cidrs = [a for c in topology.cluster_cidrs for a in ("--cluster-cidr", c)]
        args = ["--store", store, *cidrs, "--mask-size", str(topology.mask_size), "--interval", "0.2"]
        files |= {
            "role": "control\n",
            "etcd.env": etcd_env(name, link.node_ip),
            "register": "".join(f"{w.name} {topology.node_ip(w.name)}\n" for w in topology.workers()),
            "operator.env": f"PODNET_OPERATOR_ARGS={shlex.join(args)}\n",
        }
    else:
        settings = {"node_name": name, **agent_settings(topology, name, store)}
        files |= {"role": "worker\n", "agent.toml": as_toml(settings)}
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
    root = STAGE / topology.name
    shutil.rmtree(root, ignore_errors=True)
    STAGE.mkdir(parents=True, exist_ok=True)
    image = build_rootfs_tar(STAGE / "image.tar")
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
