"""Run netlink work inside another network namespace, from a thread.

setns(2) moves only the calling thread, so a short-lived thread enters the
namespace, opens its own netlink socket there and does the work, while the
rest of the process stays where it is. (pyroute2's own `netns=` forks a
helper process; in a daemon that leads its own session, tearing that helper
down stopped the daemon.)
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import IPRoute

from podnet.datapath.errors import DatapathError

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def run_in_netns(path: str, work: Callable[[IPRoute], T]) -> T:
    """`work(ipr)` with an IPRoute bound to the network namespace at `path`."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                _setns(fd)
            finally:
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
