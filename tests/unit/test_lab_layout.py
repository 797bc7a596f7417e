"""The harness's shape: no import cycle (lazy imports included), a backend's types only inside its
folder, a kind per module, modules kept small."""

from __future__ import annotations

from pathlib import Path

from lab.backends import registry
from lab.backends.base import CAPABILITIES
from tests import imports

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab"


def test_no_import_cycle_in_lab_not_even_through_lazy_imports() -> None:
    assert imports.cycles(imports.graph(LAB, ROOT, nested=True)) == []


def test_a_backends_modules_are_imported_only_inside_its_folder() -> None:
    edges = imports.graph(LAB, ROOT, nested=True)
    offenders = [
        f"{module} imports {target}"
        for module, targets in edges.items()
        for target in targets
        for backend in registry.BACKENDS
        if target.startswith(f"lab.backends.{backend}") and not module.startswith(f"lab.backends.{backend}")
    ]
    assert offenders == [], "go through lab.backends.registry (and the LabNode/BaseLab interface)"


def test_no_isinstance_on_a_backend_type_outside_its_folder() -> None:
    classes = {"NetnsNode", "NetnsLab", "VagrantNode", "VagrantLab"}
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in LAB.rglob("*.py")
        if "backends/netns" not in path.as_posix() and "backends/vagrant" not in path.as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "isinstance(" in line and any(c in line for c in classes)
    ]
    assert offenders == []


def test_every_backend_declares_known_capabilities() -> None:
    for name, capabilities in registry.capabilities().items():
        assert capabilities <= set(CAPABILITIES), f"{name}: {capabilities - set(CAPABILITIES)}"


def test_reports_read_results_only() -> None:
    edges = imports.graph(LAB, ROOT, nested=True)
    for module, targets in edges.items():
        if module.startswith("lab.report"):
            assert all(t.startswith(("lab.report", "lab.scenario.results")) for t in targets), (module, targets)


def test_lab_modules_are_small_or_say_why() -> None:
    assert imports.too_big(LAB, ROOT) == []
