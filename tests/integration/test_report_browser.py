"""The report as a person sees it: rendered by headless Chromium (Debian's), screenshot, pixels counted.

Not only HTML text: the topology drawing, the `lab up` timeline and the
libnetwork sequence are SVG, so the test looks for their colours on the
rendered page.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from PIL import Image

from lab.report import write_run
from lab.report.svg import CALL_ARROW, ROLE_COLORS, TIMELINE_BAR
from lab.scenario.results import RunResult
from tests.unit.test_lab_cli import topology_result

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def screenshot(page: Path, out: Path, profile: Path) -> Image.Image:
    assert CHROMIUM, "Debian's chromium is not installed (ci/bootstrap installs it)"
    proc = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            "--window-size=1400,1400",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), proc.stderr[-2000:]
    return Image.open(out).convert("RGB")


def pixels_of(image: Image.Image, colour: str, tolerance: int = 0) -> int:
    """How many pixels are this colour (within a tolerance per channel: lines are antialiased)."""
    want = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    counts = image.getcolors(maxcolors=1 << 24) or []
    return sum(n for n, rgb in counts if all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True)))


def test_the_topology_page_renders_its_drawings(tmp_path: Path) -> None:
    run = RunResult("r1", tmp_path / "r1", "2026-11-30 12:00:00")
    run.topologies = [topology_result(tmp_path, "default", False)]
    write_run(run)
    page = tmp_path / "r1" / "default-fake01" / "report.html"
    image = screenshot(page, tmp_path / "page.png", tmp_path / "profile")
    assert image.size == (1400, 1400)
    worker_fill, _ = ROLE_COLORS["worker"]
    control_fill, _ = ROLE_COLORS["control"]
    assert pixels_of(image, worker_fill) > 5000, "no worker boxes drawn"
    assert pixels_of(image, control_fill) > 2000, "the control node is not drawn with its role"
    assert pixels_of(image, TIMELINE_BAR) > 500, "no lab-up timeline bars"
    assert pixels_of(image, CALL_ARROW, tolerance=40) > 300, "no libnetwork call sequence drawn"
    index = screenshot(tmp_path / "r1" / "index.html", tmp_path / "index.png", tmp_path / "profile")
    assert pixels_of(index, "#c0262d") > 50, "the index does not show the failure in red"
