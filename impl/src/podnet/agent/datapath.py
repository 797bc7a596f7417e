"""What the agent knows about its datapath beyond the protocol: why it failed or fell back."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.agent.errors import BadRequestError
from podnet.datapath.protocol import BpfAccess, Datapath


@dataclass
class DatapathStatus:
    error: str | None = None  # setting up the host device failed
    note: str | None = None  # why the eBPF datapath is not in use, when it is not

    def suffix(self) -> str:
        return f" ({self.note})" if self.note else ""


def require_bpf(datapath: Datapath, status: DatapathStatus) -> BpfAccess:
    """The datapath's BPF maps, or a 400 saying this node has none."""
    bpf = datapath.bpf()
    if bpf is None:
        raise BadRequestError(f"this node runs the {datapath.mode} datapath, which has no BPF maps" + status.suffix())
    return bpf
