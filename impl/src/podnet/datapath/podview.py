"""Read a pod's interface from inside its network namespace: MAC, IPv4 addresses, routes through it."""

from __future__ import annotations

import os
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.datapath.errors import DatapathError
from podnet.datapath.netns import open_netns, run_in_netns
from podnet.datapath.protocol import PodLink

MAIN_TABLE = 254


def pod_interface(netns: str, ifname: str) -> PodLink | None:
    def look(ipr: IPRoute) -> PodLink | None:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        index = found[0]
        mac = str(ipr.get_links(index)[0].get_attr("IFLA_ADDRESS") or "")
        addresses = tuple(
            f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index, family=socket.AF_INET)
        )
        routes = []
        for route in ipr.get_routes(family=socket.AF_INET, table=MAIN_TABLE):
            if route.get_attr("RTA_OIF") != index:
                continue
            dst = route.get_attr("RTA_DST")
            routes.append(
                (f"{dst}/{route['dst_len']}" if dst else "0.0.0.0/0", str(route.get_attr("RTA_GATEWAY") or ""))
            )
        return PodLink(mac, addresses, tuple(routes))

    if not os.path.lexists(netns):
        return None  # the namespace is gone, and the interface with it
    fd = open_netns(netns)  # a pod's network namespace, checked as at creation (NetnsError otherwise)
    try:
        return run_in_netns(fd, look)
    except (NetlinkError, OSError) as err:
        raise DatapathError(f"reading {ifname} in {netns}: {err}") from err
    finally:
        os.close(fd)
