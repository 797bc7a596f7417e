"""Real lab nodes for integration tests: netns + own dockerd + podnet agent and plugin."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.image import IMAGE, build_rootfs_tar
from lab.netns import NetnsNode, remove_tree

PYTHON = sys.executable
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "integration"
FAST_GC = ("--gc-interval", "1", "--gc-grace", "3")


def host_snapshot() -> dict[str, set[str]]:
    """What a node could leak into the machine: namespaces, root-ns links, mounts."""
    netns = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    links = set(subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines())
    links = {line.split(":")[1].strip().split("@")[0] for line in links}
    mounts = set(Path("/proc/self/mountinfo").read_text().splitlines())
    mounts = {line.split()[4] for line in mounts}
    return {"netns": {n for n in netns if n.startswith("pn-")}, "links": links, "mounts": mounts}


@contextmanager
def docker_node(name: str, *agent_args: str, tmp_root: Path | None = None) -> Iterator[NetnsNode]:
    run_id = secrets.token_hex(3)
    root = tmp_root or Path(f"/tmp/podnet-it-{run_id}")
    node = NetnsNode(name, run_id, root)
    try:
        node.create()
        node.start_dockerd()
        node.import_image(build_rootfs_tar(root / "busybox.tar"), IMAGE)
        node.start_agent(PYTHON, *agent_args)
        node.start_plugin(PYTHON, *FAST_GC, "--log-level", "debug")
        yield node
    finally:
        try:
            node.destroy()
        finally:
            keep = ARTIFACTS / f"{name}-{run_id}"
            if node.logs.is_dir():
                shutil.copytree(node.logs, keep, dirs_exist_ok=True)
            remove_tree(root)
