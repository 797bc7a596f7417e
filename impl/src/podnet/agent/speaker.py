"""The node's BGP speaker, as the agent's configuration asks for it (a light import: podnet-agent
starts the speaker before it imports the agent proper, so bird's connect delay runs meanwhile)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from podnet.agent.config import AgentConfig

if TYPE_CHECKING:
    from podnet.bgp.bird import BirdSpeaker


def speaker_for(config: AgentConfig, pod_cidr: str | None) -> BirdSpeaker | None:
    """The speaker for this node's BGP peers (None without peers or a node IP); it announces
    `pod_cidr`, or nothing until `announce()` is given one."""
    if not (config.bgp_peers() and config.node_ip):
        return None
    from podnet.bgp.bird import BGPConfig, BirdSpeaker, Peer  # only with BGP peers

    bgp = BGPConfig(
        config.node_ip,
        config.bgp_asn,
        tuple(Peer(address, asn) for address, asn in config.bgp_peers()),
        announce_node_ip=config.bgp_announce_node_ip,
        bfd_interval_ms=config.bgp_bfd_interval_ms,
        bfd_multiplier=config.bgp_bfd_multiplier,
        import_default=config.bgp_import_default,
    )
    return BirdSpeaker(bgp, pod_cidr, Path(config.socket).parent / "bgp")
