"""The ToR's BGP router: Debian's bird2 in the ToR namespace, one eBGP session per node."""

from __future__ import annotations

from lab.netns import NetnsNode
from lab.node import LabNode, wait_for
from lab.topology import Topology

TOR_ASN = 65000


def node_asn(index: int) -> int:
    return 65001 + index


def tor_config(topology: Topology) -> str:
    workers = {w.name for w in topology.workers()}
    links = [link for link in topology.links() if link.node in workers]  # the control node speaks no BGP
    lines = [
        f"router id {links[0].tor_ip};",
        "log stderr all;",
        "protocol device { scan time 10; }",
        "protocol kernel {",
        "  ipv4 { import none; export where source = RTS_BGP; };",  # pod CIDRs into the ToR's kernel table
        "}",
    ]
    for link in links:
        lines += [
            f"protocol bgp {link.node} {{",
            f"  local {link.tor_ip} as {TOR_ASN};",
            f"  neighbor {link.node_ip} as {node_asn(link.index)};",
            "  hold time 9; keepalive time 3;",
            # bird's defaults make a reconnect wait ~73 s; seconds are what a lab needs
            "  connect retry time 3; error wait time 1, 10; error forget time 10;",
            "  ipv4 { import all; export none; };",
            "}",
        ]
    return "\n".join(lines) + "\n"


def start_tor_bird(tor: NetnsNode, topology: Topology) -> None:
    conf = tor.path("bird.conf")
    conf.write_text(tor_config(topology))
    check = tor.cmd("bird", "-p", "-c", str(conf), check=False)
    if check.returncode != 0:
        raise RuntimeError(f"bird rejected {conf}: {check.stderr.strip()}")
    ctl = tor.path("run", "bird.ctl")
    tor.start("bird", ["bird", "-f", "-c", str(conf), "-s", str(ctl), "-P", str(tor.path("run", "bird.pid"))])
    wait_for(ctl.exists, 10, f"bird on {tor.name} ({ctl})")


def tor_routes(tor: LabNode) -> str:
    return tor.cmd("ip", "route", "show", "proto", "bird").stdout


def wait_for_pod_routes(tor: LabNode, expected: dict[str, str], timeout_s: float = 30) -> None:
    """expected: pod CIDR -> node IP; wait until the ToR's kernel has each via BGP."""

    def present() -> bool:
        table = tor_routes(tor)
        return all(f"{cidr} via {ip} " in table for cidr, ip in expected.items())

    missing = ", ".join(f"{c} via {ip}" for c, ip in expected.items())
    wait_for(present, timeout_s, f"BGP routes on {tor.name}: {missing}", interval_s=0.1)
