"""What podnet-agent imports before it serves (issue 17 item 7: the agent's start is its imports):
nothing it does not use — not pyroute2 (podnet.datapath.rtnl serves the hot path), not h11 (the
agent's own HTTP client code is imported for its errors, never used to send)."""

from __future__ import annotations

import subprocess
import sys

# As bench/lab_up.py times them: podnet.cmd.agent imports the rest once it runs.
AGENT_MODULES = (
    "podnet.cmd.agent, podnet.agent.service, podnet.agent.server, podnet.agent.waiting, podnet.datapath.ebpf"
)
NOT_NEEDED = ("pyroute2", "h11")


def test_the_agent_imports_no_library_it_does_not_use() -> None:
    code = f"import sys, {AGENT_MODULES}; print(' '.join(m for m in {NOT_NEEDED!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == []
