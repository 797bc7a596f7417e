"""Scenario files: one flow each, validated; errors name the file, the step and the field.

A scenario is a topology reference and a list of steps. A step does one thing
(one key naming a step kind: `docker`, `exec`, `cni`, …), may `expect` things
of its output, may record packets on named interfaces while it runs (`pcap`),
and may carry `checks` (each one key naming a check kind) evaluated after it,
retried up to `within` seconds. Strings may use variables: `{image}`, per
node `{node1.pod_cidr}`, `{node1.router_ip}`, `{node1.ip}`, and every value a
`capture` step saved (`{app1.ip}`).

The `Step` and `Check` models are built from the kinds `lab/scenario/steps/`
and `lab/scenario/checks/` provide, so the schema (`lab schema scenario`)
and the parser know exactly the kinds that exist.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, create_model, model_validator

from lab.backends.base import CAPABILITIES
from lab.model.files import Strict, load_yaml_model
from lab.model.topology import Topology
from lab.scenario.checks import CHECKS
from lab.scenario.kinds import OneKind
from lab.scenario.steps import STEPS


class ScenarioError(ValueError):
    pass


class Expect(Strict):
    ok: bool = True
    stdout_contains: str | None = None
    stderr_contains: str | None = None


class Pcap(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    node: str
    interface: str


class CheckBase(OneKind):
    """One key: the check's kind."""

    KINDS = CHECKS
    WHAT = "check"


class StepBase(Strict):
    """A step: a name, at most one action (a key naming its kind), and what to check after it."""

    name: str = Field(min_length=1)
    within: float | None = Field(default=None, gt=0, le=120, description="retry the checks until they pass, up to N s")
    expect: Expect | None = None
    pcap: list[Pcap] = Field(default_factory=list)
    checks: list[CheckBase] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_action(self) -> StepBase:
        given = [k for k in STEPS if getattr(self, k, None) is not None]
        if len(given) > 1:
            raise ValueError(f"a step does one thing: {', '.join(STEPS)} (got {', '.join(given)})")
        if not given and not self.checks:
            raise ValueError(f"a step needs an action ({', '.join(STEPS)}) or checks")
        if self.within is not None and not self.checks:
            raise ValueError("within applies to checks: the step has none")
        if self.expect is not None and not (given and STEPS[given[0]].has_output):
            kinds = [k for k, kind in STEPS.items() if kind.has_output]
            raise ValueError(f"expect applies to {' and '.join([', '.join(kinds[:-1]), kinds[-1]])} steps")
        return self

    @property
    def kind(self) -> str:
        """The step's action kind, or "checks" for a step that only checks."""
        return next((k for k in STEPS if getattr(self, k, None) is not None), "checks")

    @property
    def spec(self) -> BaseModel | None:
        value = getattr(self, self.kind, None)
        return value if isinstance(value, BaseModel) else None

    def requires(self) -> frozenset[str]:
        """The lab capabilities this step's action and checks need."""
        needed: set[str] = set()
        spec = self.spec
        if spec is not None:
            needed |= STEPS[self.kind].requires(spec)
        for check in self.checks:
            needed |= CHECKS[check.kind].requires(check.spec)
        return frozenset(needed)


def _list_of(item: Any) -> Any:
    return list.__class_getitem__(item)


Check: type[CheckBase] = create_model(
    "Check",
    __base__=CheckBase,
    __doc__="A check: exactly one key, its kind.",
    **{name: (kind.spec | None, Field(default=None, description=kind.doc)) for name, kind in CHECKS.items()},  # type: ignore[call-overload]
)
Step: type[StepBase] = create_model(
    "Step",
    __base__=StepBase,
    __doc__=StepBase.__doc__,
    checks=(_list_of(Check), Field(default_factory=list)),
    **{name: (kind.spec | None, Field(default=None, description=kind.doc)) for name, kind in STEPS.items()},  # type: ignore[call-overload]
)


def _capability(item: str) -> str:
    if item not in CAPABILITIES:
        close = difflib.get_close_matches(item, CAPABILITIES, n=1)
        hint = f"did you mean {close[0]}?" if close else f"capabilities: {', '.join(CAPABILITIES)}"
        raise ValueError(f"unknown capability {item!r}; {hint}")
    return item


