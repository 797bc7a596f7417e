"""CNI pods on netns nodes (capability host-cni-runtime): the runtime runs on this machine.

A pod is a network namespace `/run/netns/<node netns>-<pod>` made on ADD and
removed on DEL. Calls go through the lab's libcni runtime (conflist, result
cache, as containerd, CRI-O and podman call plugins) or exec the plugin
directly with the CNI environment and a config on stdin (spec-level calls:
STATUS, a CHECK with a given prevResult).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from lab.backends.base import LabError
from lab.backends.netns.cniexec import exec_cni
from lab.backends.netns.libcni import LibCNI
from lab.backends.netns.node import NetnsNode
from lab.backends.node import LabNode
from lab.deploy import cni_binary


class NetnsPods:
    def __init__(self, run_id: str, python: str):
        self.run_id = run_id
        self.python = python
        self._plugin: Path | None = None
        self._libcni: dict[str, LibCNI] = {}

    def plugin(self) -> Path:
        """podnet's compiled CNI plugin in the lab venv (what a node's CNI bin dir holds as `podnet`)."""
        if self._plugin is None:
            self._plugin = cni_binary(self.python)
        return self._plugin

    def pod_netns(self, node: LabNode, pod: str) -> str:
        return f"/run/netns/{node.pod_netns_prefix}-{pod}"

    def call(
        self, node: LabNode, *, runtime: str, command: str, pod: str, ifname: str, prev_result: Any = None
    ) -> tuple[int, Any]:
        if not isinstance(node, NetnsNode):  # a node of this backend's own labs
            raise LabError(f"{node.name} is not a netns node")
        netns = self.pod_netns(node, pod)
        name = Path(netns).name
        if command == "ADD" and not Path(netns).exists():
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        container_id = f"{self.run_id}-{pod}"
        if runtime == "libcni":
            if node.name not in self._libcni:
                self._libcni[node.name] = LibCNI(node, self.plugin())
                self._libcni[node.name].write_conflist(
                    "podnet", [{"type": "podnet", "agentSocket": str(node.agent_sock)}]
                )
            status, output, _ = self._libcni[node.name].call(
                command.lower(), "podnet", netns, container_id, ifname=ifname, pod=pod
            )
        else:
            conf: dict[str, Any] = {
                "cniVersion": "1.1.0",
                "name": "podnet",
                "type": "podnet",
                "agentSocket": str(node.agent_sock),
            }
            if prev_result is not None:
                conf["prevResult"] = prev_result
            status, output, _ = exec_cni(
                node, [str(self.plugin())], command, conf, netns, container_id, ifname=ifname, pod=pod
            )
        if command == "DEL" and Path(netns).exists():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        return status, output
