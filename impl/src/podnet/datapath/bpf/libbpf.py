"""A thin ctypes binding of Debian's libbpf1: only the calls podnet uses.

libbpf >= 1.0 reports failures as a negative errno (int calls) or NULL with
errno set (pointer calls); `check` and `check_ptr` turn both into OSError.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

from podnet.errors import PodnetError


class LibbpfMissingError(PodnetError):
    pass


c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_char_p = ctypes.c_char_p
c_size_t = ctypes.c_size_t
c_uint32 = ctypes.c_uint32
c_uint64 = ctypes.c_uint64

BPF_TC_INGRESS = 1 << 0
BPF_TC_EGRESS = 1 << 1
BPF_TC_F_REPLACE = 1 << 0
BPF_ANY = 0


class TcHook(ctypes.Structure):
    _fields_ = [("sz", c_size_t), ("ifindex", c_int), ("attach_point", c_int), ("parent", c_uint32)]


class TcOpts(ctypes.Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint32),
        ("prog_id", c_uint32),
        ("handle", c_uint32),
        ("priority", c_uint32),
    ]


SAMPLE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)

_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_object__open_file": (c_void_p, [c_char_p, c_void_p]),
    "bpf_object__load": (c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__find_program_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__next_map": (c_void_p, [c_void_p, c_void_p]),
    "bpf_program__name": (c_char_p, [c_void_p]),
    "bpf_program__fd": (c_int, [c_void_p]),
    "bpf_program__set_log_buf": (c_int, [c_void_p, c_void_p, c_size_t]),
    "bpf_program__set_log_level": (c_int, [c_void_p, c_uint32]),
    "bpf_map__name": (c_char_p, [c_void_p]),
    "bpf_map__fd": (c_int, [c_void_p]),
    "bpf_map__set_pin_path": (c_int, [c_void_p, c_char_p]),
    "bpf_map__set_max_entries": (c_int, [c_void_p, c_uint32]),
    "bpf_map__max_entries": (c_uint32, [c_void_p]),
    "bpf_map__key_size": (c_uint32, [c_void_p]),
    "bpf_map__value_size": (c_uint32, [c_void_p]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_tc_hook_create": (c_int, [c_void_p]),
    "bpf_tc_attach": (c_int, [c_void_p, c_void_p]),
    "bpf_tc_detach": (c_int, [c_void_p, c_void_p]),
    "bpf_tc_query": (c_int, [c_void_p, c_void_p]),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_set_print": (c_void_p, [c_void_p]),
    "ring_buffer__new": (c_void_p, [c_int, SAMPLE_FN, c_void_p, c_void_p]),
    "ring_buffer__poll": (c_int, [c_void_p, c_int]),
    "ring_buffer__free": (None, [c_void_p]),
}

_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """libbpf.so.1, loaded once, with every signature declared."""
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("bpf") or "libbpf.so.1"
        try:
            loaded = ctypes.CDLL(name, use_errno=True)
        except OSError as err:
            raise LibbpfMissingError(f"cannot load libbpf ({name}): {err}; install Debian's libbpf1") from err
        for fn, (restype, argtypes) in _SIGNATURES.items():
            func = getattr(loaded, fn)
            func.restype = restype
            func.argtypes = argtypes
        # Quiet: libbpf prints to stderr by default; podnet reports errors itself.
        loaded.libbpf_set_print(None)
        _lib = loaded
    return _lib


def check(result: int, what: str) -> int:
    if result < 0:
        raise OSError(-result, f"{what}: {os.strerror(-result)}")
    return result


def check_ptr(result: int | None, what: str) -> int:
    if not result:
        err = ctypes.get_errno() or 22
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def num_possible_cpus() -> int:
    return check(lib().libbpf_num_possible_cpus(), "counting possible CPUs")
