"""A running lab on the Vagrant backend: the topology as VMs (the root Vagrantfile): one per router
(the ToR, or a fabric's spines and leaves) and one per node.

`up()` stages every VM's provisioning directory (provision.py), runs
`vagrant up` (python-vagrant) with the topology and the run id in the
environment — following each VM through it (progress.py: booting,
provisioning which step, ready; reported as it happens and recorded as the
`<vm>: boot|provision|ready` timings) — opens one ssh master per VM, and waits
on the same readiness checks as the netns backend: every agent serves healthz,
every plugin answers Plugin.Activate, every worker has its pod CIDR, every
router routes them all (over every equal path in a fabric). `down()` destroys the VMs and their networks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from lab import paths
from lab.backends.base import LabError, NodeError, Progress, wait_for
from lab.backends.lab import BaseLab
from lab.backends.vagrant import box, placement
from lab.backends.vagrant.clean import clean_host, reach_hosts, remember_hosts
from lab.backends.vagrant.node import VagrantNode
from lab.backends.vagrant.progress import VagrantProgress
from lab.backends.vagrant.provision import StagingError, stage, store_url
from lab.backends.vagrant.venv import VENV, VenvError
from lab.model.topology import Topology

T = TypeVar("T")


def vagrant_env(topology_file: Path, run_id: str) -> dict[str, str]:
    return {
        **os.environ,
        "LAB_TOPOLOGY": str(topology_file),
        "LAB_RUN_ID": run_id,
        "VAGRANT_NO_COLOR": "1",
        "VAGRANT_CHECKPOINT_DISABLE": "1",  # no version check over the network
    }


def root_ssh_config(vagrant_ssh_config: str, lab_root: Path) -> str:
    """vagrant's ssh-config for every VM, logging in as root (provision.sh allows vagrant's key),
    quiet, replacing stale forwarded sockets, and through the VM's master connection when it is up
    (VagrantNode.control_path): testinfra, `ssh -F` and scp by hand then skip a key exchange that
    costs seconds of emulated CPU per connection."""
    text = re.sub(r"(?m)^(\s*)User vagrant$", r"\1User root", vagrant_ssh_config)
    extra = (
        "  LogLevel ERROR\n  StreamLocalBindUnlink yes\n  ServerAliveInterval 5\n  ServerAliveCountMax 6\n"
        f"  ControlPath {lab_root}/%n/ssh.ctl\n"
    )
    return re.sub(r"(?m)^Host (\S+)$", lambda m: f"Host {m.group(1)}\n{extra}", text)


@dataclass
class VagrantLab(BaseLab[VagrantNode]):
    backend: ClassVar[str] = "vagrant"
    capabilities: ClassVar[frozenset[str]] = frozenset({"fabric"})

    def __post_init__(self) -> None:
        ssh = self.root / "ssh_config"
        self.routers = {r.name: VagrantNode(r.name, self.root / r.name, ssh) for r in self.topology.routers()}
        self.nodes = {n.name: VagrantNode(n.name, self.root / n.name, ssh) for n in self.topology.nodes}

    @property
    def topology_file(self) -> Path:
        return self.root / "topology.yaml"

    @property
    def store_url(self) -> str:
        return store_url(self.topology, self.topology.workers()[0].name)

    # -- vagrant ------------------------------------------------------------------------
    def vagrant(self, command: str, call: Callable[[Any], T]) -> T:
        """Run one vagrant command (`call` on python-vagrant's handle) in the repository, with
        its Vagrantfile; the output goes to <root>/vagrant-<command>.log, a failure shows its tail."""
        import vagrant as python_vagrant  # python-vagrant

        path = self.root / f"vagrant-{command}.log"
        handle = python_vagrant.Vagrant(
            root=str(paths.repo()),
            env=vagrant_env(self.topology_file, self.run_id),
            out_cm=python_vagrant.make_file_cm(str(path)),
            err_cm=python_vagrant.make_file_cm(str(path)),
        )
        try:
            return call(handle)
        except subprocess.CalledProcessError as err:
            tail = "\n".join(path.read_text(errors="replace").strip().splitlines()[-12:]) if path.exists() else ""
            raise LabError(f"`vagrant {command}` exited {err.returncode} (full output: {path}):\n{tail}") from None

    # -- bring-up -------------------------------------------------------------------------
    def _up(self, report: Progress | None) -> None:
        self.topology_file.write_text(json.dumps(self.topology.model_dump(), indent=2))  # JSON is YAML
        self.save()
        with self.step("box (build or reuse)", report):
            box.build(report=lambda _: None)
        uris = {host.uri for host in placement.placement(self.topology).values()}
        with self.step("libvirt on every host the lab uses", report):
            reach_hosts(uris)
        remember_hosts(uris)  # for `lab clean`
        with self.step("podnet's venv for the VMs and each VM's provisioning files", report):
            try:
                stage(self.topology)
            except (VenvError, StagingError) as err:
                raise LabError(str(err)) from None
        names = [*self.routers, *self.nodes]
        progress = VagrantProgress(self.root / "vagrant-up.log", names, self._up_started)
        try:
            with self.step(f"vagrant up: {len(names)} VMs booted and provisioned ({', '.join(names)})", report):
                self._vagrant_up(progress, report)
            with self.step("ssh to every VM (sockets forwarded)", report):
                self._ssh_config()
                with ThreadPoolExecutor(max_workers=len(names)) as pool:
                    list(pool.map(lambda n: n.connect(), self.all_nodes()))
            self.save()
            for name in names:
                if name not in self.workers:
                    progress.set_ready(name)
            with (
                self.step("agents and plugins ready", report),
                ThreadPoolExecutor(max_workers=len(self.workers)) as pool,
            ):
                list(pool.map(lambda node: self._wait_ready(node, progress, report), self.workers.values()))
        finally:
            self.timings.extend(progress.timings())

    def _vagrant_up(self, progress: VagrantProgress, report: Progress | None) -> None:
        """`vagrant up` (every VM in parallel), reporting each VM's phase whenever one moves on."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            up = pool.submit(self.vagrant, "up", lambda v: v.up(provider="libvirt"))
            while True:
                finished = wait([up], timeout=0.5).done
                if progress.poll() and report:
                    report(f"vagrant up: {progress.summary()}")
                if finished:
                    break
            up.result()

    def _ssh_config(self) -> None:
        self.tor.ssh_config.write_text(
            root_ssh_config(self.vagrant("ssh-config", lambda v: str(v.ssh_config())), self.root)
        )

    def _wait_ready(
        self, node: VagrantNode, progress: VagrantProgress, report: Progress | None, timeout_s: float = 120.0
    ) -> None:
        try:
            wait_for(
                lambda: node.agent_ready(require_pod_cidr=self.control is None),
                timeout_s,
                f"podnet-agent on {node.name}",
                interval_s=1,
            )
        except NodeError as err:
            why = node.last_health_error or "it answered, without its pod CIDR"
            raise NodeError(f"{err} (last healthz: {why})") from None
        if self.topology.spec(node.name).runtime == "docker":  # runtime cni: the agent only
            wait_for(
                node.plugin_ready,
                timeout_s,
                f"the docker plugin on {node.name} answering Plugin.Activate",
                interval_s=1,
            )
        progress.set_ready(node.name)
        if report:
            report(f"ready: {progress.summary()}")

    def node_env(self, name: str) -> dict[str, str]:
        return {
            "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PODNET_STORE": store_url(self.topology, name) if name in self.nodes else self.store_url,
        }

    def _collect_extra_logs(self, dest: Path) -> None:
        for log in ("vagrant-up.log", "vagrant-destroy.log"):
            if (self.root / log).exists():
                dest.mkdir(parents=True, exist_ok=True)
                (dest / log).write_text((self.root / log).read_text(errors="replace"))

    # -- state ------------------------------------------------------------------------------
    def _backend_state(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> VagrantLab:
        lab = cls(Topology.model_validate(state["topology"]), run_id=state["run_id"])
        lab._load_common(state)
        return lab

    # -- teardown -----------------------------------------------------------------------------
    def down(self, *, keep_logs: Path | None = None) -> list[str]:

        errors: list[str] = []
        if keep_logs is not None:
            self.collect_logs(keep_logs)
        for node in self.all_nodes():
            node.disconnect()
        try:
            self.vagrant("destroy", lambda v: v.destroy())
        except LabError as err:
            errors.append(str(err))
        # Then every host the lab used, through its own URI: nothing named after this run is left there.
        for uri in sorted({host.uri for host in placement.placement(self.topology).values()}):
            try:
                clean_host(uri, prefix=f"pn-{self.run_id}-")
            except LabError as err:
                errors.append(str(err))
        if not errors:  # else keep the record: `lab down` again, or `lab clean`
            self._release_root()
        return errors
