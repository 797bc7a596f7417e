"""The fuzz suite (issue 13): podnet's three interfaces given generated valid and hostile input.

    values.py      the node the suite talks to (pod CIDR, ids) and hostile values shared by all three
    outcomes.py    outcome classes, the tally printed at the end, state snapshots and safety checks
    rest.py        agent REST requests generated from docs/agent-openapi.json
    libnetwork.py  libnetwork requests shaped like the recorded dockerd requests (tests/fixtures/libnetwork)
    cni.py         CNI environments and network configurations, run through the real C shim
    conftest.py    the running agent, plugin and shim; the budgets; the summary table

The property, for every input: a well-formed protocol error or a success, never a 500, a traceback
or a wait beyond the deadline; a refused input changes nothing; an accepted one changes only what it
is about; and the store invariants hold afterwards.

`tox -e unit` runs a bounded pass (seconds), `tox -e fuzz` a longer one (PODNET_FUZZ=long). Both are
derandomized (the same inputs on every run). PODNET_FUZZ_SURVEY=1 records findings instead of failing on
the first, to see the whole table.
"""
