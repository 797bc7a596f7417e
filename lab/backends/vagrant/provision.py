"""Stage what each VM of a topology needs, for the Vagrantfile's provisioners.

`stage()` writes `.vagrant/podnet/<topology>/<vm>/` (and the same as
`<vm>.tar`, which the Vagrantfile uploads): the guest provisioning
script and systemd units (lab/backends/vagrant/guest/), podnet's venv for
/opt/podnet (built on this machine: venv.py; routers need none; a disk image
a VM on this machine mounts, named in `venv-disk`, else the .tar.gz the
Vagrantfile uploads on its own), the lab
image, and the VM's configuration, rendered here from the same topology and
the same model code the netns backend uses:

- every VM: `role` (tor, spine, leaf, control or worker), `hostname`, `links`
  (one line per link the VM is an end of: its address/prefix, the interface
  name the netns backend uses — `uplink` on a single-homed node, `to-<peer>`
  elsewhere — the MAC the Vagrantfile gives that NIC, and the MTU when the link
  crosses to another libvirt host: placement.Tunnel.guest_mtu); `sysctl.conf`
  and `underlay.sh`: the rest of its part of lab/model/underlay.py's plan
  (forwarding and ECMP hashing on routers and dual-homed nodes; a dual-homed
  node's /32 node IP on `lo` and its fallback default over both leaves; a
  leaf's default over its spines; a single-homed node's default), `gateway` on
  a single-homed node;
- a router: `bird.conf` (cluster.router_config: the ToR's, a leaf's, a spine's),
  and, on the ToR, `etcd.env` when the topology has no control node (the agents
  then share the ToR's etcd as their store, where the netns backend shares one
  SQLite file; a fabric needs a control node here);
- the control node: `etcd.env`, `register` (workers in topology order),
  `operator.env`;
- a worker: `runtime`, `agent.toml` (cluster.agent_settings: one BGP peer per
  uplink), and with `runtime: docker` `plugin.env` and `image.tar`;
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
from lab.backends.vagrant.node import REMOTE_PLUGIN_SOCK
from lab.backends.vagrant.venv import VENV, disk_for, vm_venv
from lab.image import build_rootfs_tar
from lab.model import cluster, underlay
from lab.model.topology import Topology
from podnet.kvstore import keys

GUEST = Path(__file__).resolve().parent / "guest"
ETCD_DATA = "/var/lib/etcd/podnet"
VENV_TAR = "podnet-venv.tar.gz"  # in a VM's staging directory, uploaded on its own: unpacked at VENV
VENV_DISK = "venv-disk"  # in a VM's staging directory: the venv disk image's path, for the Vagrantfile


class StagingError(ValueError):
    pass


def link_mac(link: int, side: int) -> str:
    """The MAC of link `link`'s NIC on its upper end (side 1: ToR, leaf, spine) or its lower end (side
    2: node, leaf); the Vagrantfile derives the same (lab_mac) and gives the NIC that address,
    provision.sh finds it by it."""
    return placement.mac(link, side)


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
    found = cluster.control_store_url(topology)
    if found is not None:
        return found
    if topology.is_fabric():
        raise StagingError(
            f"{topology.name}: a fabric on the Vagrant backend needs a node with role control (etcd runs there; "
            "without one, the netns backend's agents share a SQLite file, which VMs cannot)"
        )
    return f"etcd://{topology.link_of(node).tor_ip}:{cluster.ETCD_CLIENT_PORT}"


def etcd_env(name: str, advertise_ip: str) -> str:
    return cluster.etcd_env(
        cluster.etcd_settings(name, listen_ips=["0.0.0.0"], advertise_ip=advertise_ip, data_dir=ETCD_DATA)
    )


def _mtu(where: dict[str, placement.Host], upper: str, lower: str) -> str:
    """` <mtu>` for a link whose two VMs sit on different libvirt hosts (`where`: placement.placement;
    its frames cross in UDP), nothing for one inside a host (1500, the NIC's own)."""
    return "" if where[upper] == where[lower] else f" {placement.HOST_MTU - placement.CROSSING_OVERHEAD}"


def links_file(topology: Topology, name: str) -> str:
    """One line per link `name` is an end of: `<address>/<prefix> <interface> <mac> [<mtu>]`."""
    where = placement.placement(topology)
    lines = []
    for link in topology.links():
        for side, vm, ip, ifname in (
            (1, link.upper, link.upper_ip, link.upper_if),
            (2, link.lower, link.lower_ip, link.lower_if),
        ):
            if vm == name:
                lines.append(
                    f"{ip}/{link.prefixlen} {ifname} {link_mac(link.index, side)}{_mtu(where, link.upper, link.lower)}\n"
                )
    return "".join(lines)


def underlay_files(topology: Topology, name: str) -> dict[str, str]:
    """The rest of the VM's part of the underlay plan (lab/model/underlay.py, what the netns backend
    runs in the VM's namespace) beyond its links' addresses (`links`, applied per NIC):
    `sysctl.conf` (its sysctls) and `underlay.sh` (its other commands, idempotent: `ip … replace`,
    since provision.sh runs again on `vagrant provision` and the unit podnet-underlay at boot)."""
    interfaces = {link.upper_if for link in topology.downlinks(name)} | {
        link.lower_if for link in topology.uplinks(name)
    }
    sysctls: list[str] = []
    commands: list[list[str]] = []
    for command in underlay.plan(topology)[name]:
        if command[:3] == ["ip", "addr", "add"] and command[-2:-1] == ["dev"] and command[-1] in interfaces:
            continue  # a link's address: `links`
        if command[:3] == ["ip", "link", "set"] and command[3] in interfaces and command[4:] == ["up"]:
            continue  # a link's NIC up: `links`
        if command[:2] == ["sysctl", "-qw"]:
            sysctls.append(command[2])
            continue
        if command[:2] in (["ip", "addr"], ["ip", "route"]) and command[2] == "add":
            command = [*command[:2], "replace", *command[3:]]
        commands.append(command)
    files = {}
    if sysctls:
        files["sysctl.conf"] = "".join(f"{line}\n" for line in sysctls)
    if commands:
        files["underlay.sh"] = "set -e\n" + "".join(shlex.join(c) + "\n" for c in commands)
    return files


def node_files(topology: Topology, name: str) -> dict[str, str]:
    """The configuration files of one VM (name -> content)."""
    role = topology.role(name)
    files = {"role": f"{role}\n", "hostname": f"{name}\n", "links": links_file(topology, name)}
    files |= underlay_files(topology, name)
    if role in ("tor", "spine", "leaf"):
        files["bird.conf"] = cluster.router_config(topology, name)
        if role == "tor" and topology.control() is None:
            files["etcd.env"] = etcd_env(name, topology.downlinks(name)[0].upper_ip)
        return files
    uplinks = topology.uplinks(name)
    store = store_url(topology, name)
    if len(uplinks) == 1:
        files["gateway"] = f"{uplinks[0].upper_ip}\n"
    files["profile.sh"] = f"export PATH={VENV}/bin:$PATH\nexport PODNET_STORE={store}\n"
    if role == "control":
        return files | {
            "etcd.env": etcd_env(name, topology.node_ip(name)),
            "register": "".join(f"{worker} {ip}\n" for worker, ip in cluster.registrations(topology)),
            "operator.env": f"PODNET_OPERATOR_ARGS={shlex.join(cluster.operator_args(topology, store))}\n",
        }
    runtime = topology.spec(name).runtime
    settings = {"node_name": name, **cluster.agent_settings(topology, name, store)}
    mtu = placement.pod_mtu(topology)
    if mtu is not None:  # a link crosses hosts: every pod's MTU fits it
        settings["mtu"] = mtu
    # runtime cni: the agent only (no dockerd, no plugin, no image). docker: the agent serves the
    # libnetwork plugin (docker_plugin: agent; no podnet-docker unit, no plugin.env), or podnet-docker does.
    if runtime == "docker" and topology.spec(name).docker_plugin == "agent":
        settings |= {"docker_plugin_socket": REMOTE_PLUGIN_SOCK, **cluster.in_agent_plugin_settings()}
    elif runtime == "docker":
        files["plugin.env"] = f"PODNET_PLUGIN_ARGS={shlex.join(cluster.plugin_args())}\n"
    files |= {"runtime": f"{runtime}\n", "agent.toml": cluster.as_toml(settings)}
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
    for node in topology.workers():
        store_url(topology, node.name)  # a fabric without a control node: refused before anything is built
    venv, _ = vm_venv()
    root = stage_dir() / topology.name
    shutil.rmtree(root, ignore_errors=True)
    stage_dir().mkdir(parents=True, exist_ok=True)
    image = build_rootfs_tar(stage_dir() / "image.tar")
    routers = [r.name for r in topology.routers()]
    for name in [*routers, *(n.name for n in topology.nodes)]:
        node_dir = root / name
        _link_tree(GUEST, node_dir)
        for filename, content in node_files(topology, name).items():
            (node_dir / filename).write_text(content)
        if name not in routers:  # podnet runs on the nodes; routers run bird (and a ToR maybe etcd)
            # The venv as a disk for a VM on this machine (the Vagrantfile attaches it), else as a .tar.gz
            # uploaded beside <vm>.tar (another libvirt host, VirtualBox): not in <vm>.tar either way.
            _link(venv, node_dir / VENV_TAR)
            (node_dir / VENV_DISK).write_text(f"{disk_for(venv)}\n")
            (node_dir / "venv").write_text(venv.name + "\n")
        if (node_dir / "runtime").exists() and (node_dir / "runtime").read_text().strip() == "docker":
            _link(image, node_dir / "image.tar")  # a worker with dockerd (its plugin in the agent or not)
        # One file: vagrant's file provisioner uploads a directory file by file, minutes under TCG.
        with tarfile.open(root / f"{name}.tar", "w") as tar:
            tar.add(node_dir, arcname=".", filter=lambda info: None if info.name == f"./{VENV_TAR}" else info)
    (root / ".complete").write_text(venv.name + "\n")
    return root
