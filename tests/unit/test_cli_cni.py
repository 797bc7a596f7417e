"""`podnet cni install`: the compiled plugin into the bin dir, a conflist naming the agent socket."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from podnet.cli import main


def test_install_copies_the_binary_and_writes_the_conflist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    argv = ["cni", "install", "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir), "--socket", "/run/p.sock"]
    assert main(argv) == 0
    plugin = bin_dir / "podnet"
    assert os.access(plugin, os.X_OK)
    version = subprocess.run([plugin], env={"CNI_COMMAND": "VERSION"}, capture_output=True, text=True, check=True)
    assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]
    conf = json.loads((conf_dir / "10-podnet.conflist").read_text())
    assert conf == {
        "cniVersion": "1.0.0",
        "name": "podnet",
        "plugins": [{"type": "podnet", "agentSocket": "/run/p.sock"}],
    }
    assert main(argv) == 0  # idempotent
    capsys.readouterr()
    assert main([*argv[:-1], "/other.sock"]) == 1
    assert "exists with other contents" in capsys.readouterr().err
    assert main([*argv[:-1], "/other.sock", "--force"]) == 0
