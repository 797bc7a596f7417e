"""The podnet lab harness (topology, backends, deploy, scenarios, reports).

Only the package frame exists so far; the harness itself is issue 4.
"""
