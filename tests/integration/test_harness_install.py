"""The harness as a user installs it: both wheels (podnet and the lab) into a fresh venv, outside a checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_installed_lab_works_outside_a_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT), str(ROOT / "impl")],
        tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q"]
    installed = run([*pip, *map(str, sorted(wheels.glob("*.whl")))], tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]
    lab = str(env_dir / "bin" / "lab")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    helped = run([lab, "--help"], elsewhere)
    assert helped.returncode == 0 and "schema" in helped.stdout, helped.stderr
    schema = run([lab, "schema", "scenario"], elsewhere)
    assert schema.returncode == 0, schema.stderr
    assert "docker" in json.loads(schema.stdout)["$defs"]["Step"]["properties"]  # a step kind, from its module
    topology = run([lab, "schema", "topology"], elsewhere)
    assert topology.returncode == 0, topology.stderr
    # the shipped topologies are package data; what needs a checkout says so at once
    scenarios = run([lab, "run", "--artifacts", str(tmp_path / "a")], elsewhere)
    assert scenarios.returncode == 2 and "run it from inside one, or pass --repo PATH" in scenarios.stderr, scenarios
    found = run([lab, "--repo", str(ROOT), "schema", "scenario"], elsewhere)
    assert found.returncode == 0
