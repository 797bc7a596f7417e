"""Single netns nodes outside a lab, for integration tests, benchmarks and the conformance suites
(removed on exit)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from lab.backends.lab import new_run_id
from lab.backends.netns.host import remove_tree
from lab.backends.netns.node import NetnsNode
from lab.backends.node import DockerHost
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
    python: str | None,
    *,
    agent_args: Sequence[str] = (),
    plugin_args: Sequence[str] = (),
    keep_logs: Path | None = None,
    plugins: Mapping[str, Path] | None = None,
    plugin_in_agent: bool = False,
) -> Iterator[NetnsNode]:
    """One node with its own dockerd and the lab image, and (with `python`, where podnet is installed)
    podnet's agent and plugin; dockerd finds each of `plugins` (driver name -> socket) by a spec file.

    `plugin_in_agent`: the agent serves the libnetwork plugin (`plugin_args` are then its flags for
    it, e.g. --docker-gc-interval), no podnet-docker; else podnet-docker with `plugin_args`."""
    with bare_node(name, keep_logs=keep_logs) as node:
        specs = node.path("etc-docker", "plugins")
        specs.mkdir(parents=True, exist_ok=True)
        for driver, sock in (plugins or {}).items():
            (specs / f"{driver}.spec").write_text(f"unix://{sock}\n")
        node.start_dockerd()
        node.import_image(build_rootfs_tar(node.root / "busybox.tar"), IMAGE)
        if python is not None and plugin_in_agent:
            node.start_agent(python, *agent_args, docker_plugin=plugin_args)
        elif python is not None:
            node.start_agent(python, *agent_args)
            node.start_plugin(python, *plugin_args)
        yield node


@contextmanager
def docker_host(
    name: str,
    *,
    plugins: Mapping[str, Path] | None = None,
    podnet: str | None = None,
    agent_args: Sequence[str] = (),
    plugin_args: Sequence[str] = (),
    keep_logs: Path | None = None,
) -> Iterator[DockerHost]:
    """`docker_node` as the registry hands it out (`Backend.docker_host`): for the conformance suites."""
    with docker_node(name, podnet, agent_args=agent_args, plugin_args=plugin_args, keep_logs=keep_logs,
                     plugins=plugins) as node:  # fmt: skip
        yield DockerHost(node, IMAGE, node.plugin_sock if podnet is not None else None)
