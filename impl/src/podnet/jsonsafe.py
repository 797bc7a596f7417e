"""JSON from outside (request bodies, CNI network configs), decoded so that no input crashes a server.

`json.loads` alone lets two kinds of valid-looking input through to fail
later, far from the parser: nesting deep enough to hit the recursion limit
(RecursionError, in the decoder or in whatever walks the result), and
`\\ud800`-style escapes that decode to lone surrogates, which cannot be
encoded as UTF-8 (the store, a log line or a reply then fails). `loads`
refuses both, and anything that is not JSON, with `JSONInputError`, a
`ValueError` whose message says what and where.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # podnet's own documents nest 6 levels at most


class JSONInputError(ValueError):
    pass


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    try:
        data = json.loads(raw)
    except RecursionError:
        raise JSONInputError(f"JSON nested too deeply (at most {max_depth} levels)") from None
    except UnicodeDecodeError as err:
        raise JSONInputError(f"not UTF-8: {err.reason} at byte {err.start}") from None
    except ValueError as err:
        raise JSONInputError(str(err)) from None
    check(data, max_depth=max_depth)
    return data


def check(data: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse nesting beyond `max_depth` and strings (keys too) that are not valid Unicode."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "$")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, str):
            _check_text(value, where)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > max_depth:
            raise JSONInputError(f"JSON nested too deeply at {where} (at most {max_depth} levels)")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"{where} (a key)")
                stack.append((item, depth + 1, f"{where}.{key}"))
        else:
            stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        raise JSONInputError(
            f"string at {where[:200]} holds a lone surrogate \\u{ord(bad):04x} (not valid Unicode)"
        ) from None
