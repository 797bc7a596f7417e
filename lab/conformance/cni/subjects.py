"""The plugins the CNI suite scores in CI, and a user's own: each a `Subject` on a host namespace of its own.

CI subjects: podnet (the suite starts its agent in the subject's host
namespace; the plugin is the compiled podnet-cni of the lab venv), and from
Debian's containernetworking-plugins bridge+host-local, ptp+host-local,
macvlan+host-local (parent: a veth the suite makes) and host-device (a veth the
suite makes, again before every ADD). Every host-local gets a temporary dataDir.
What the reference plugins are known to fail, and why, is in `known.py`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.conformance.cni.context import NETWORK, Subject
from lab.conformance.cni.known import KNOWN
from lab.conformance.cni.podnet import PodnetAgent
from lab.conformance.cni.probes import HostLocalProbe, PodnetProbe
from lab.conformance.kernel import Kernel, Namespaces

REFERENCE = Path("/usr/lib/cni")
CI = ("podnet", "bridge", "ptp", "macvlan", "host-device")


class SubjectError(RuntimeError):
    pass


@dataclass
class Prepared:
    subject: Subject
    kernel: Namespaces


def _host_local(work: Path, subnet: str) -> dict[str, Any]:
    return {
        "type": "host-local",
        "ranges": [[{"subnet": subnet}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(work / "host-local"),
    }


def _reference(name: str, ns: Namespaces, work: Path) -> Subject:
    confs: dict[str, dict[str, Any]] = {
        "bridge": {
            "type": "bridge",
            "bridge": "cfbr0",
            "isGateway": True,
            "ipMasq": False,
            "ipam": _host_local(work, "10.78.1.0/24"),
        },
        "ptp": {"type": "ptp", "ipMasq": False, "ipam": _host_local(work, "10.78.2.0/24")},
        "macvlan": {"type": "macvlan", "master": "cfmv0", "mode": "bridge", "ipam": _host_local(work, "10.78.3.0/24")},
        "host-device": {"type": "host-device", "device": "cfhd0", "ipam": _host_local(work, "10.78.4.0/24")},
    }
    conf = confs[name]
    prepare: Callable[[Kernel], None] | None = None
    if name == "macvlan":
        ns.add_veth(None, "cfmv0", "cfmv0p")
    if name == "host-device":
        peers = itertools.count()

        def prepare(kernel: Kernel) -> None:
            if "cfhd0" not in kernel.links(None):
                kernel.add_veth(None, "cfhd0", f"cfhdp{next(peers)}")

    ipam = f"+{conf['ipam']['type']}"
    return Subject(
        name=name,
        plugin=str(REFERENCE / name),
        conf=conf,
        description=f"{name}{ipam} (Debian containernetworking-plugins, {REFERENCE / name})",
        cni_path=[str(REFERENCE)],
        probe=HostLocalProbe(work / "host-local", NETWORK),
        prepare=prepare,
        max_attachments=1 if name == "host-device" else None,
        chain_conf={"dataDir": str(work / "tuning")},
        known=KNOWN.get(name, {}),
        how=f"exec'd in namespace {ns.host} (its host namespace), pods in {ns.host}-pN; "
        f"host-local dataDir {work / 'host-local'}"
        + ("; parent cfmv0 a veth there" if name == "macvlan" else "")
        + ("; cfhd0 a veth made there before each ADD" if name == "host-device" else ""),
    )


@contextmanager
def ci_subject(name: str, work: Path, python: Path | None = None) -> Iterator[Prepared]:
    """A CI subject on a host namespace of its own, removed (with whatever it started) afterwards."""
    if name not in CI:
        raise SubjectError(f"unknown subject {name!r} (CI subjects: {', '.join(CI)})")
    ns = Namespaces(name.replace("-", ""))
    with ExitStack() as stack:
        ns.create()
        stack.callback(ns.close)
        work.mkdir(parents=True, exist_ok=True)
        if name != "podnet":
            yield Prepared(_reference(name, ns, work), ns)
            return
        if python is None:
            raise SubjectError("the podnet subject needs the lab venv's python")
        from lab.deploy import cni_binary

        agent = PodnetAgent(ns, python, work / "agent")
        stack.callback(agent.close)
        agent.start()
        shim = cni_binary(python)
        yield Prepared(
            Subject(
                name="podnet",
                plugin=str(shim),
                conf={"type": "podnet", "agentSocket": str(agent.socket)},
                description=f"podnet ({shim}, the compiled podnet-cni of the lab venv)",
                cni_path=[str(shim.parent), str(REFERENCE)],
                probe=PodnetProbe(str(agent.socket)),
                unavailable=agent.stopped,
                chain_conf={"dataDir": str(work / "tuning")},
                known=KNOWN.get("podnet", {}),
                how=f"the suite started podnet-agent (pod CIDR {agent.pod_cidr}) in namespace {ns.host} "
                f"from {python}; pods in {ns.host}-pN; agent log {agent.log}",
            ),
            ns,
        )


@contextmanager
def user_subject(plugin: Path, conf_file: Path | None, work: Path, cni_path: list[str]) -> Iterator[Prepared]:
    """A plugin given by path with its configuration (a plugin configuration object, or the first
    plugin of a conflist); a host-local IPAM gets a temporary dataDir, podnet's is probed via its agent."""
    if not plugin.is_file():
        raise SubjectError(f"{plugin}: no such plugin executable")
    conf: dict[str, Any] = {"type": plugin.name}
    if conf_file is not None:
        try:
            loaded = json.loads(conf_file.read_text())
        except (OSError, ValueError) as err:
            raise SubjectError(f"{conf_file}: cannot read the configuration: {err}") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("plugins"), list) and loaded["plugins"]:
            loaded = loaded["plugins"][0]
        if not isinstance(loaded, dict):
            raise SubjectError(f"{conf_file}: a plugin configuration must be a JSON object")
        conf = {k: v for k, v in loaded.items() if k not in ("cniVersion", "name", "cniVersions")}
    ns = Namespaces("user")
    with ExitStack() as stack:
        ns.create()
        stack.callback(ns.close)
        probe: Any = None
        ipam: dict[str, Any] = conf["ipam"] if isinstance(conf.get("ipam"), dict) else {}
        if ipam.get("type") == "host-local":
            conf["ipam"] = {**ipam, "dataDir": str(work / "host-local")}
            probe = HostLocalProbe(work / "host-local", NETWORK)
        elif conf.get("type") == "podnet":
            probe = PodnetProbe(str(conf.get("agentSocket", "/var/run/podnet/podnet.sock")))
        yield Prepared(
            Subject(
                name=plugin.name + (f"+{ipam['type']}" if ipam.get("type") else ""),
                plugin=str(plugin),
                conf=conf,
                description=f"{plugin} with {conf_file or 'an empty configuration'}",
                cni_path=cni_path or [str(plugin.parent), str(REFERENCE)],
                probe=probe,
                chain=next(
                    (str(Path(d, "tuning")) for d in cni_path if Path(d, "tuning").is_file()), str(REFERENCE / "tuning")
                ),
                chain_conf={"dataDir": str(work / "tuning")},
                how=f"exec'd in namespace {ns.host}, pods in {ns.host}-pN"
                + (f"; host-local dataDir {work / 'host-local'}" if ipam.get("type") == "host-local" else ""),
            ),
            ns,
        )
