"""Builds the compiled parts into the wheel: the podnet-cni binary (C,
impl/src/podnet/cni/shim/) and the eBPF object (impl/src/podnet/datapath/bpf/,
clang -target bpf against Debian's libbpf-dev headers).

Everything else is declared in pyproject.toml. The wheel carries a compiled
binary, so it is tagged for this platform rather than "any".
"""

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

SRC = Path(__file__).resolve().parent / "src" / "podnet"
SHIM = SRC / "cni" / "shim" / "podnet-cni.c"
BPF = SRC / "datapath" / "bpf" / "endpoint.c"
# The same flags as podnet.datapath.bpf.CLANG_FLAGS (setup.py cannot import the package it builds).
BPF_FLAGS = ["-O2", "-g", "-Wall", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]


class BuildWithShim(build_py):
    def run(self) -> None:
        super().run()
        out = Path(self.build_lib) / "podnet" / "cni" / "bin" / "podnet-cni"
        out.parent.mkdir(parents=True, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-Wall", "-D_GNU_SOURCE", "-o", str(out), str(SHIM)], check=True)
        obj = Path(self.build_lib) / "podnet" / "datapath" / "bpf" / "obj" / "endpoint.o"
        obj.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["clang", *BPF_FLAGS, "-c", str(BPF), "-o", str(obj)], check=True)


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithShim}, distclass=BinaryDistribution)