Capability = Annotated[str, AfterValidator(_capability)]


class ScenarioBase(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    seeds: list[str] = Field(default_factory=list, description="source documents this flow replays")
    topology: str = "default"
    requires: list[Capability] = Field(
        default_factory=list,
        description="lab capabilities the scenario needs beyond what its steps imply (see `lab schema scenario`)",
    )
    backends: list[str] | None = Field(
        default=None, description="deprecated: the backends it runs on; say what it needs with `requires`"
    )
    steps: list[StepBase] = Field(min_length=1)
    cleanup: list[StepBase] = Field(default_factory=list, description="always run, even after a failure")
    path: Path | None = Field(default=None, exclude=True)

    def needs(self) -> frozenset[str]:
        """Every capability the scenario needs: declared, and implied by its steps and checks."""
        needed = set(self.requires)
        for step in [*self.steps, *self.cleanup]:
            needed |= step.requires()
        return frozenset(needed)

    def names_used(self) -> frozenset[str]:
        """The lab members the scenario names: in the variables only a lab member has
        (`{node.pod_cidr}`, `{node.tor_ip}`, `{node.router_ip}`, `{router.name}`: a container's
        `{app1.ip}` is not one) and as a step's or check's `node`."""
        found: set[str] = set()

        def walk(value: Any, key: str = "") -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, str(k))
            elif isinstance(value, list):
                for v in value:
                    walk(v, key)
            elif isinstance(value, str):
                found.update(re.findall(r"\{([a-z][a-z0-9-]*)\.(?:tor_ip|router_ip|pod_cidr|name)\}", value))
                if key == "node":
                    found.add(value)

        walk(self.model_dump(exclude={"path", "description", "name", "seeds"}))
        return frozenset(found)

    def why_not_on(self, topology: Topology) -> str:
        """Why it cannot run on a lab of `topology` when that is not its own: it names routers or nodes
        the topology does not have. Empty when it can."""
        members = {r.name for r in topology.routers()} | {n.name for n in topology.nodes}
        missing = sorted(self.names_used() - members)
        if missing:
            return (
                f"names {', '.join(missing)}, which topology {topology.name} does not have "
                f"(the scenario is written for {self.topology})"
            )
        return ""

    def why_not(self, backend: str, capabilities: frozenset[str]) -> str:
        """Why it cannot run on a lab of this backend; empty when it can."""
        missing = sorted(self.needs() - capabilities)
        if missing:
            return f"needs {', '.join(missing)}, which the {backend} backend does not have"
        if self.backends is not None and backend not in self.backends:
            return f"declares backends {', '.join(self.backends)} (deprecated: use requires)"
        return ""


Scenario: type[ScenarioBase] = create_model(
    "Scenario",
    __base__=ScenarioBase,
    __doc__="A scenario file: one flow, as steps on a lab of one topology.",
    steps=(_list_of(Step), Field(min_length=1)),
    cleanup=(_list_of(Step), Field(default_factory=list, description="always run, even after a failure")),
)


def _location(data: Any, loc: tuple[Any, ...]) -> str:
    """'step 3 (start app1): docker.args' from a pydantic error location."""
    parts: list[str] = []
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in ("steps", "cleanup") and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            name = ""
            with contextlib.suppress(KeyError, IndexError, TypeError):
                name = f" ({data[key][index]['name']})"
            parts.append(f"{'step' if key == 'steps' else 'cleanup step'} {index + 1}{name}")
            i += 2
            continue
        parts.append(str(key))
        i += 1
    if not parts:
        return "(top level)"
    if not parts[0].startswith(("step ", "cleanup step ")):
        return ".".join(parts)
    rest = ".".join(parts[1:])
    return f"{parts[0]}: {rest}" if rest else parts[0]


def load_scenario(path: str | Path, scenarios_dir: Path | None = None) -> ScenarioBase:
    """A scenario file, or a name in the scenarios directory."""
    source = Path(path)
    if not source.exists() and scenarios_dir is not None and (scenarios_dir / f"{path}.yaml").exists():
        source = scenarios_dir / f"{path}.yaml"
    scenario = load_yaml_model(source, Scenario, ScenarioError, "scenario", _location)
    scenario.path = source
    return scenario
