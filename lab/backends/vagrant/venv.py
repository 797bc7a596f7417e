"""podnet's venv for the VMs: built on this machine, unpacked at /opt/podnet in each VM.

No pip runs inside a VM (under TCG, installing the wheelhouse took minutes per
VM, and every first import compiled its module). Instead the venv is made here
with the box's interpreter — Debian 12's `/usr/bin/python3`, the same Python
3.11 as the box's, which is debootstrapped from the same suite — in a staging
directory that stands for /opt/podnet:

1. `python3 -m venv --without-pip` (the VMs never install anything);
2. podnet's wheelhouse installed into it with no index (this machine's pip,
   driving the venv's interpreter with `pip --python`), compiling nothing;
3. relocated: console-script shebangs, the activate scripts and pyvenv.cfg name
   /opt/podnet instead of the staging directory;
4. every module byte-compiled here, as `unchecked-hash` pycs whose code says
   /opt/podnet/… (tracebacks in a VM name the files there; a pyc of that kind is
   used without looking at the source's timestamp, so unpacking keeps them valid);
5. packed as one .tar.gz, cached by podnet's source hash beside the wheelhouse.

So the box is not rebuilt when impl/ changes, and a changed impl/ costs one
venv build here, not one pip install per VM.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from lab.deploy import CACHE, source_hash, wheelhouse

VENV = "/opt/podnet"  # where provision.sh unpacks (or mounts) it in each VM
DISK_LABEL = "podnetvenv"  # the venv disk's ext4 label: provision.sh mounts LABEL=podnetvenv
INSTALLED = ".installed"  # in the venv: which venv this is (provision.sh compares it with the staged one)
VM_PYTHON = Path("/usr/bin/python3")  # the box's interpreter path; this machine's must be the same Python
PYTHON_MINOR = (3, 11)  # Debian 12's python3, which the box has
RECIPE = 2  # bump when the steps below change what they produce
STALE_S = 24 * 3600


class VenvError(RuntimeError):
    pass


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise VenvError(f"{what} failed ({proc.returncode}):\n{tail}")


def check_python(python: Path = VM_PYTHON) -> None:
    """The interpreter the venv is made with must be the box's Python (same minor version)."""
    want = ".".join(map(str, PYTHON_MINOR))
    if not python.exists():
        raise VenvError(f"{python} is missing: the VMs' venv is made with it (Python {want}, as the box's Debian 12)")
    proc = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    found = proc.stdout.strip()
    if proc.returncode != 0 or found != want:
        raise VenvError(
            f"{python} is Python {found or '?'}; the VMs' venv needs Python {want}, the box's (Debian 12): "
            "build it on Debian 12"
        )


def relocate(venv: Path, prefix: str) -> list[Path]:
    """Make a venv made at `venv` name `prefix` instead: scripts in bin/ (shebangs, activate) and
    pyvenv.cfg. Returns the files changed."""
    old, new = str(venv).encode(), prefix.encode()
    changed = []
    for path in [*sorted((venv / "bin").iterdir()), venv / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data:
            path.write_bytes(data.replace(old, new))
            changed.append(path)
    return changed


def build(house: Path, dest: Path, *, python: Path = VM_PYTHON, prefix: str = VENV) -> None:
    """Make the venv in `dest` (empty or absent), standing for `prefix` in the VM."""
    check_python(python)
    wheels = sorted(house.glob("podnet-*.whl"))
    if not wheels:
        raise VenvError(f"no podnet wheel in {house}")
    _run([str(python), "-I", "-m", "venv", "--without-pip", str(dest)], f"creating a venv with {python}")
    _run(
        [
            sys.executable, "-m", "pip", "--python", str(dest / "bin" / "python"), "--isolated",
            "install", "-q", "--no-index", "--no-compile", "--no-warn-script-location",
            "--find-links", str(house), str(wheels[-1]),
        ],
        f"installing {wheels[-1].name} into the VMs' venv (pip >= 22.3 runs it with `--python`)",
    )  # fmt: skip
    relocate(dest, prefix)
    _run(
        [
            str(python), "-I", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
            "-s", str(dest), "-p", prefix, str(dest / "lib"),
        ],
        "byte-compiling the VMs' venv",
    )  # fmt: skip


def pack(venv: Path, out: Path) -> None:
    """The venv as a .tar.gz of /opt/podnet's contents (symlinks and times kept)."""
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for path in sorted(venv.iterdir()):
            tar.add(path, arcname=path.name)
    tmp.rename(out)


def pack_disk(venv: Path, out: Path) -> None:
    """The venv as a raw ext4 image (`mkfs.ext4 -d`: no mount, no loop device), read-only in the VM:
    no journal, no reserved blocks, sized to its contents with room for the metadata."""
    used = sum(p.lstat().st_size for p in venv.rglob("*"))
    files = sum(1 for _ in venv.rglob("*"))
    size_mib = (used * 13 // 10 + files * 4096) // 2**20 + 16
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as image:
        image.truncate(size_mib * 2**20)
    _run(
        [
            "mkfs.ext4", "-q", "-F", "-L", DISK_LABEL, "-O", "^has_journal", "-m", "0",
            "-N", str(files + 256), "-E", "root_owner=0:0", "-d", str(venv), str(tmp),
        ],
        "making the VMs' venv disk (mkfs.ext4 -d, e2fsprogs >= 1.43)",
    )  # fmt: skip
    tmp.chmod(0o644)  # qemu runs as libvirt-qemu: it reads the image, never writes it
    tmp.rename(out)


def disk_for(packed: Path) -> Path:
    """The venv disk beside the packed venv `vm_venv()` returned."""
    return packed.with_name(packed.name.removesuffix(".tar.gz") + ".img")


def vm_venv() -> tuple[Path, bool]:
    """The packed venv for this source tree: (path of the .tar.gz, built_now); its disk image is
    `disk_for(path)`. Cached; one builder at a time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".vm-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        house, _ = wheelhouse()
        out = CACHE / f"vm-venv-{source_hash()}-{RECIPE}.tar.gz"
        if out.exists() and disk_for(out).exists():
            os.utime(out)
            os.utime(disk_for(out))
            return out, False
        with tempfile.TemporaryDirectory(dir=CACHE, prefix=".vm-venv-") as tmp:
            venv = Path(tmp) / "podnet"
            build(house, venv)
            (venv / INSTALLED).write_text(out.name + "\n")
            pack(venv, out)
            pack_disk(venv, disk_for(out))
        _prune(out)
        return out, True


def _prune(current: Path) -> None:
    """Other source trees' venvs unused for a day (another checkout may be using one right now)."""
    for old in [*CACHE.glob("vm-venv-*.tar.gz"), *CACHE.glob("vm-venv-*.img")]:
        if old not in (current, disk_for(current)) and time.time() - old.stat().st_mtime > STALE_S:
            old.unlink(missing_ok=True)
