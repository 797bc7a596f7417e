"""Fixtures of the conformance suites' own tests: plugins that pass every rule, mutants of them that
each break exactly one, and a fake kernel to run them on without root. Test fixtures, not shipped."""
