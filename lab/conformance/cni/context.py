"""What a CNI rule works with: the subject, the kernel, the version it checks, and calls made as a
runtime makes them (CNI_* in the environment, the configuration on stdin), each one recorded.

A subject is a plugin with the configuration it is tested with: where its
delegated plugins are (`CNI_PATH`), how to see the IPs its IPAM holds (a
`Probe`, or none: then rules about releasing IPs cannot be checked), and
what it needs from the host namespace.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from lab.conformance.kernel import Kernel
from lab.conformance.model import CannotCheck, Failed

NETWORK = "cfnet"


class Probe(Protocol):
    """The IPs an IPAM holds now: ip -> who holds it (as the IPAM records it)."""

    @property
    def what(self) -> str:
        """For people: "host-local's dataDir /tmp/…"."""
        ...

    def held(self) -> dict[str, str]: ...


@dataclass
class Subject:
    name: str
    plugin: str  # the executable
    conf: dict[str, Any]  # the plugin configuration object (cniVersion and name are set per call)
    description: str
    cni_path: list[str] = field(default_factory=list)
    probe: Probe | None = None
    prepare: Callable[[Kernel], None] | None = None  # before every ADD (host-device: its device present)
    max_attachments: int | None = None  # attachments it can hold at once (host-device: 1)
    unavailable: Callable[[], AbstractContextManager[None]] | None = None  # makes it unable to serve ADD
    chain: str = "/usr/lib/cni/tuning"  # the plugin a chain runs after it
    chain_conf: dict[str, Any] = field(default_factory=dict)  # more of its configuration (tuning's dataDir)
    known: dict[str, str] = field(default_factory=dict)  # rule id -> why it is known to fail
    how: str = ""  # how the suite runs it (its namespaces, an agent it started)


@dataclass
class Call:
    command: str
    env: dict[str, str]
    stdin: str
    status: int
    stdout: str
    stderr: str
    seconds: float
    output: Any = None  # stdout decoded, or None
    undecodable: bool = False  # stdout was not JSON
    plugin: str = ""  # which executable answered (the subject's, or a chained one)

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def code(self) -> int | None:
        code = self.output.get("code") if isinstance(self.output, dict) else None
        return code if isinstance(code, int) else None

    @property
    def text(self) -> str:
        """The error's msg and details (for messages that must name something)."""
        if not isinstance(self.output, dict):
            return self.stdout
        return f"{self.output.get('msg', '')} {self.output.get('details', '')}"

    def describe(self) -> str:
        shown = self.stdout.strip() or "(nothing on stdout)"
        if len(shown) > 400:
            shown = shown[:400] + "…"
        tail = f"; stderr: {self.stderr.strip()[:200]}" if self.status != 0 and self.stderr.strip() else ""
        return f"{self.command} exited {self.status}: {shown}{tail}"


@dataclass
class Attachment:
    netns: str
    container_id: str
    ifname: str
    version: str
    add: Call

    @property
    def result(self) -> dict[str, Any]:
        return self.add.output if isinstance(self.add.output, dict) else {}

    def ips(self) -> list[str]:
        return [str(ip.get("address", "")).split("/")[0] for ip in self.result.get("ips", []) if isinstance(ip, dict)]


_ids = itertools.count()


