"""`lab box build`: the offline Debian 12 Vagrant box (libvirt) the lab's VMs boot.

Vagrant Cloud is not reachable here, so the box is made locally:
debootstrap (minbase plus every package a lab node needs, so no VM ever needs
the network) -> an ext4 filesystem made from the directory (`mkfs.ext4 -d`)
inside an MBR disk image that extlinux boots -> qcow2 -> a `.box` tar with
libvirt metadata -> `vagrant box add`.

Gotchas this handles: clones must not share a machine id (empty
/etc/machine-id, regenerated at first boot) nor a DHCP client id (networkd
uses the MAC); sshd needs a host key before it starts (a oneshot unit makes
it at first boot, so clones differ). How the box boots, trimmed for TCG
(kernel command line, initramfs, units), is boot.py. podnet itself is not in
the box: provisioning unpacks a venv built on the host (venv.py).

The box is rebuilt only when its inputs (packages, configuration, this
recipe) change: the input hash names the cached file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.backends.vagrant import boot

BOX_NAME = "podnet/debian12"
POOL_IMAGE_PREFIX = "podnet-VAGRANTSLASH-debian12_vagrant_box_image_"  # vagrant-libvirt's name for its disk
CACHE = Path("/var/cache/podnet-lab/box")
SUITE = "bookworm"
DISK_GB = 8
PART_OFFSET = 1 << 20  # the root partition starts at 1 MiB
RECIPE = 2  # 2: boot trimmed (boot.py), no ifupdown, podnet's venv built on the host
VAGRANT_PUB = Path("/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub")

# What every lab VM needs, baked in: nothing is installed at `vagrant up`.
PACKAGES = [
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "openssh-server",
    "sudo",
    "iproute2",
    "iptables",
    "procps",
    "tcpdump",
    "iputils-ping",  # for people debugging by hand
    "curl",
    "python3",  # podnet's venv (built on the host for this Python: lab/backends/vagrant/venv.py) runs on it
    "libbpf1",  # the agent loads the eBPF datapath with it
    "docker.io",
    "busybox-static",  # the lab image, docker-imported in the VM
    "bird2",  # the ToR and the agents' BGP speaker
    "etcd-server",  # the control node's kvstore
]

METADATA = {"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GB}
BOX_VAGRANTFILE = """Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
"""


class BoxError(RuntimeError):
    pass


@dataclass
class BoxResult:
    path: Path
    name: str
    built: bool  # False: an up-to-date box was reused
    seconds: float
    size_bytes: int


def inputs_hash() -> str:
    """What the box is made of; bump RECIPE when the build steps change what they produce."""
    digest = hashlib.sha256()
    boxed = [boot.FILES, boot.MASKED, boot.DISABLED, boot.SYSV_SCRIPTS, boot.ENABLED]
    digest.update(json.dumps([RECIPE, SUITE, DISK_GB, PACKAGES, *boxed, METADATA, BOX_VAGRANTFILE]).encode())
    return digest.hexdigest()[:16]


APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The Debian mirror apt already uses (deb822 or one-line sources)."""
    for path in sources:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if line.startswith("deb ") and len(words) > 2 and "security" not in words[1]:
                return words[1]
    return "http://deb.debian.org/debian"


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BoxError(f"{what} failed ({proc.returncode}):\n{tail}")


def build(*, force: bool = False, report: Callable[[str], None] = print) -> BoxResult:
    """Build (or reuse) the box and make sure vagrant knows it as BOX_NAME."""
    if os.geteuid() != 0:
        raise BoxError("building the box needs root (debootstrap, loop devices)")
    for tool in ("debootstrap", "mkfs.ext4", "extlinux", "parted", "qemu-img", "vagrant", "losetup"):
        if shutil.which(tool) is None:
            raise BoxError(f"{tool} is missing: run ci/bootstrap (it installs the Vagrant backend's packages)")
    started = time.monotonic()
    key = inputs_hash()
    box = CACHE / f"podnet-debian12-{key}.box"
    built = False
    if force or not box.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            work = Path(tmp)
            _rootfs(work / "rootfs", report)
            _disk(work, report)
            _package(work, box, report)
        built = True
    _register(box, key, report)
    return BoxResult(box, BOX_NAME, built, time.monotonic() - started, box.stat().st_size)


