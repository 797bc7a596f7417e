"""`{name}` substitution in scenario strings, leaving docker's `{{…}}` templates alone."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, RootModel

VAR = re.compile(r"(?<!\{)\{([A-Za-z][\w.-]*)\}(?!\})")


class VariableError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def substitute(text: str, variables: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables)) or "none"
            raise VariableError(f"unknown variable {{{name}}} (known: {known})")
        return variables[name]

    return VAR.sub(one, text)


def resolve(value: Any, variables: dict[str, str]) -> Any:
    """Substitute every string inside a value (models, lists, dicts)."""
    if isinstance(value, str):
        return substitute(value, variables)
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    if isinstance(value, RootModel):
        return type(value).model_validate(resolve(value.root, variables))
    if isinstance(value, BaseModel):
        data = {info.alias or k: resolve(getattr(value, k), variables) for k, info in type(value).model_fields.items()}
        return type(value).model_validate(data)
    return value


def dig(data: Any, path: str) -> Any:
    """`a.b.0.c` into nested JSON."""
    current = data
    for part in path.split(".") if path else []:
        if isinstance(current, list):
            current = current[int(part)]
        elif isinstance(current, dict):
            current = current[part]
        else:
            raise KeyError(path)
    return current
