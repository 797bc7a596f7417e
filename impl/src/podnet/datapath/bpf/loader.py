"""Open, load and pin podnet's BPF object; the verifier's log in the error when the kernel refuses it.

Maps are pinned by name under the node's pin directory (/sys/fs/bpf/podnet/<node>):
a second load (the agent restarting) re-uses them, so endpoint entries,
policy and counters survive and traffic never stops.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from pathlib import Path

from podnet.datapath.bpf import libbpf
from podnet.datapath.bpf.maps import BpfMap
from podnet.errors import PodnetError

LOG_SIZE = 1 << 22
BPF_FS_MAGIC = 0xCAFE4A11
BPF_FS = Path("/sys/fs/bpf")
PER_CPU_MAPS = {"pn_counters"}


class BpfLoadError(PodnetError):
    """The object could not be opened or loaded; `verifier_log` is the kernel's reason."""

    def __init__(self, message: str, verifier_log: str = ""):
        super().__init__(message)
        self.verifier_log = verifier_log


def _statfs_type(path: Path) -> int:
    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]

    buf = StatFs()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(str(path).encode(), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statfs {path}: {os.strerror(err)}")
    return int(buf.f_type) & 0xFFFFFFFF


def ensure_bpffs(root: Path = BPF_FS) -> None:
    """Mount the BPF filesystem at /sys/fs/bpf if nothing is mounted there (as Cilium does)."""
    if _statfs_type(root) == BPF_FS_MAGIC:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", str(root).encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise BpfLoadError(f"{root} is not a BPF filesystem and mounting one failed: {os.strerror(err)}")


class BpfObject:
    """A loaded BPF object: its programs' fds and its maps."""

    def __init__(self, path: Path, pin_dir: Path | None = None, map_sizes: Mapping[str, int] | None = None):
        """`map_sizes`: max entries per map, by name without `pn_` (a lab of many nodes on one
        machine makes its maps small: the program's own sizes cost ~40 MB, preallocated)."""
        self.path = path
        self.pin_dir = pin_dir
        self.map_sizes = dict(map_sizes or {})
        self._lib = libbpf.lib()
        if not path.exists():
            raise BpfLoadError(f"BPF object {path} does not exist")
        obj = self._lib.bpf_object__open_file(str(path).encode(), None)
        if not obj:
            err = ctypes.get_errno()
            raise BpfLoadError(f"opening BPF object {path}: {os.strerror(err)}")
        self._obj: int | None = obj
        self._logs: dict[str, ctypes.Array[ctypes.c_char]] = {}
        try:
            self._prepare()
            self._load()
        except BaseException:
            self.close()
            raise

    def _walk(self, kind: str) -> list[tuple[str, int]]:
        """(name, pointer) of each program or map: libbpf's bpf_object__next_<kind> / bpf_<kind>__name."""
        following = getattr(self._lib, f"bpf_object__next_{kind}")
        name_of = getattr(self._lib, f"bpf_{kind}__name")
        found: list[tuple[str, int]] = []
        item = following(self._obj, None)
        while item:
            found.append((name_of(item).decode(), item))
            item = following(self._obj, item)
        return found

    def _programs(self) -> list[tuple[str, int]]:
        return self._walk("program")

    def _maps(self) -> list[tuple[str, int]]:
        return self._walk("map")

    def _prepare(self) -> None:
        maps = dict(self._maps())
        for short, size in self.map_sizes.items():
            m = maps.get(f"pn_{short}")
            if m is None:
                known = ", ".join(n.removeprefix("pn_") for n in maps if not n.startswith("."))
                raise BpfLoadError(f"BPF object {self.path.name} has no map {short!r} to size (maps: {known})")
            libbpf.check(self._lib.bpf_map__set_max_entries(m, size), f"sizing map pn_{short} to {size}")
        for name, prog in self._programs():
            log = ctypes.create_string_buffer(LOG_SIZE)
            self._logs[name] = log
            self._lib.bpf_program__set_log_buf(prog, log, LOG_SIZE)
            self._lib.bpf_program__set_log_level(prog, 1)
        if self.pin_dir is None:
            # Unpinned: a private copy of every map (libbpf would otherwise pin
            # LIBBPF_PIN_BY_NAME maps under /sys/fs/bpf itself).
            for _name, m in self._maps():
                self._lib.bpf_map__set_pin_path(m, None)
            return
        ensure_bpffs()
        self.pin_dir.mkdir(parents=True, exist_ok=True)
        for name, m in self._maps():
            if name.startswith("."):  # .rodata/.bss: internal, never pinned
                continue
            libbpf.check(self._lib.bpf_map__set_pin_path(m, str(self.pin_dir / name).encode()), f"pinning map {name}")

    def _load(self) -> None:
        rc = self._lib.bpf_object__load(self._obj)
        if rc == 0:
            return
        failed = {name: log.value.decode(errors="replace").strip() for name, log in self._logs.items()}
        failed = {name: text for name, text in failed.items() if text}
        detail = "\n".join(f"--- verifier log of {name} ---\n{text}" for name, text in failed.items())
        reason = os.strerror(-rc)
        hint = ""
        if -rc == 22 and not failed and self.pin_dir is not None:
            hint = f" (a pinned map under {self.pin_dir} may no longer match this program's layout: remove it)"
        last = ""
        for name, text in failed.items():
            lines = [line for line in text.splitlines() if line.strip() and not line.startswith("processed")]
            if lines:
                last = f"; verifier on {name}: {lines[-1]}"
                break
        raise BpfLoadError(f"the kernel refused BPF object {self.path.name} ({reason}){last}{hint}", detail)

    def program_fd(self, name: str) -> int:
        prog = self._lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if not prog:
            raise BpfLoadError(f"BPF object {self.path.name} has no program {name}")
        return int(self._lib.bpf_program__fd(prog))

    def map(self, name: str) -> BpfMap:
        m = self._lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if not m:
            raise BpfLoadError(f"BPF object {self.path.name} has no map {name}")
        return BpfMap(
            name,
            int(self._lib.bpf_map__fd(m)),
            int(self._lib.bpf_map__key_size(m)),
            int(self._lib.bpf_map__value_size(m)),
            per_cpu=name in PER_CPU_MAPS,
        )

    def close(self) -> None:
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None
