"""Attach BPF programs to a device's tc clsact hook (ingress or egress), with libbpf.

Filters are created with a fixed handle and priority, so attaching again
replaces the program atomically (the agent restarting) and detaching finds it.
They stay in the kernel after the agent exits; they go with the device.
"""

from __future__ import annotations

import ctypes

from podnet.datapath.bpf import libbpf

HANDLE = 1
PRIORITY = 1
DIRECTIONS = {"ingress": libbpf.BPF_TC_INGRESS, "egress": libbpf.BPF_TC_EGRESS}


def _hook(ifindex: int, direction: str) -> libbpf.TcHook:
    return libbpf.TcHook(sz=ctypes.sizeof(libbpf.TcHook), ifindex=ifindex, attach_point=DIRECTIONS[direction])


def _opts(prog_fd: int = 0, flags: int = 0) -> libbpf.TcOpts:
    return libbpf.TcOpts(
        sz=ctypes.sizeof(libbpf.TcOpts), prog_fd=prog_fd, flags=flags, handle=HANDLE, priority=PRIORITY
    )


def attach(ifindex: int, direction: str, prog_fd: int) -> int:
    """Attach (or replace) the program; returns its id."""
    lib = libbpf.lib()
    hook = _hook(ifindex, direction)
    rc = lib.bpf_tc_hook_create(ctypes.byref(hook))
    if rc < 0 and rc != -17:  # EEXIST: the clsact qdisc is already there
        libbpf.check(rc, f"creating the clsact qdisc on ifindex {ifindex}")
    opts = _opts(prog_fd, libbpf.BPF_TC_F_REPLACE)
    libbpf.check(
        lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)), f"attaching to {direction} of ifindex {ifindex}"
    )
    return int(opts.prog_id)


def attached(ifindex: int, direction: str) -> int | None:
    """The id of podnet's program on that hook, or None."""
    opts = _opts()
    rc = libbpf.lib().bpf_tc_query(ctypes.byref(_hook(ifindex, direction)), ctypes.byref(opts))
    if rc in (-2, -19, -22):  # no filter / no device / no qdisc
        return None
    libbpf.check(rc, f"querying {direction} of ifindex {ifindex}")
    return int(opts.prog_id)


def detach(ifindex: int, direction: str) -> bool:
    rc = libbpf.lib().bpf_tc_detach(ctypes.byref(_hook(ifindex, direction)), ctypes.byref(_opts()))
    if rc in (-2, -19, -22):
        return False
    libbpf.check(rc, f"detaching from {direction} of ifindex {ifindex}")
    return True
