"""LabNode.capture: tcpdump's start-up lines read until it listens (on `any` a note on the link type
comes first), its refusal reported whole."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from lab.backends.base import NodeError
from lab.backends.node import LabNode
from tests.fakelab import FakeNode

FAKE_TCPDUMP = """
import sys
for line in sys.argv[1].split("|"):
    print(line, file=sys.stderr, flush=True)
if "listening" in sys.argv[1]:
    sys.stdin.readline()
"""


class ScriptedNode(FakeNode):
    """Runs a stand-in for tcpdump saying `script` (lines split by |) on stderr."""

    script: str = ""

    def argv_for(self, argv: Sequence[str]) -> list[str]:
        import sys

        return [sys.executable, "-c", FAKE_TCPDUMP, self.script]


def node(tmp_path: Path, script: str) -> ScriptedNode:
    n = ScriptedNode("spine1", tmp_path)
    n.script = script
    return n


def test_capture_on_any_starts_after_the_link_type_note(tmp_path: Path) -> None:
    """Failed before: the first line had to say 'listening on', and on `any` it says the link type."""
    spine = node(tmp_path, "tcpdump: data link type LINUX_SLL2|listening on any, link-type LINUX_SLL2")
    with LabNode.capture(spine, "any", tmp_path / "x.pcap"):  # the real one (FakeNode's writes packets)
        pass


def test_capture_refused_names_what_tcpdump_said(tmp_path: Path) -> None:
    spine = node(tmp_path, "tcpdump: nope: No such device exists")
    refused = "tcpdump on spine1/nope did not start: tcpdump: nope: No such device"
    with pytest.raises(NodeError, match=refused), LabNode.capture(spine, "nope", tmp_path / "x.pcap"):
        pass
