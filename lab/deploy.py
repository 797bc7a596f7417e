"""Build the podnet wheel from impl/ and install it into a lab venv.

The venv is cached by a hash of impl/'s sources (/var/cache/podnet-lab), so a
second `lab up` with unchanged sources starts in seconds; a changed source
tree gets a new wheel and a new venv. Builds take a lock (several labs or test
runs may start at once), and another tree's venv is removed only once it has
gone unused for a day (it may be another checkout's, in use).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab import paths

CACHE = Path("/var/cache/podnet-lab")
STALE_S = 24 * 3600


def impl() -> Path:
    """The stack's sources (impl/ of the checkout)."""
    return paths.repo() / "impl"


class DeployError(RuntimeError):
    pass


def source_hash() -> str:
    digest = hashlib.sha256()
    src = impl()
    files = [src / "pyproject.toml", src / "setup.py", *sorted((src / "src" / "podnet").rglob("*"))]
    for path in files:
        # podnet-cni and the BPF object, compiled in a source tree: not sources
        built = path.parent.name in ("bin", "obj")
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc") and not built:
            digest.update(str(path.relative_to(src)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise DeployError(f"{what} failed ({proc.returncode}):\n{tail}")


def build_wheel(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("podnet-*.whl"):
        old.unlink()
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(impl())],
        "building the podnet wheel",
    )
    wheels = sorted(dest.glob("podnet-*.whl"))
    if not wheels:
        raise DeployError(f"building the podnet wheel produced nothing in {dest}")
    return wheels[-1]


@contextmanager
def _building() -> Iterator[None]:
    """One builder at a time on this machine (several labs or test runs may start together)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prune(keep: set[str]) -> None:
    """Venvs and wheelhouses of other source trees unused for a day (others may be in use right now)."""
    for stale in [*CACHE.glob("venv-*"), *CACHE.glob("wheelhouse-*")]:
        marker = stale / ".complete"
        if stale.name not in keep and (not marker.exists() or time.time() - marker.stat().st_mtime > STALE_S):
            shutil.rmtree(stale, ignore_errors=True)


def wheelhouse() -> tuple[Path, bool]:
    """podnet's wheel and every dependency's, for installing with no index (VMs are offline);
    (directory, built_now). Cached by the source hash."""
    with _building():
        return _wheelhouse()


def _wheelhouse() -> tuple[Path, bool]:
    house = CACHE / f"wheelhouse-{source_hash()}"
    if (house / ".complete").exists():
        (house / ".complete").touch()
        return house, False
    shutil.rmtree(house, ignore_errors=True)
    wheel = build_wheel(house)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(house), str(wheel)], "fetching podnet's dependencies")
    (house / ".complete").write_text(wheel.name + "\n")
    return house, True


def lab_venv() -> tuple[Path, bool]:
    """The venv with this source tree's wheel installed; (python, built_now)."""
    with _building():
        return _lab_venv()


def _lab_venv() -> tuple[Path, bool]:
    key = source_hash()
    venv = CACHE / f"venv-{key}"
    python = venv / "bin" / "python"
    if python.exists() and (venv / ".complete").exists():
        (venv / ".complete").touch()
        return python, False
    shutil.rmtree(venv, ignore_errors=True)
    house, _ = _wheelhouse()
    wheel = next(house.glob("podnet-*.whl"))
    _run([sys.executable, "-m", "venv", str(venv)], "creating the lab venv")
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(house), str(wheel)],
        f"installing {wheel.name} into {venv}",
    )
    (venv / ".complete").write_text(wheel.name + "\n")
    _prune({venv.name, house.name})
    return python, True


def cni_binary(python: str | Path) -> Path:
    """The compiled podnet-cni (what goes into a CNI bin dir) of the podnet installed for `python`."""
    proc = subprocess.run(
        [str(python), "-c", "from podnet.cni.shim import binary; print(binary())"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DeployError(f"locating podnet-cni for {python}: {proc.stderr.strip()[-500:]}")
    return Path(proc.stdout.strip())
