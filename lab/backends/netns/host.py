"""What the netns backend touches on this machine besides namespaces: cgroups, BPF pins, processes.

cgroups: a node's dockerd (`--cgroup-parent pn-<run>-<node>`) makes that
directory in every mounted cgroup hierarchy — one on a cgroup v2 machine,
each v1 controller plus `/sys/fs/cgroup/unified` on machines like this one —
so removal walks every hierarchy in /proc/self/mountinfo. In a hierarchy where
the lab's own process sits in a nested cgroup (here: the memory controller puts
each job under `/process_api/<id>`), runc makes the relative parent below that
cgroup, not at the root: the lab's cgroups are looked for down to NESTED_DEPTH
levels, and a later `lab clean` from another job finds them too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

BPF_PINS = Path("/sys/fs/bpf/podnet")
NETNS_DIR = Path("/run/netns")


def cgroup_hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy of this mount namespace."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    found: list[Path] = []
    for line in text.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        fstype = rest.split(" ", 1)[0] if rest else ""
        if fstype in ("cgroup", "cgroup2") and len(parts) > 4:
            mount = Path(parts[4])
            if mount not in found:
                found.append(mount)
    return found


NESTED_DEPTH = 3  # /pn-…, and as deep as /<a>/<b>/pn-… (memory:/process_api/<id>/pn-… here)


def lab_cgroups(pattern: str = "pn-*", roots: list[Path] | None = None) -> list[Path]:
    """Lab cgroups (`pn-<run>-<node>`) in every hierarchy, at its root or nested up to NESTED_DEPTH
    levels below it; never one inside another lab cgroup (that one goes with its parent)."""
    found: set[Path] = set()
    for root in cgroup_hierarchies() if roots is None else roots:
        for depth in range(NESTED_DEPTH):
            for cg in root.glob("/".join(["*"] * depth + [pattern])):
                if cg.is_dir() and not any(part.startswith("pn-") for part in cg.relative_to(root).parts[:-1]):
                    found.add(cg)
    return sorted(found)


def remove_cgroup(path: Path, *, timeout_s: float = 5.0) -> bool:
    """Remove a cgroup and its children, deepest first; True when it is gone.

    A cgroup can only go once its processes have; the kernel may take a moment
    after they exit, hence the short retry."""
    deadline = time.monotonic() + timeout_s
    while path.is_dir():
        children = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for directory in [*children, path]:
            with contextlib.suppress(OSError):
                directory.rmdir()
        if not path.is_dir() or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return not path.is_dir()


def remove_node_cgroups(name: str) -> list[str]:
    """The cgroup `name` in every hierarchy; what could not be removed."""
    return [str(cg) for cg in lab_cgroups(name) if not remove_cgroup(cg)]


def processes_running_from(root: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line names a file under `root`."""
    marker = f"{root}/".encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            found[int(proc.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def remove_pins(path: Path) -> None:
    """Unpin a node's BPF maps; the kernel frees them once no program uses them."""
    if not path.is_dir():
        return
    for pin in path.iterdir():
        with contextlib.suppress(OSError):
            pin.unlink()
    with contextlib.suppress(OSError):
        path.rmdir()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def lab_namespaces() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob("pn-*")) if NETNS_DIR.is_dir() else []


def pid_state(pid: int) -> str | None:
    """The process's state letter (R, S, T, Z, …), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
