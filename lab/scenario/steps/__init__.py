"""Step kinds, one module each (see lab.scenario.kinds); `STEPS` is every kind found here."""

import sys

from lab.scenario.kinds import StepKind, discover

STEPS: dict[str, StepKind] = discover(sys.modules[__name__], StepKind)  # type: ignore[type-arg]
