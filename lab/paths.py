"""Where the harness finds a podnet checkout: impl/ (the stack it deploys), scenarios/, the Vagrantfile.

The `lab` command works from a checkout: installed from one (`pip install -e .`
or tox), it knows its own; installed as a wheel, it looks in the working
directory and its parents, or where `--repo`/`LAB_REPO` says. Topologies ship
inside the package (lab/topologies/).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


class RepoError(RuntimeError):
    pass


def is_checkout(path: Path) -> bool:
    return (path / "impl" / "pyproject.toml").is_file() and (path / "scenarios").is_dir()


@cache
def repo() -> Path:
    """The podnet checkout this harness works on."""
    named = os.environ.get("LAB_REPO")
    if named:
        if not is_checkout(Path(named)):
            raise RepoError(f"LAB_REPO={named} is not a podnet checkout (no impl/pyproject.toml and scenarios/)")
        return Path(named).resolve()
    here = Path.cwd().resolve()
    for candidate in [here, *here.parents, Path(__file__).resolve().parents[1]]:
        if is_checkout(candidate):
            return candidate
    raise RepoError(
        "the lab works on a podnet checkout (it builds impl/ and runs scenarios/): "
        "run it from inside one, or pass --repo PATH (or set LAB_REPO)"
    )


def scenarios() -> Path:
    return repo() / "scenarios"


def all_scenarios() -> list[Path]:
    return sorted(scenarios().glob("*.yaml"))