def _rootfs(root: Path, report: Callable[[str], None]) -> None:
    report(f"debootstrap {SUITE} with {len(PACKAGES)} packages from {mirror()} (a few minutes)")
    _run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror()],
        "debootstrap",
    )
    report("configuring the root filesystem")
    for rel, text in boot.FILES.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (root / "etc/sudoers.d/vagrant").chmod(0o440)
    (root / "etc/network/interfaces").unlink(missing_ok=True)  # networkd configures eth0
    # Each clone makes its own machine id (and so its own DHCP/dbus identity) at first boot.
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    chroot = ["chroot", str(root)]
    _run([*chroot, "useradd", "-m", "-s", "/bin/bash", "-G", "sudo", "vagrant"], "adding the vagrant user")
    # vagrant logs in as vagrant; the lab harness as root, with the same key.
    for home, owner in (("home/vagrant", "vagrant:vagrant"), ("root", "root:root")):
        ssh = root / home / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(VAGRANT_PUB.read_text())
        _run([*chroot, "chown", "-R", owner, f"/{home}/.ssh"], f"owning /{home}/.ssh")
    _trim_boot(root)
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def _trim_boot(root: Path) -> None:
    """What systemd starts at boot (boot.py), and an initramfs with only the root disk's modules."""
    chroot = ["chroot", str(root)]
    for name in boot.SYSV_SCRIPTS:
        (root / "etc/init.d" / name).unlink(missing_ok=True)
        for link in root.glob(f"etc/rc?.d/[SK][0-9][0-9]{name}"):
            link.unlink()
    # The packages' services stay off until provisioned; systemctl in a chroot only edits symlinks.
    for unit in boot.DISABLED:
        subprocess.run([*chroot, "systemctl", "disable", unit], capture_output=True, check=False)
    _run([*chroot, "systemctl", "mask", *boot.MASKED], "masking units")
    _run([*chroot, "systemctl", "enable", *boot.ENABLED], "enabling units")
    _run([*chroot, "update-initramfs", "-u", "-k", "all"], "update-initramfs (only the root disk's modules)")


def _disk(work: Path, report: Callable[[str], None]) -> None:
    report("making the disk: MBR, one ext4 partition (mkfs.ext4 -d), extlinux")
    raw = work / "disk.raw"
    part = work / "root.ext4"
    size = DISK_GB << 30
    with raw.open("wb") as f:
        f.truncate(size)
    _run(
        [
            "parted",
            "-s",
            str(raw),
            "mklabel",
            "msdos",
            "mkpart",
            "primary",
            "ext4",
            "1MiB",
            "100%",
            "set",
            "1",
            "boot",
            "on",
        ],
        "parted",
    )
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-L",
            "podnetroot",
            "-d",
            str(work / "rootfs"),
            str(part),
            f"{(size - PART_OFFSET) >> 20}M",
        ],
        "mkfs.ext4",
    )
    _run(
        ["dd", f"if={part}", f"of={raw}", "bs=1M", f"seek={PART_OFFSET >> 20}", "conv=notrunc,sparse"],
        "writing the partition",
    )
    part.unlink()
    _run(["dd", "if=/usr/lib/EXTLINUX/mbr.bin", f"of={raw}", "bs=440", "count=1", "conv=notrunc"], "writing the MBR")
    loop = subprocess.run(
        ["losetup", "--find", "--show", "--offset", str(PART_OFFSET), str(raw)], capture_output=True, text=True
    )
    if loop.returncode != 0:
        raise BoxError(f"losetup failed: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    mnt = work / "mnt"
    mnt.mkdir()
    try:
        _run(["mount", device, str(mnt)], "mounting the root partition")
        try:
            _run(["extlinux", "--install", str(mnt / "boot/extlinux")], "extlinux --install")
        finally:
            subprocess.run(["umount", str(mnt)], check=False)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def _package(work: Path, box: Path, report: Callable[[str], None]) -> None:
    report("qcow2 (compressed) and the .box")
    _run(["qemu-img", "convert", "-c", "-O", "qcow2", str(work / "disk.raw"), str(work / "box.img")], "qemu-img")
    (work / "disk.raw").unlink()
    (work / "metadata.json").write_text(json.dumps(METADATA))
    (work / "Vagrantfile").write_text(BOX_VAGRANTFILE)
    tmp = box.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name in ("metadata.json", "Vagrantfile", "box.img"):
            tar.add(work / name, arcname=name)
    tmp.rename(box)


def _register(box: Path, key: str, report: Callable[[str], None]) -> None:
    """`vagrant box add` unless vagrant already has this very box."""
    marker = CACHE / "registered"
    if marker.exists() and marker.read_text() == key:
        listed = subprocess.run(["vagrant", "box", "list"], capture_output=True, text=True).stdout
        if BOX_NAME in listed:
            return
    report(f"vagrant box add {BOX_NAME}")
    _run(["vagrant", "box", "add", "--force", "--name", BOX_NAME, str(box)], "vagrant box add")
    marker.write_text(key)
    _prune(box, report)


def _prune(current: Path, report: Callable[[str], None]) -> None:
    """Older boxes, and the disk images vagrant-libvirt made from them in libvirt's pool
    (one per box added; the next `vagrant up` uploads the new box's)."""
    for old in CACHE.glob("podnet-debian12-*.box"):
        if old != current:
            old.unlink()
            report(f"removed the older box {old.name}")
    if shutil.which("virsh") is None:
        return
    volumes = subprocess.run(["virsh", "-q", "vol-list", "default"], capture_output=True, text=True, check=False)
    domains = subprocess.run(["virsh", "-q", "list", "--all", "--name"], capture_output=True, text=True, check=False)
    if volumes.returncode != 0 or domains.returncode != 0 or domains.stdout.strip():
        return  # libvirt not running, or VMs that may still boot from an older image
    for line in volumes.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(POOL_IMAGE_PREFIX):
            subprocess.run(["virsh", "-q", "vol-delete", name, "--pool", "default"], capture_output=True, check=False)
            report(f"removed libvirt volume {name} (an older box's disk)")
