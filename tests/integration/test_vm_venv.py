"""The VMs' venv: built here with the box's Python for /opt/podnet, with no pip and no compiling in a VM.

Built from this tree's wheelhouse into a staging directory (the same build
`lab up --backend vagrant` stages); it runs from there too (its interpreter is
this machine's /usr/bin/python3, the box's), which checks everything but the
place: that its scripts, pycs and pyvenv.cfg name /opt/podnet is checked here,
and that it runs at /opt/podnet inside a VM, by tests/vagrant.
"""

from __future__ import annotations

import marshal
import subprocess
import tarfile
from pathlib import Path

import pytest

from lab.backends.vagrant import venv
from lab.deploy import wheelhouse


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not venv.VM_PYTHON.exists():
        pytest.skip(f"{venv.VM_PYTHON} (Debian 12's python3) is not on this machine")
    house, _ = wheelhouse()
    dest = tmp_path_factory.mktemp("stage") / "podnet"
    venv.build(house, dest)
    return dest


def test_it_names_opt_podnet_everywhere(built: Path) -> None:
    for script in ("podnet", "podnet-agent", "podnet-docker", "podnet-operator"):
        assert (built / "bin" / script).read_text().startswith("#!/opt/podnet/bin/python\n"), script
    cfg = (built / "pyvenv.cfg").read_text()
    assert "home = /usr/bin" in cfg and str(built) not in cfg
    assert (built / "bin" / "python3").readlink() == venv.VM_PYTHON
    found = subprocess.run(["grep", "-rlI", "--", str(built), str(built)], capture_output=True, text=True)
    assert found.stdout == "", f"files still naming the staging directory:\n{found.stdout}"
    assert not (built / "bin" / "pip").exists()  # nothing is ever installed in a VM


def test_every_module_is_compiled_for_opt_podnet(built: Path) -> None:
    """unchecked-hash pycs (valid whatever the unpacked files' times), compiled as /opt/podnet/…"""
    site = built / "lib" / "python3.11" / "site-packages"
    sources = [p for p in (site / "podnet").rglob("*.py")]
    assert sources
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        data = pyc.read_bytes()
        assert int.from_bytes(data[4:8], "little") == 0b01, f"{pyc} is not an unchecked-hash pyc"
        code = marshal.loads(data[16:])
        assert code.co_filename == "/opt/podnet/" + str(source.relative_to(built)), code.co_filename


def test_it_runs_podnet_and_writes_no_pyc(built: Path) -> None:
    before = sorted(built.rglob("*.pyc"))
    proc = subprocess.run(
        [str(built / "bin" / "python"), "-c", "import podnet.cmd.agent, podnet.cmd.docker, podnet.cmd.operator"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(built.rglob("*.pyc")) == before


def test_the_pack_unpacks_at_the_venvs_root(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "venv.tar.gz"
    venv.pack(built, out)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        python = tar.getmember("bin/python3")
    assert "pyvenv.cfg" in names and "bin/podnet-agent" in names
    assert python.issym() and python.linkname == str(venv.VM_PYTHON)
