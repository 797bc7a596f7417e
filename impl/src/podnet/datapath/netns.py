"""A pod's network namespace: which paths are one, and running netlink work inside one.

A runtime names the pod's namespace by path (CNI_NETNS, a sandbox key).
`check_netns_path` decides from the text alone (absolute, normalised, under
an allowed place); `open_netns` from the kernel: the path is opened without
following into anything but an nsfs file (O_PATH first: a FIFO never blocks,
a device is never opened), it must be a network namespace (NS_GET_NSTYPE),
and neither the agent's own nor init's (compared by device and inode). The
descriptor it returns is what the veth is created and configured through, so
the path cannot change in between.

setns(2) moves only the calling thread, so a short-lived thread enters the
namespace, opens its own netlink socket there and does the work, while the
rest of the process stays where it is. (pyroute2's own `netns=` forks a
helper process; in a daemon that leads its own session, tearing that helper
down stopped the daemon.)
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import stat
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from podnet.datapath.errors import DatapathError
from podnet.datapath.nssocket import setns
from podnet.errors import PodnetError, Reason

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), Linux 4.11

if TYPE_CHECKING:
    from pyroute2 import IPRoute

#: Where runtimes keep pods' network namespaces (`*` is one path component, `**` any number).
DEFAULT_NETNS_PATHS = (
    "/run/netns/*",  # iproute2, podman, CRI-O
    "/var/run/netns/*",  # containerd, CRI-O
    "/run/user/*/netns/*",  # rootless podman
    "/proc/*/ns/net",  # a process's own
    "/proc/*/task/*/ns/net",
    "/var/run/docker/netns/*",  # docker sandbox keys
    "/run/docker/netns/*",
    "/run/containerd/**",  # runtimes' state directories
    "/run/containers/**",
    "/var/lib/containers/**",
    "/run/crio/**",
)


class NetnsError(PodnetError):
    """The path given as a pod's network namespace is not one the agent may use."""

    reason = Reason.invalid_netns


def _matches(parts: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(1, len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _matches(parts[1:], pattern[1:])


def check_netns_path(path: str, allowed: Iterable[str]) -> str:
    """`path` if its text may name a pod's network namespace, else `NetnsError` saying why."""
    if not path.startswith("/"):
        raise NetnsError(f"netns {path!r} is not an absolute path")
    if "\0" in path or os.path.normpath(path) != path:
        raise NetnsError(f"netns {path!r} is not a normalised path (no '.', '..', '//' or trailing '/')")
    patterns = list(allowed)
    if not any(_matches(path.split("/")[1:], p.split("/")[1:]) for p in patterns):
        raise NetnsError(
            f"netns {path} is not in a place network namespaces are kept ({', '.join(patterns)}); "
            "add its place to the agent's netns_paths if a runtime keeps them there"
        )
    return path


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # e.g. init's, where the agent may not look: then it cannot open it either
    return st.st_dev, st.st_ino


def open_netns(path: str) -> int:
    """A descriptor of the network namespace at `path` (the caller closes it), else `NetnsError`."""
    try:
        handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(f"network namespace {path} does not exist") from None
    except OSError as err:
        raise NetnsError(f"cannot open network namespace {path}: {err.strerror}") from None
    try:
        st = os.fstat(handle)
        own = _identity("/proc/self/ns/net")
        if not stat.S_ISREG(st.st_mode) or own is None or st.st_dev != own[0]:
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else None
            kind = kind or ("a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a file")
            raise NetnsError(f"{path} is not a network namespace: it is {kind}, not an nsfs file")
        if (st.st_dev, st.st_ino) == own:
            raise NetnsError(f"{path} is the node's own network namespace, never a pod's")
        if (st.st_dev, st.st_ino) == _identity("/proc/1/ns/net"):
            raise NetnsError(f"{path} is init's network namespace, never a pod's")
        try:  # an nsfs file: opening it has no side effect
            fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as err:
            raise NetnsError(f"cannot open network namespace {path}: {err.strerror}") from None
    finally:
        os.close(handle)
    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as err:
        os.close(fd)
        raise NetnsError(f"cannot tell the namespace type of {path}: {err.strerror}") from None
    if nstype != CLONE_NEWNET:
        os.close(fd)
        raise NetnsError(f"{path} is a namespace, but not a network namespace")
    return fd


def run_in_netns(path: str | int, work: Callable[[IPRoute], T]) -> T:
    """`work(ipr)` with an IPRoute bound to the network namespace at `path` (or an open descriptor of it)."""
    from pyroute2 import IPRoute  # the agent never calls this (podnet.datapath.rtnl serves it): tests, the lab

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = path if isinstance(path, int) else os.open(path, os.O_RDONLY)
            try:
                setns(fd)
            finally:
                if not isinstance(path, int):
                    os.close(fd)
            with IPRoute() as ipr:
                outcome["value"] = work(ipr)
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=target, name=f"netns:{path}")
    thread.start()
    thread.join()
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, FileNotFoundError):
            raise DatapathError(f"network namespace {path} does not exist") from error
        raise error
    value: T = outcome["value"]
    return value
