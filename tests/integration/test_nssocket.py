"""podnet.datapath.nssocket: a socket opened in a pod's namespace by the long-lived thread, which
goes back home after each one (so it never keeps a pod's namespace alive)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from podnet.datapath import nssocket
from podnet.datapath.rtnl import NETLINK_ROUTE, Rtnl

NETLINK = (socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"pn-nssock-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/var/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def links_of(sock: socket.socket) -> set[str]:
    with Rtnl(sock) as ns:
        return {link.name for link in ns.links()}


def thread_netns(name: str) -> int:
    (thread,) = [t for t in threading.enumerate() if t.name == name]
    return os.stat(f"/proc/self/task/{thread.native_id}/ns/net").st_ino


def test_the_socket_is_the_pods_and_the_thread_goes_home(netns: str) -> None:
    home = os.stat("/proc/self/ns/net").st_ino
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(3):  # one thread serves every call
            assert links_of(nssocket.OPENER.open(fd, *NETLINK)) == {"lo"}
            assert thread_netns("netns-sockets") == home
        assert len([t for t in threading.enumerate() if t.name == "netns-sockets"]) == 1
        assert links_of(nssocket.open_on_new_thread(fd, *NETLINK)) == {"lo"}  # the fallback
    finally:
        os.close(fd)


def test_a_descriptor_that_is_no_namespace_is_an_error_and_the_thread_serves_on(netns: str) -> None:
    with open("/dev/null", "rb") as not_a_netns, pytest.raises(OSError):
        nssocket.OPENER.open(not_a_netns.fileno(), *NETLINK)
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        assert links_of(nssocket.OPENER.open(fd, *NETLINK)) == {"lo"}
    finally:
        os.close(fd)
