"""Every file in scenarios/ is one test: `pytest tests/lab` is `lab run`, with JUnit output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab import paths
from lab.backends import registry
from lab.scenario.model import load_scenario
from tests.lab.conftest import LabPool

pytestmark = pytest.mark.root


def topology_of(path: Path) -> str:
    try:
        return str((yaml.safe_load(path.read_text()) or {}).get("topology", "default"))
    except (yaml.YAMLError, AttributeError):
        return "default"  # a broken file still gets its item, and fails there with the reason


def ordered() -> list[Path]:
    """Grouped by topology (default first), so each lab comes up once."""
    return sorted(paths.all_scenarios(), key=lambda p: (topology_of(p) != "default", topology_of(p), p.name))


@pytest.mark.parametrize("path", ordered(), ids=lambda p: Path(p).stem)
def test_scenario(path: Path, labs: LabPool) -> None:
    scenario = load_scenario(path)  # a bad file fails here, naming file, step and field
    why = scenario.why_not(labs.backend, registry.backend(labs.backend).lab.capabilities)
    if why:
        pytest.skip(f"{scenario.name}: {why}")
    run = labs.get(scenario.topology).run(scenario)
    assert run.passed, run.failure
