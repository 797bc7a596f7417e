"""/proc/sys writes for the current network namespace."""

from __future__ import annotations

from pathlib import Path

from podnet.datapath.errors import DatapathError

PROC_SYS = Path("/proc/sys")


def write(key: str, value: str | int) -> None:
    path = PROC_SYS / key.replace(".", "/")
    try:
        path.write_text(f"{value}\n")
    except OSError as err:
        raise DatapathError(f"cannot set sysctl {key}={value}: {err.strerror}") from err


def read(key: str) -> str:
    return (PROC_SYS / key.replace(".", "/")).read_text().strip()


def set_interface(ifname: str, **values: str | int) -> None:
    """net.ipv4.conf.<ifname>.<key> = value for each keyword."""
    for key, value in values.items():
        write(f"net/ipv4/conf/{ifname}/{key}", value)
