"""Where the compiled podnet-cni binary is (the wheel builds it; a source tree builds it on first use)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from podnet.errors import PodnetError

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "podnet-cni.c"
HEADERS = (HERE / "podnet-cni-json.h",)
BUILT = HERE.parent / "bin" / "podnet-cni"


def binary() -> Path:
    """The podnet-cni binary; in a source checkout (editable install) it is compiled here once."""
    sources = [p for p in (SOURCE, *HEADERS) if p.exists()]
    if BUILT.exists() and all(BUILT.stat().st_mtime >= p.stat().st_mtime for p in sources):
        return BUILT
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None or not SOURCE.exists():
        raise PodnetError(f"podnet-cni is not built ({BUILT}) and no C compiler is available to build it")
    BUILT.parent.mkdir(parents=True, exist_ok=True)
    tmp = BUILT.with_suffix(".tmp")
    proc = subprocess.run(
        [cc, "-O2", "-Wall", "-D_GNU_SOURCE", "-o", str(tmp), str(SOURCE)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise PodnetError(f"building {BUILT} failed: {proc.stderr.strip()}")
    tmp.rename(BUILT)
    return BUILT
