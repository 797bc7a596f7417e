"""podnet's eBPF datapath: the C programs (endpoint.c, podnet.h) and their compiled object.

The wheel carries `obj/endpoint.o` (built by impl/setup.py with clang); a
source checkout compiles it on first use.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from podnet.errors import PodnetError

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "endpoint.c"
HEADERS = [HERE / "podnet.h"]
BUILT = HERE / "obj" / "endpoint.o"
# Debian keeps <asm/types.h> under the multiarch include dir, which -target bpf does not search.
CLANG_FLAGS = ["-O2", "-g", "-Wall", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]


class BpfBuildError(PodnetError):
    pass


def compile_object(source: Path, out: Path) -> None:
    clang = shutil.which("clang")
    if clang is None:
        raise BpfBuildError(
            f"cannot build {out.name}: clang is not installed (Debian: apt-get install clang libbpf-dev)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    proc = subprocess.run([clang, *CLANG_FLAGS, "-c", str(source), "-o", str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BpfBuildError(f"compiling {source.name} failed:\n{proc.stderr.strip()}")
    tmp.rename(out)


def object_file() -> Path:
    """The compiled endpoint object (compiled here once in a source checkout)."""
    sources = [SOURCE, *HEADERS]
    newest = max((p.stat().st_mtime for p in sources if p.exists()), default=0.0)
    if BUILT.exists() and BUILT.stat().st_mtime >= newest:
        return BUILT
    if not SOURCE.exists():
        raise BpfBuildError(f"{BUILT} is missing and its source is not shipped")
    compile_object(SOURCE, BUILT)
    return BUILT
