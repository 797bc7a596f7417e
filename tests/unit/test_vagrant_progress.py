"""Each VM's progress through `vagrant up`, read from vagrant's output, and the VMs' venv relocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.backends.vagrant.progress import VagrantProgress, overlap
from lab.backends.vagrant.venv import VenvError, check_python, relocate

# What vagrant-libvirt and provision.sh print, as in a real vagrant-up.log (abridged).
LOG = [
    (0.5, "Bringing machine 'tor' up with 'libvirt' provider..."),
    (1.0, "==> node1: Creating image (snapshot of base box volume)."),
    (1.0, "==> node1:  -- Memory:            768M"),
    (2.0, "==> node1: Starting domain."),
    (3.0, "==> tor: Starting domain."),
    (4.0, "==> node1: Waiting for domain to get an IP address..."),
    (30.0, "==> node1: Waiting for machine to boot. This may take a few minutes..."),
    (31.0, "    node1: Warning: Connection refused. Retrying..."),
    (40.0, "==> node1: Machine booted and ready!"),
    (41.0, "==> node1: Running provisioner: podnet-upload (file)..."),
    (45.0, "==> node1: Running provisioner: podnet (shell)..."),
    (46.0, "    node1: podnet provision (node1, worker, 0s): step: network"),
    (47.0, "    node1: podnet provision (node1, worker, 1s): underlay 192.168.50.2/30 on uplink"),
    (50.0, "    node1: podnet provision (node1, worker, 4s): step: docker"),
    (70.0, "    node1: podnet provision (node1, worker, 24s): done"),
    (71.0, "==> tor: Machine booted and ready!"),
]


def test_each_vm_is_followed_through_boot_and_provisioning(tmp_path: Path) -> None:
    progress = VagrantProgress(tmp_path / "vagrant-up.log", ["tor", "node1", "node2"], started=0.0)
    seen = []
    for at, line in LOG:
        if progress.feed(line, at):
            seen.append((progress.vms["node1"].phase, progress.vms["tor"].phase))
    assert ("booting (until sshd answers)", "booting") in seen
    assert ("provisioning: docker", "booting") in seen
    node1 = progress.vms["node1"]
    assert node1.phase == "provisioned" and node1.boot == [2.0, 40.0] and node1.provision == [41.0, 70.0]
    assert progress.vms["node2"].phase == "waiting for vagrant"
    progress.set_ready("node1")
    assert progress.summary().startswith("tor booted · node1 ready · node2 waiting for vagrant")
    timings = {t.what: (t.start, t.seconds) for t in progress.timings()}
    assert timings["node1: boot"] == (2.0, 38.0) and timings["node1: provision"] == (41.0, 29.0)
    assert "node1: ready" in timings and timings["tor: boot"] == (3.0, 68.0)
    assert "node2: boot" not in timings


def test_the_log_is_read_as_vagrant_writes_it(tmp_path: Path) -> None:
    log = tmp_path / "vagrant-up.log"
    progress = VagrantProgress(log, ["node1"], started=0.0)
    assert not progress.poll()  # no output yet
    log.write_text("==> node1: Starting domain.\n==> node1: Waiting for machine")
    assert progress.poll() and progress.vms["node1"].phase == "booting"
    with log.open("a") as f:
        f.write(" to boot. This may take a few minutes...\n")
    assert progress.poll() and progress.vms["node1"].phase == "booting (until sshd answers)"
    assert not progress.poll()


def test_overlap_is_how_many_ran_at_once() -> None:
    assert overlap([(0, 10), (0, 10), (5, 15)]) == (30, 15, 2.0)
    assert overlap([(0, 10), (10, 20)]) == (20, 20, 1.0)
    assert overlap([]) == (0.0, 0.0, 0.0)


def test_a_venv_made_elsewhere_names_its_final_place(tmp_path: Path) -> None:
    venv = tmp_path / "stage" / "podnet"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "podnet-agent").write_text(f"#!{venv}/bin/python\nfrom podnet.cmd.agent import main\n")
    (venv / "bin" / "activate").write_text(f'VIRTUAL_ENV="{venv}"\nexport VIRTUAL_ENV\n')
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = /usr/bin/python3 -m venv {venv}\n")
    changed = relocate(venv, "/opt/podnet")
    assert sorted(p.name for p in changed) == ["activate", "podnet-agent", "pyvenv.cfg"]
    assert (venv / "bin" / "podnet-agent").read_text().startswith("#!/opt/podnet/bin/python\n")
    assert 'VIRTUAL_ENV="/opt/podnet"' in (venv / "bin" / "activate").read_text()
    assert str(venv) not in (venv / "pyvenv.cfg").read_text()
    assert (venv / "bin" / "python").readlink() == Path("/usr/bin/python3")


def test_the_venv_needs_the_boxs_python(tmp_path: Path) -> None:
    with pytest.raises(VenvError, match="missing"):
        check_python(tmp_path / "python3")
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 3.9\n")
    fake.chmod(0o755)
    with pytest.raises(VenvError, match=r"is Python 3\.9; the VMs' venv needs Python 3\.11"):
        check_python(fake)


def test_the_venv_disk_holds_the_venv_under_its_label(tmp_path: Path) -> None:
    """The image a VM on this machine mounts at /opt/podnet: ext4 labelled podnetvenv, no journal
    (mounted read-only), every file of the venv in it with its mode; read back with debugfs."""
    import subprocess

    from lab.backends.vagrant.venv import DISK_LABEL, disk_for, pack_disk

    venv = tmp_path / "podnet"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "podnet-agent").write_text("#!/opt/podnet/bin/python\n")
    (venv / "bin" / "podnet-agent").chmod(0o755)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    (venv / ".installed").write_text("vm-venv-abc-2.tar.gz\n")
    packed = tmp_path / "vm-venv-abc-2.tar.gz"
    assert disk_for(packed) == tmp_path / "vm-venv-abc-2.img"
    pack_disk(venv, disk_for(packed))

    def debugfs(request: str) -> str:
        return subprocess.run(
            ["debugfs", "-R", request, str(disk_for(packed))], capture_output=True, text=True, check=True
        ).stdout

    header = subprocess.run(["dumpe2fs", "-h", str(disk_for(packed))], capture_output=True, text=True).stdout
    assert f"Filesystem volume name:   {DISK_LABEL}" in header
    assert "has_journal" not in header.split("Filesystem features:")[1].splitlines()[0]
    assert debugfs("cat /.installed") == "vm-venv-abc-2.tar.gz\n"
    assert debugfs("cat /bin/podnet-agent") == "#!/opt/podnet/bin/python\n"
    assert "Mode:  0755" in debugfs("stat /bin/podnet-agent")
    assert "/usr/bin/python3" in debugfs("stat /bin/python")
    assert disk_for(packed).stat().st_mode & 0o777 == 0o644  # qemu (libvirt-qemu) reads it
