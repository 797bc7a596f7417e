"""Step, check and fault kinds: each is one module of `lab/scenario/steps/`, `checks/` or `faults/`.

A module named after its kind defines `KIND`: the kind's pydantic model (what
a scenario file may say) and the function that does it — `run(ctx, spec)`
for a step, `evaluate(ctx, spec) -> CheckResult` for a check. The packages
find their modules themselves (`discover`), so adding a kind is adding one
file; the scenario schema is built from what they find, so a kind that does
not exist cannot be written in a scenario.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, model_validator

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.results import CheckResult

S = TypeVar("S", bound=BaseModel)


def _none(spec: Any) -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class Outcome:
    """What a step's action did, for the report (and, with an exit status, for `expect`)."""

    command: str
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class StepKind(Generic[S]):
    name: str
    spec: type[S]
    run: Callable[[Context, S], Outcome]
    has_output: bool = False  # runs a command with an exit status: `expect` applies
    requires: Callable[[S], frozenset[str]] = _none  # lab capabilities a step of this spec needs

    @property
    def doc(self) -> str:
        return _doc(self.spec)


@dataclass(frozen=True)
class CheckKind(Generic[S]):
    name: str
    spec: type[S]
    evaluate: Callable[[Context, S], CheckResult]
    prepare: Callable[[Context, S], None] | None = None  # before the step's action (e.g. a log mark)
    requires: Callable[[S], frozenset[str]] = _none

    @property
    def doc(self) -> str:
        return _doc(self.spec)


def _doc(spec: type[BaseModel]) -> str:
    """The first paragraph of the kind's module docstring."""
    return (sys.modules[spec.__module__].__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


@dataclass(frozen=True)
class Undo:
    """How to take a fault back: what it does (for the report) and the call that does it."""

    description: str
    call: Callable[[], object]


@dataclass(frozen=True)
class FaultKind(Generic[S]):
    """A fault a `fault` step applies; `apply` returns how to restore it."""

    name: str
    spec: type[S]
    apply: Callable[[Context, S], Undo]
    requires: Callable[[S], frozenset[str]] = _none

    @property
    def doc(self) -> str:
        return _doc(self.spec)


K = TypeVar("K", StepKind[Any], CheckKind[Any], FaultKind[Any])


class OneKind(Strict):
    """A mapping whose one key names a kind of `KINDS` (a check, a fault); the model built from the
    registry (`create_model(…, __base__=…)`) has one optional field per kind."""

    KINDS: ClassVar[Mapping[str, Any]] = {}
    WHAT: ClassVar[str] = "kind"

    @model_validator(mode="after")
    def _one(self) -> OneKind:
        given = [k for k in self.KINDS if getattr(self, k, None) is not None]
        if len(given) != 1:
            raise ValueError(f"a {self.WHAT} is exactly one of {', '.join(self.KINDS)} (got {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in self.KINDS if getattr(self, k, None) is not None)

    @property
    def spec(self) -> BaseModel:
        value = getattr(self, self.kind)
        assert isinstance(value, BaseModel)
        return value


def discover(package: ModuleType, kind_type: type[K]) -> dict[str, K]:
    """name -> KIND of every module of the package; a module's name is its kind's name."""
    found: dict[str, K] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, kind_type):
            raise TypeError(f"{module.__name__} defines no KIND ({kind_type.__name__})")
        if kind.name != info.name:
            raise TypeError(f"{module.__name__}: KIND is named {kind.name!r}; a kind lives in the module of its name")
        found[kind.name] = kind
    return found
