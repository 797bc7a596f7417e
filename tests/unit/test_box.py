"""The box recipe's inputs: what goes in, and when a cached box is reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.backends.vagrant import box


def test_the_hash_names_the_inputs_and_changes_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    first = box.inputs_hash()
    assert first == box.inputs_hash() and len(first) == 16
    monkeypatch.setattr(box, "PACKAGES", [*box.PACKAGES, "strace"])
    assert box.inputs_hash() != first
    monkeypatch.undo()
    monkeypatch.setattr(box, "RECIPE", box.RECIPE + 1)
    assert box.inputs_hash() != first


def test_every_lab_node_need_is_baked_in() -> None:
    for needed in ("docker.io", "bird2", "etcd-server", "libbpf1", "python3-venv", "busybox-static", "tcpdump"):
        assert needed in box.PACKAGES
    assert "net.ifnames=0" in box.FILES["boot/extlinux/extlinux.conf"]  # eth0 is the management NIC
    assert "ssh-keygen -A" in box.FILES["etc/systemd/system/ssh-host-keys.service"]
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