@dataclass
class Context:
    subject: Subject
    kernel: Kernel
    version: str
    claimed: list[str]
    tested: list[str]
    run_id: str = "0"
    transcript: list[Call] = field(default_factory=list)  # this rule's calls
    history: list[Call] = field(default_factory=list)  # the calls of the rules before it

    # -- configuration and identities ------------------------------------------------------
    def conf(self, version: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"cniVersion": version or self.version, "name": NETWORK, **self.subject.conf, **extra}

    def container_id(self) -> str:
        return f"cf{self.run_id}c{next(_ids)}"

    def env(self, command: str, netns: str = "", container_id: str = "", ifname: str = "eth0") -> dict[str, str]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": ":".join(self.subject.cni_path),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=conformance;K8S_POD_NAME={_pod_name(container_id)}",
        }
        return {k: v for k, v in env.items() if v}

    # -- calls ---------------------------------------------------------------------------------
    def run(self, env: Mapping[str, str], stdin: str | bytes, plugin: str | None = None, timeout: float = 60.0) -> Call:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        executable = plugin or self.subject.plugin
        done = self.kernel.run([executable], env, data, timeout)
        out = done.stdout.decode(errors="replace")
        call = Call(
            env.get("CNI_COMMAND", "(no CNI_COMMAND)"),
            dict(env),
            data.decode(errors="replace"),
            done.status,
            out,
            done.stderr.decode(errors="replace"),
            done.seconds,
            plugin=executable,
        )
        if out.strip():
            try:
                call.output = json.loads(out)
            except ValueError:
                call.undecodable = True
        self.transcript.append(call)
        return call

    def call(
        self,
        command: str,
        conf: Mapping[str, Any] | None = None,
        *,
        netns: str = "",
        container_id: str = "",
        ifname: str = "eth0",
        plugin: str | None = None,
    ) -> Call:
        return self.run(
            self.env(command, netns, container_id, ifname),
            json.dumps(conf if conf is not None else self.conf()),
            plugin,
        )

    def add(
        self, netns: str, container_id: str, ifname: str = "eth0", version: str | None = None, **extra: Any
    ) -> Call:
        if self.subject.prepare is not None:
            self.subject.prepare(self.kernel)
        return self.call("ADD", self.conf(version, **extra), netns=netns, container_id=container_id, ifname=ifname)

    def delete(self, a: Attachment, *, netns: str | None = None, prev: bool = True) -> Call:
        conf = self.conf(a.version)
        if prev and a.add.ok and _has_prev_result(a.version):
            conf["prevResult"] = a.result
        return self.call(
            "DEL", conf, netns=a.netns if netns is None else netns, container_id=a.container_id, ifname=a.ifname
        )

    def check(self, a: Attachment, *, prev: bool = True) -> Call:
        conf = self.conf(a.version)
        if prev:
            conf["prevResult"] = a.result
        return self.call("CHECK", conf, netns=a.netns, container_id=a.container_id, ifname=a.ifname)

    @contextmanager
    def attached(
        self, ifname: str = "eth0", version: str | None = None, *, must: bool = True, **extra: Any
    ) -> Iterator[Attachment]:
        """An attachment made by ADD in a new pod namespace; DEL and the namespace's removal after.
        With `must`, an ADD that fails fails the rule (it needs an attachment to check anything)."""
        netns = self.kernel.new_pod()
        a = Attachment(netns, self.container_id(), ifname, version or self.version, Call("ADD", {}, "", -1, "", "", 0))
        try:
            a.add = self.add(netns, a.container_id, ifname, a.version, **extra)
            if must and not a.add.ok:
                raise Failed("could not make an attachment to check: ADD failed", "ADD succeeds", a.add.describe())
            yield a
        finally:
            try:
                if a.add.status != -1:
                    self.delete(a)
            finally:
                self.kernel.remove_pod(netns)

    # -- what the IPAM holds -------------------------------------------------------------------
    def held(self) -> dict[str, str]:
        if self.subject.probe is None:
            ipam = (
                self.subject.conf.get("ipam", {}).get("type")
                if isinstance(self.subject.conf.get("ipam"), dict)
                else None
            )
            raise CannotCheck(
                f"the suite has no probe for {'IPAM ' + repr(ipam) if ipam else 'this plugin’s IPAM'} "
                "(it knows host-local's dataDir and podnet's agent)"
            )
        return self.subject.probe.held()


def _pod_name(container_id: str) -> str:
    """The pod a runtime would name beside the container: a Kubernetes name even when the container id
    is deliberately malformed (so that a rule about CNI_CONTAINERID judges only that)."""
    return container_id if re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", container_id) else "cfpod"


def _has_prev_result(version: str) -> bool:
    """DEL carries prevResult from 0.4.0 on (the runtime may omit it if it has none)."""
    return tuple(int(p) for p in version.split(".")) >= (0, 4, 0)


def names(items: Sequence[str]) -> str:
    return ", ".join(items) or "none"
