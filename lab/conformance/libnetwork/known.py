"""Known deviations of the libnetwork suite's CI subjects, and why (none: podnet passes every rule)."""

from __future__ import annotations

KNOWN: dict[str, dict[str, str]] = {}
