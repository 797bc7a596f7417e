"""Check kinds, one module each (see lab.scenario.kinds); `CHECKS` is every kind found here."""

import sys

from lab.scenario.kinds import CheckKind, discover

CHECKS: dict[str, CheckKind] = discover(sys.modules[__name__], CheckKind)  # type: ignore[type-arg]
