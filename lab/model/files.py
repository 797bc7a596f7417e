"""The lab's YAML files: one strict base model, errors that name the file and the field, did-you-mean.

Every model of a scenario or topology file derives from `Strict` (unknown
fields are refused). `load_yaml_model` turns pydantic's errors into one line
per problem, `<file>: <where>: <what>`, and an unknown field gets the nearest
known one: `step 3 (x): expect.stdout_contain: unknown field; did you mean
stdout_contains?`.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(ValueError):
    """A model validator's error about one field: `where` is its path below the model
    (`("nodes", 3, "uplinks")`), so the message names the field, not the top level."""

    def __init__(self, where: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.where = where


def field_names(model: type[BaseModel]) -> list[str]:
    """What a file may say in this model (aliases where they are set)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may hold (Optional, unions and Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _inside(annotation: Any, part: str | int) -> list[Any]:
    """The types one step further along an error location."""
    found: list[Any] = []
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, RootModel):
            found += _inside(member.model_fields["root"].annotation, part)
        elif isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            for name, info in member.model_fields.items():
                if part in (name, info.alias):
                    found.append(info.annotation)
        elif origin in (list, tuple) and isinstance(part, int):
            found += list(typing.get_args(member)[:1])
        elif origin is dict and isinstance(part, str):
            found += list(typing.get_args(member)[1:2])
    return found


def suggestion(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """For an unknown field at `loc`: 'did you mean …?' or the fields that exist there."""
    candidates: list[Any] = [model]
    for part in loc[:-1]:
        candidates = [t for c in candidates for t in _inside(c, part)]
    known = sorted(
        {
            name
            for c in candidates
            for m in _members(c)
            if isinstance(m, type) and issubclass(m, BaseModel)
            for name in field_names(m)
        }
    )
    if not known:
        return "unknown field"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {close[0]}?"
    return f"unknown field (known here: {', '.join(known)})"


def describe_errors(
    err: ValidationError,
    model: type[BaseModel],
    data: Any,
    location: Callable[[Any, tuple[Any, ...]], str],
) -> list[str]:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"]) + tuple(getattr(e.get("ctx", {}).get("error"), "where", ()))
        if e["type"] == "extra_forbidden" and loc:
            message = suggestion(model, loc)
        else:
            message = str(e["msg"]).removeprefix("Value error, ")
        lines.append(f"{location(data, loc)}: {message}")
    return lines


def load_yaml_model(
    source: Path,
    model: type[M],
    error: type[Exception],
    what: str,
    location: Callable[[Any, tuple[Any, ...]], str],
) -> M:
    """Parse `source` as YAML into `model`; every problem becomes one `error` line per field."""
    try:
        data = yaml.safe_load(source.read_text())
    except OSError as err:
        raise error(f"{source}: cannot read {what}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise error(f"{source}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise error(f"{source}: a {what} is a mapping (see README: The lab)")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise error("\n".join(f"{source}: {line}" for line in describe_errors(err, model, data, location))) from None


def dotted(data: Any, loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc) or "(top level)"
