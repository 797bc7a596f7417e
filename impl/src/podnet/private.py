"""Files, directories and sockets only their owner (root) may use.

- Directories podnet creates are 0700, each one of them (`make_dirs`); a
  directory that already exists is left as it is — an administrator may have
  opened it on purpose.
- Files podnet creates are 0600 (`private_file`), and a looser one it finds
  is tightened: they are podnet's own.
- A socket is bound under umask 077 with its mode set before `bind()`
  (`bind_socket`), so it is never reachable by others, not even for an
  instant, and is never chmodded afterwards. Whatever is at its path first
  is removed only if it is a socket nobody answers on (`claim_socket`).
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from podnet.errors import PodnetError

_KINDS = {
    stat.S_IFREG: "a regular file",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def make_dirs(path: str | Path) -> None:
    """`mkdir -p -m 0700` for every directory it creates."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # mkdir's mode goes through the umask


def private_file(path: str | Path) -> None:
    """Create `path` empty with mode 0600 if absent; tighten it to 0600 if others may read it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def tighten(path: str | Path) -> None:
    """0600 for an existing file others may read (a store's -wal and -shm); absent is fine."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


def claim_socket(path: str | Path, what: str) -> None:
    """Make way for our socket at `path`: remove a dead socket; refuse anything else.

    `what` names the server for the message ("agent", "docker plugin")."""
    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a socket")
        raise PodnetError(
            f"{path} is {kind}, not a socket: refusing to remove it for the {what} socket; "
            "move it away or give another socket path"
        )
    probe = socket.socket(socket.AF_UNIX)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # a socket left by a process that is gone
    else:
        raise PodnetError(f"another {what} is already serving {path}; stop it first")
    finally:
        probe.close()


def bind_socket(path: str | Path, what: str) -> socket.socket:
    """A unix stream socket bound at `path` (mode 0600, parents 0700 when created); not yet listening."""
    path = Path(path)
    make_dirs(path.parent)
    claim_socket(path, what)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)  # Linux gives the socket file this mode at bind
        old = os.umask(0o077)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
    except OSError as err:
        sock.close()
        raise PodnetError(f"cannot bind the {what} socket {path}: {err.strerror}") from None
    return sock
