"""The backends, by name: one line here adds one (its folder provides `BACKEND`).

Backends are imported when first asked for, so a lab on namespaces never
loads the Vagrant backend's modules and the other way round.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from lab.backends.base import CURRENT, LabError
from lab.backends.lab import AnyLab, Backend, recorded_labs
from lab.model.topology import Topology

BACKENDS: dict[str, str] = {
    "netns": "lab.backends.netns",  # network namespaces on this machine (default)
    "vagrant": "lab.backends.vagrant",  # one VM per node (libvirt, Vagrantfile at the repository's root)
}
DEFAULT = "netns"


def backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise LabError(f"unknown backend {name!r} (backends: {', '.join(BACKENDS)})")
    found: Backend = importlib.import_module(BACKENDS[name]).BACKEND
    return found


def capabilities() -> dict[str, frozenset[str]]:
    """backend -> the capabilities its labs have."""
    return {name: backend(name).lab.capabilities for name in BACKENDS}


def make_lab(topology: Topology, name: str = DEFAULT) -> AnyLab:
    """A lab (not yet up) of the topology on the named backend."""
    lab: AnyLab = backend(name).make(topology)
    return lab


def load_lab(root: Path | None = None) -> AnyLab:
    """The lab that is up (or the one at root), on whichever backend made it."""
    root = root or (CURRENT.resolve() if CURRENT.exists() else None)
    if root is None or not (root / "lab.json").exists():
        raise LabError("no lab is up (start one with `lab up`)")
    state: dict[str, Any] = json.loads((root / "lab.json").read_text())
    lab: AnyLab = backend(state.get("backend", DEFAULT)).lab.from_state(state)
    return lab


def existing_labs() -> list[str]:
    """Labs set up or left behind, on any backend."""
    return sorted({*recorded_labs(), *(item for name in BACKENDS for item in backend(name).lab.leftovers())})


def clean() -> dict[str, list[str]]:
    """`lab clean`: each backend removes what crashed labs left; kind -> what was removed."""
    removed: dict[str, list[str]] = {}
    for name in BACKENDS:
        backend(name).clean(removed)
    return removed
