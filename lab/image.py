"""The container image every lab node runs: Debian's busybox-static, `docker import`ed.

No registry is reachable, so the image is a tarball made from /bin/busybox:
every applet as a symlink, an index page for `httpd -h /www`, /etc/passwd.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

IMAGE = "podnet/busybox:lab"
BUSYBOX = Path("/bin/busybox")
INDEX_HTML = b"hello from podnet\n"


class ImageError(RuntimeError):
    pass


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def build_rootfs_tar(dest: Path) -> Path:
    """Write the image's root filesystem as a tarball (idempotent)."""
    if dest.exists():
        return dest
    if not BUSYBOX.exists():
        raise ImageError("/bin/busybox not found: install Debian's busybox-static (ci/bootstrap does)")
    listing = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    tmp = dest.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        for d in ("bin", "etc", "www", "tmp", "proc", "sys", "dev", "root"):
            _add_dir(tar, d)
        tar.add(str(BUSYBOX), "bin/busybox")
        for applet in listing:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        _add_file(tar, "www/index.html", INDEX_HTML)
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        _add_file(tar, "etc/group", b"root:x:0:\n")
    tmp.rename(dest)
    return dest
