"""What the reference plugins are known to fail, and why: a real deviation from the spec, or a
version of it they do not claim. A failure listed here is reported as explained; one that is not
fails the run, and so does an explanation whose rule passes (a stale entry)."""

from __future__ import annotations

KNOWN: dict[str, dict[str, str]] = {}
