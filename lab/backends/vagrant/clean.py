"""The Vagrant backend's part of `lab clean` and `lab down`: libvirt domains and networks named pn-*
(with their disks), on this machine and on every other libvirt host a lab placed VMs on
(docs/multi-host.md), and vagrant's record of them in .vagrant/machines.

Another host's URI is remembered (`REMOTE_HOSTS`, outside the labs' directories, which `lab clean`
removes first) when a lab is brought up there, and forgotten once `lab clean` found it clean.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from lab import paths
from lab.backends.base import LabError
from lab.backends.vagrant.placement import LOCAL_URI

QEMU_DEFINITIONS = Path("/etc/libvirt/qemu")
REMOTE_HOSTS = Path("/var/tmp/podnet-vagrant-hosts.json")  # libvirt URIs of other hosts labs used


def _virsh(*args: str, uri: str = LOCAL_URI) -> subprocess.CompletedProcess[str]:
    command = ["virsh", "-q", *([] if uri == LOCAL_URI else ["-c", uri]), *args]
    if shutil.which("virsh") is None:
        return subprocess.CompletedProcess(command, 127, "", "virsh is not installed (libvirt-clients)")
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def remembered_hosts() -> list[str]:
    try:
        found = json.loads(REMOTE_HOSTS.read_text())
    except (OSError, ValueError):
        return []
    return sorted(str(uri) for uri in found) if isinstance(found, list) else []


def remember_hosts(uris: Iterable[str]) -> None:
    """Before a lab places VMs on other hosts: `lab clean` will look there too."""
    known = set(remembered_hosts()) | {uri for uri in uris if uri != LOCAL_URI}
    if known:
        REMOTE_HOSTS.write_text(json.dumps(sorted(known)))


def _forget_hosts(uris: Iterable[str]) -> None:
    left = set(remembered_hosts()) - set(uris)
    if left:
        REMOTE_HOSTS.write_text(json.dumps(sorted(left)))
    else:
        REMOTE_HOSTS.unlink(missing_ok=True)


def clean_host(uri: str, prefix: str = "pn-") -> tuple[list[str], list[str]]:
    """Destroy and undefine (with their disks) the domains and networks named `prefix`* on the libvirt
    host `uri`: (domains, networks) removed. LabError when the host cannot be reached."""
    domains = _virsh("list", "--all", "--name", uri=uri)
    networks = _virsh("net-list", "--all", "--name", uri=uri)
    for listing in (domains, networks):
        if listing.returncode != 0:
            raise LabError(f"libvirt at {uri} cannot be reached: {listing.stderr.strip() or 'virsh failed'}")
    gone_domains = [d for d in _lab_names(domains.stdout) if d.startswith(prefix)]
    gone_networks = [n for n in _lab_names(networks.stdout) if n.startswith(prefix)]
    for domain in gone_domains:
        _virsh("destroy", domain, uri=uri)
        _virsh("undefine", domain, "--remove-all-storage", "--nvram", uri=uri)
    for network in gone_networks:
        _virsh("net-destroy", network, uri=uri)
        _virsh("net-undefine", network, uri=uri)
    return gone_domains, gone_networks


def lab_vms() -> tuple[list[str], list[str]]:
    """(domains, networks) named pn-* on this machine; none when libvirt is not installed or not running."""
    if shutil.which("virsh") is None:
        return [], []
    domains = _virsh("list", "--all", "--name")
    if domains.returncode != 0 and _defined_lab_domains():
        _start_libvirtd()  # lab VMs are defined but libvirtd is down: without it they would stay
        domains = _virsh("list", "--all", "--name")
    networks = _virsh("net-list", "--all", "--name")
    if domains.returncode != 0 or networks.returncode != 0:
        if _defined_lab_domains():
            raise LabError(
                f"lab VMs are defined ({', '.join(_defined_lab_domains())}) but virsh cannot reach libvirtd: "
                f"{domains.stderr.strip()}; start it (ci/libvirtd) and run `lab clean` again"
            )
        return [], []
    return _lab_names(domains.stdout), _lab_names(networks.stdout)


def reach_hosts(uris: Iterable[str]) -> None:
    """Before `vagrant up`: every libvirt host the lab places VMs on answers. This machine's
    libvirtd is started when it is not running (as ci/libvirtd does); another host's is not
    ours to start. LabError naming the host and what to do, else vagrant says it per VM."""
    for uri in sorted(set(uris)):
        probe = _virsh("uri", uri=uri)
        if probe.returncode != 0 and uri == LOCAL_URI and shutil.which("virsh") is not None:
            _start_libvirtd()
            probe = _virsh("uri", uri=uri)
        if probe.returncode != 0:
            hint = "start it (ci/libvirtd does)" if uri == LOCAL_URI else "check that host's libvirtd and ssh"
            raise LabError(f"libvirt at {uri} cannot be reached: {probe.stderr.strip() or 'virsh failed'}; {hint}")


def _defined_lab_domains() -> list[str]:
    return sorted(p.stem for p in QEMU_DEFINITIONS.glob("pn-*.xml"))


def _start_libvirtd() -> None:
    script = paths.repo() / "ci" / "libvirtd"
    if script.is_file():
        subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, check=False)


def _lab_names(listing: str) -> list[str]:
    return sorted(name for name in listing.split() if name.startswith("pn-"))


def clean(removed: dict[str, list[str]]) -> None:
    removed.setdefault("VMs", [])
    removed.setdefault("VM networks", [])
    domains, networks = lab_vms()
    for domain in domains:
        _virsh("destroy", domain)
        _virsh("undefine", domain, "--remove-all-storage", "--nvram")
        removed["VMs"].append(domain)
    for network in networks:
        _virsh("net-destroy", network)
        _virsh("net-undefine", network)
        removed["VM networks"].append(network)
    remote = remembered_hosts()
    if remote and shutil.which("virsh") is not None:
        reached = []
        for uri in remote:
            try:
                gone, gone_networks = clean_host(uri)
            except LabError as err:  # said, and remembered for the next `lab clean`
                removed.setdefault("unreachable libvirt hosts (run lab clean again)", []).append(str(err))
                continue
            reached.append(uri)
            domains.extend(gone)
            removed["VMs"] += [f"{d} ({uri})" for d in gone]
            removed["VM networks"] += [f"{n} ({uri})" for n in gone_networks]
        _forget_hosts(reached)
    machines = paths.repo() / ".vagrant" / "machines"
    if domains and machines.is_dir():
        shutil.rmtree(machines, ignore_errors=True)  # vagrant's ids of the domains just removed
