"""`capture`: save values for later steps (`{name}`): from docker, a command, an endpoint, the agent API, eBPF counters."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, RootModel, model_validator

from lab.model.files import Strict
from lab.model.variables import dig
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import Outcome, StepKind

SOURCES = ("docker", "exec", "endpoint_of", "agent", "counter_of")


class CaptureSource(Strict):
    """Where a captured value comes from: one of docker / exec / endpoint_of / agent / counter_of."""

    node: str
    docker: list[str] | None = None
    exec: list[str] | None = None
    endpoint_of: str | None = Field(default=None, description="a container name: its podnet endpoint")
    agent: str | None = Field(default=None, description="an agent API path, e.g. /v1/node")
    counter_of: str | None = Field(
        default=None,
        description="a host-side veth: its eBPF counters (podnet bpf counters), e.g. field drops.policy denied",
    )
    field: str | None = Field(default=None, description="dotted path into the JSON (endpoint_of, agent, counter_of)")

    @model_validator(mode="after")
    def _one(self) -> CaptureSource:
        given = [k for k in SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
        if (self.endpoint_of or self.agent or self.counter_of) and not self.field:
            raise ValueError("endpoint_of, agent and counter_of need a field (a dotted path into the JSON)")
        return self


Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")]


class Capture(RootModel[dict[Name, CaptureSource]]):
    """name -> source; each becomes the variable {name}."""


def value_of(ctx: Context, source: CaptureSource) -> str:
    node = ctx.node(source.node)
    if source.docker is not None:
        return node.docker(*source.docker).stdout.strip()
    if source.exec is not None:
        return node.cmd(*source.exec).stdout.strip()
    client = node.agent()
    field = source.field or ""
    data: Any
    if source.counter_of is not None:
        entries = client.request("GET", "/v1/bpf")["counters"]
        entry = next((c for c in entries if c.get("interface-name") == source.counter_of), None)
        if entry is None:
            raise StepFailed(f"no eBPF counters for {source.counter_of} on {source.node}")
        if field.startswith("drops."):  # only reasons that happened are listed
            return str(entry["drops"].get(field.removeprefix("drops."), 0))
        data = entry
    elif source.endpoint_of is not None:
        endpoint_id = node.endpoint_id(source.endpoint_of)
        if not endpoint_id:
            raise StepFailed(f"{source.endpoint_of} on {source.node} has no network endpoint")
        data = client.endpoint_get(endpoint_id)
    else:
        data = client.request("GET", source.agent)
    return str(dig(data, field))


def run(ctx: Context, spec: Capture) -> Outcome:
    lines = []
    for name, source in spec.root.items():
        ctx.variables[name] = value_of(ctx, source)
        lines.append(f"{name} = {ctx.variables[name]}")
    return Outcome("capture " + ", ".join(spec.root), stdout="\n".join(lines))


KIND = StepKind("capture", Capture, run)
