"""Conformance suites anyone can run against any plugin: the CNI spec (`cni/`) and the libnetwork
remote driver API (`libnetwork/`), each rule citing the text it enforces, on namespaces the suite
makes (`kernel.py`); results as data (`model.py`), reports (`report.py`), `lab conformance` (`cli.py`)."""
