"""The kernel's floor for one CNI ADD and one DEL: exactly the kernel operations podnet's eBPF
datapath issues for an endpoint, and nothing else (no store, no API, no checks), timed.

ADD: open the pod's netns; create the veth pair with its peer in it (up); the host side's IPv4
settings (rp_filter, forwarding, proxy_arp) and ARP proxy_delay; the endpoints-map entry; the
clsact qdisc and both tc programs; in the pod: loopback up, the /32, the route to the router IP
and the default route. DEL: the map entries (endpoint, counters) and the veth.
One rtnetlink socket per namespace (a socket belongs to the namespace it was opened in, so the
pod's needs its own), requests batched as far as the kernel allows.

It serves on stdin/stdout so that the program load happens once, not in the timings:

    ADD <netns path> <id>   ->  {"seconds": 0.0021}
    DEL <id>                ->  {"seconds": 0.0180}

    nsenter --net=NODE_NETNS python bench/kernel_floor.py
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from podnet.datapath import rtnl
from podnet.datapath.bpf import object_file, tc
from podnet.datapath.bpf.loader import BpfObject
from podnet.datapath.bpf.maps import EndpointInfo, ip_key
from podnet.datapath.rtnl import RT_SCOPE_LINK, Rtnl

ROUTER = "10.59.0.1"
MTU = 1500


def names(ident: str) -> tuple[str, str, str, str]:
    digest = hashlib.sha256(ident.encode()).digest()
    mac = ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))
    peer_mac = ":".join(f"{b:02x}" for b in (0x02, *digest[5:10]))
    return f"flr{digest.hex()[:11]}", mac, peer_mac, f"10.59.{digest[10] % 250}.{2 + digest[11] % 250}"


class Floor:
    def __init__(self) -> None:
        self.obj = BpfObject(object_file(), None)  # private maps: nothing of the agent's is touched
        self.endpoints = self.obj.map("pn_endpoints")
        self.counters = self.obj.map("pn_counters")
        self.ingress = self.obj.program_fd("from_container")
        self.egress = self.obj.program_fd("to_container")
        self.node = Rtnl()
        self.live: dict[str, tuple[int, str]] = {}

    def add(self, netns: str, ident: str) -> None:
        host, host_mac, peer_mac, ip = names(ident)
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            replies = self.node.run([rtnl.new_veth(host, host_mac, "eth0", peer_mac, MTU, peer_netns_fd=fd)])
            link = rtnl.echoed_link(replies[0])
            assert link is not None and link.peer_index is not None
            self.endpoints.update(ip_key(ip), EndpointInfo(link.index, 5, peer_mac, host_mac).pack())
            self.node.run(
                [
                    rtnl.set_ipv4_conf(link.index, host, rp_filter=0, forwarding=1, proxy_arp=1),
                    rtnl.set_proxy_delay(link.index, host, 0),
                    rtnl.add_clsact(link.index, host),
                    rtnl.add_bpf_filter(link.index, host, "ingress", self.ingress, "from_container", handle=tc.HANDLE),
                    rtnl.add_bpf_filter(link.index, host, "egress", self.egress, "to_container", handle=tc.HANDLE),
                ]
            )
            with Rtnl.in_netns(fd) as pod:
                pod.run(
                    [
                        rtnl.set_link(link.peer_index, "eth0", flags=rtnl.IFF_UP, change=rtnl.IFF_UP),
                        rtnl.set_up("lo"),
                        rtnl.add_address(link.peer_index, "eth0", ip),
                        rtnl.route(ROUTER, 32, oif=link.peer_index, scope=RT_SCOPE_LINK),
                        rtnl.route("0.0.0.0", 0, oif=link.peer_index, gateway=ROUTER),
                    ]
                )
        finally:
            os.close(fd)
        self.live[ident] = (link.index, ip)

    def delete(self, ident: str) -> None:
        index, ip = self.live.pop(ident)
        host = names(ident)[0]
        self.endpoints.delete(ip_key(ip))
        self.counters.delete(index.to_bytes(4, "little"))
        self.node.run([rtnl.del_link_index(index, host)])


def main() -> int:
    floor = Floor()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        t0 = time.perf_counter()
        try:
            if words[0] == "ADD":
                floor.add(words[1], words[2])
            elif words[0] == "DEL":
                floor.delete(words[1])
            else:
                raise ValueError(f"unknown command {words[0]!r}")
        except (OSError, ValueError, KeyError, AssertionError) as err:
            print(json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
            continue
        print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
    for ident in list(floor.live):
        floor.delete(ident)
    return 0


if __name__ == "__main__":
    sys.exit(main())
