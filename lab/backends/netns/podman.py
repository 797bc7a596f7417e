"""podman 4.3 (Debian) as a real CNI runtime on a lab node.

Each node gets a podman of its own: storage, run root, containers.conf with
`network_backend = "cni"`, a CNI config dir holding podnet's conflist and a
plugin dir where `podnet` is the node's podnet-cni. podman runs inside the
node's network namespace (`nsenter --net`), so the plugin it execs talks to
that node's agent. Explicit ulimits: podman's defaults copy the caller's
limits, which here exceed what the container runtime may set.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from lab.backends.base import NodeError
from lab.backends.netns.cniexec import REFERENCE, link_plugin
from lab.backends.netns.node import NetnsNode

ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


class Podman:
    def __init__(self, node: NetnsNode, cni_plugin: Path, network: str = "podnet"):
        self.node = node
        self.network = network
        self.base = node.path("podman")
        self.config_dir = self.base / "net.d"
        self.plugin_dir = self.base / "cni-bin"
        for d in (self.config_dir, self.base / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        link_plugin(self.plugin_dir, cni_plugin)
        (self.base / "containers.conf").write_text(
            "[network]\n"
            'network_backend = "cni"\n'
            f'cni_plugin_dirs = ["{self.plugin_dir}", "{REFERENCE}"]\n'
            f'network_config_dir = "{self.config_dir}"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{self.base / "tmp"}"\n'
        )

    def write_conflist(self, plugin: dict[str, Any], cni_version: str = "1.0.0") -> Path:
        """podman 4.3's libcni speaks CNI up to 1.0.0."""
        path = self.config_dir / f"{self.network}.conflist"
        path.write_text(json.dumps({"cniVersion": cni_version, "name": self.network, "plugins": [plugin]}, indent=2))
        return path

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        argv = [
            "podman",
            "--root", str(self.base / "storage"),
            "--runroot", str(self.base / "run"),
            "--storage-driver", "vfs",
            *args,
        ]  # fmt: skip
        env = {"CONTAINERS_CONF": str(self.base / "containers.conf"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        proc = self.node.cmd(*argv, check=False, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise NodeError(f"{self.node.name}: podman {' '.join(args)}: {proc.stderr.strip()[-800:]}")
        return proc

    def import_image(self, tarball: Path, image: str) -> None:
        self.run("import", "--change", "ENV PATH=/bin", str(tarball), image)

    def run_container(self, name: str, image: str, *cmd: str, detach: bool = True) -> subprocess.CompletedProcess[str]:
        mode = ["-d"] if detach else ["--rm"]
        return self.run("run", *mode, "--name", name, "--network", self.network, *ULIMITS, image, *cmd, check=False)

    def remove_all(self) -> None:
        self.run("rm", "-af", "-t", "0", check=False, timeout=60)
