"""The box recipe's inputs: what goes in, and when a cached box is reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.backends.vagrant import boot, box


def test_the_hash_names_the_inputs_and_changes_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    first = box.inputs_hash()
    assert first == box.inputs_hash() and len(first) == 16
    monkeypatch.setattr(box, "PACKAGES", [*box.PACKAGES, "strace"])
    assert box.inputs_hash() != first
    monkeypatch.undo()
    monkeypatch.setattr(box, "RECIPE", box.RECIPE + 1)
    assert box.inputs_hash() != first


def test_every_lab_node_need_is_baked_in() -> None:
    for needed in ("docker.io", "bird2", "etcd-server", "libbpf1", "python3", "busybox-static", "tcpdump"):
        assert needed in box.PACKAGES
    assert "net.ifnames=0" in boot.FILES["boot/extlinux/extlinux.conf"]  # eth0 is the management NIC
    assert "ssh-keygen -q -t ed25519" in boot.FILES["etc/systemd/system/ssh-host-keys.service"]
    assert box.METADATA == {"provider": "libvirt", "format": "qcow2", "virtual_size": box.DISK_GB}


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        (
            "sources.list.d/debian.sources",
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
            "Types: deb\nURIs: http://mirror.example/debian-security\n",
            "http://mirror.example/debian",
        ),
        ("sources.list", "deb http://ftp.example/debian bookworm main\n", "http://ftp.example/debian"),
    ],
)
def test_the_mirror_is_the_one_apt_uses(tmp_path: Path, name: str, text: str, want: str) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert box.mirror((tmp_path / "absent", path)) == want


def test_without_sources_the_mirror_is_debians(tmp_path: Path) -> None:
    assert box.mirror((tmp_path / "absent",)) == "http://deb.debian.org/debian"


def test_the_boot_is_trimmed_for_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel line, the initramfs and the units are the box's inputs: changing one rebuilds it."""
    extlinux = boot.FILES["boot/extlinux/extlinux.conf"]
    append = next(line.split(None, 1)[1] for line in extlinux.splitlines() if line.strip().startswith("APPEND"))
    assert append.split() == boot.KERNEL_ARGS
    assert {"quiet", "mitigations=off", "fsck.mode=skip", "apparmor=0"} <= set(boot.KERNEL_ARGS)
    assert boot.FILES["etc/initramfs-tools/conf.d/podnet"].startswith("MODULES=list")
    assert "virtio_blk" in boot.FILES["etc/initramfs-tools/modules"].split()
    assert "apt-daily.timer" in boot.MASKED and "containerd.service" in boot.DISABLED
    assert "ManageForeignRoutes=no" in boot.FILES["etc/systemd/networkd.conf.d/podnet.conf"]
    first = box.inputs_hash()
    monkeypatch.setattr(boot, "MASKED", [*boot.MASKED, "cron.service"])
    assert box.inputs_hash() != first
