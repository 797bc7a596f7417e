"""Builds the podnet-cni binary (C, impl/src/podnet/cni/shim/) into the wheel.

Everything else is declared in pyproject.toml. The wheel carries a compiled
binary, so it is tagged for this platform rather than "any".
"""

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

SHIM = Path(__file__).resolve().parent / "src" / "podnet" / "cni" / "shim" / "podnet-cni.c"


class BuildWithShim(build_py):
    def run(self) -> None:
        super().run()
        out = Path(self.build_lib) / "podnet" / "cni" / "bin" / "podnet-cni"
        out.parent.mkdir(parents=True, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-Wall", "-D_GNU_SOURCE", "-o", str(out), str(SHIM)], check=True)


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithShim}, distclass=BinaryDistribution)
