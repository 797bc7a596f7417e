"""The CNI suite: rules (`rules_*.py`) over a subject exec'd as a runtime does (`context.py`), the
spec as data (`spec.py`), IPAM probes, the CI subjects and their known deviations, the runner."""
