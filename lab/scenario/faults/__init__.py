"""Fault kinds, one module each (see lab.scenario.kinds); `FAULTS` is every kind found here.

A `fault` step applies one; it stays until a `restore` step takes it back or,
at the latest, until the scenario's end (after its cleanup steps), so a
failed scenario never leaves a fault behind.
"""

import sys

from lab.scenario.kinds import FaultKind, discover

FAULTS: dict[str, FaultKind] = discover(sys.modules[__name__], FaultKind)  # type: ignore[type-arg]
