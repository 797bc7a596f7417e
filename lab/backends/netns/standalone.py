"""Single netns nodes outside a lab, for integration tests and benchmarks (removed on exit)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lab.backends.lab import new_run_id
from lab.backends.netns.host import remove_tree
from lab.backends.netns.node import NetnsNode
from lab.image import IMAGE, build_rootfs_tar


@contextmanager
def bare_node(name: str, *, keep_logs: Path | None = None) -> Iterator[NetnsNode]:
    """A node namespace with nothing started; its logs kept in keep_logs/<name>-<run>, the rest removed."""
    run_id = new_run_id()
    root = Path(f"/tmp/podnet-{name}-{run_id}")
    node = NetnsNode(name, run_id, root)
    try:
        node.create()
        yield node
    finally:
        try:
            node.destroy()
        finally:
            if keep_logs is not None and node.logs.is_dir():
                shutil.copytree(node.logs, keep_logs / f"{name}-{run_id}", dirs_exist_ok=True)
            remove_tree(root)


@contextmanager
def docker_node(
    name: str,
    python: str,
    *,
    agent_args: Sequence[str] = (),
    plugin_args: Sequence[str] = (),
    keep_logs: Path | None = None,
) -> Iterator[NetnsNode]:
    """One node with its own dockerd, the lab image, podnet's agent and plugin."""
    with bare_node(name, keep_logs=keep_logs) as node:
        node.start_dockerd()
        node.import_image(build_rootfs_tar(node.root / "busybox.tar"), IMAGE)
        node.start_agent(python, *agent_args)
        node.start_plugin(python, *plugin_args)
        yield node
