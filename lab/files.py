"""Reading the lab's YAML files with errors that name the file and the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


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
        lines = [
            f"{source}: {location(data, tuple(e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in err.errors()
        ]
        raise error("\n".join(lines)) from None


def dotted(data: Any, loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc) or "(top level)"
