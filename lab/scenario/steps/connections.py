"""`connections`: open named long-lived flows between containers or CNI pods (TCP: one connection sending a
sequence number every 10 ms; UDP: a datagram each), which run until the scenario ends; `connection` checks
read them later (no reset, no gap, the longest silence)."""

from __future__ import annotations

import shlex
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, RootModel, model_validator

from lab.backends.node import LabNode
from lab.model.files import Strict
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import Outcome, StepKind

PROBE = (Path(__file__).resolve().parents[1] / "probe.py").read_text()


class End(Strict):
    node: str
    container: str | None = None
    pod: str | None = Field(default=None, description="a pod made by a cni step (its netns, its {pod}.ip)")

    @model_validator(mode="after")
    def _one(self) -> End:
        if (self.container is None) == (self.pod is None):
            raise ValueError("give container or pod (one of them)")
        return self

    @property
    def label(self) -> str:
        return str(self.container or self.pod)


class Flow(Strict):
    proto: Literal["tcp", "udp"] = "tcp"
    source: End = Field(alias="from")
    to: End
    port: int = Field(default=9000, ge=1, le=65535)
    interval_ms: int = Field(default=10, ge=1, le=1000)


Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]


class Connections(RootModel[dict[Name, Flow]]):
    """name -> flow; `connection: {name: …}` checks read it."""


def stats_file(ctx: Context, name: str, role: str) -> str:
    return f"/tmp/pn-probe-{ctx.lab.run_id}-{name}-{role}.json"


def _in_container(node: LabNode, container: str) -> str:
    pid = node.docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    if not pid.isdigit() or pid == "0":
        raise StepFailed(f"{container} on {node.name} is not running")
    return f"/proc/{pid}/ns/net"


def _start(node: LabNode, netns: str, args: list[str]) -> str:
    """The probe in the background, in that namespace, with the node's python3; its PID."""
    script = f'nohup nsenter --net={netns} python3 -c "$PN_PROBE" {shlex.join(args)} >/dev/null 2>&1 & echo $!'
    return node.cmd("sh", "-c", script, env={"PN_PROBE": PROBE}).stdout.strip()


def _stop(node: LabNode, pid: str, out: str) -> None:
    """The probe stopped (waited for until it is gone or a zombie, up to 2 s, then killed), and its
    stats file removed. A zombie writes nothing more; waiting for it to be reaped is waiting for
    the machine's init (1.5 s here), not for the probe."""
    script = (
        f"kill {pid} 2>/dev/null; i=0; while [ $i -lt 40 ]; do "
        f"case \"$(ps -o stat= -p {pid} 2>/dev/null | tr -d ' ')\" in ''|Z*) break;; esac; "
        "sleep 0.05; i=$((i+1)); done; "
        f"kill -9 {pid} 2>/dev/null; rm -f {shlex.quote(out)} {shlex.quote(out + '.tmp')}"
    )
    node.cmd("sh", "-c", script, check=False)


def _netns(ctx: Context, node: LabNode, end: End) -> str:
    if end.pod is not None:
        return ctx.lab.pods().pod_netns(node, end.pod)
    assert end.container is not None
    return _in_container(node, end.container)


def _address(ctx: Context, node: LabNode, end: End) -> str:
    if end.pod is not None:
        ip = ctx.variables.get(f"{end.pod}.ip")
        if ip is None:
            raise StepFailed(f"no pod {end.pod!r} on {node.name}: a cni step makes it first (ADD)")
        return ip
    assert end.container is not None
    return node.docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", end.container
    ).stdout.strip()


def run(ctx: Context, spec: Connections) -> Outcome:
    lines = []
    for name, flow in spec.root.items():
        src, dst = ctx.node(flow.source.node), ctx.node(flow.to.node)
        ip = _address(ctx, dst, flow.to)
        receiver = _start(
            dst, _netns(ctx, dst, flow.to), ["receive", flow.proto, str(flow.port), stats_file(ctx, name, "receiver")]
        )
        sender = _start(
            src,
            _netns(ctx, src, flow.source),
            ["send", flow.proto, ip, str(flow.port), str(flow.interval_ms / 1000), stats_file(ctx, name, "sender")],
        )
        for node, pid, role in ((dst, receiver, "receiver"), (src, sender, "sender")):
            ctx.cleanups.append(partial(_stop, node, pid, stats_file(ctx, name, role)))
        ctx.variables[f"{name}.ip"] = ip
        lines.append(
            f"{name}: {flow.proto} {flow.source.label}@{src.name} -> {flow.to.label}@{dst.name} {ip}:{flow.port}"
        )
    return Outcome("connections " + ", ".join(spec.root), stdout="\n".join(lines))


def requires(spec: Connections) -> frozenset[str]:
    pods = any(end.pod for flow in spec.root.values() for end in (flow.source, flow.to))
    return frozenset({"host-cni-runtime"}) if pods else frozenset()


KIND = StepKind("connections", Connections, run, requires=requires)
