"""Every file in scenarios/ is one test: `pytest tests/lab` is `lab run`, with JUnit output."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.scenario import all_scenarios, load_scenario
from tests.lab.conftest import Session

pytestmark = pytest.mark.root


@pytest.mark.parametrize("path", all_scenarios(), ids=lambda p: Path(p).stem)
def test_scenario(path: Path, lab_session: Session) -> None:
    scenario = load_scenario(path)  # a bad file fails here, naming file, step and field
    if "netns" not in scenario.backends:
        pytest.skip(f"{scenario.name} declares backends {scenario.backends}: not for the netns backend")
    run = lab_session.runner.run(scenario, lab_session.out / scenario.name)
    lab_session.runs.append(run)
    lab_session.runner.reset()
    assert run.passed, run.failure
