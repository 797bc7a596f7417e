"""Drop and trace events from the programs' ring buffer, read on a thread of their own."""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable

from podnet.datapath.bpf import libbpf
from podnet.datapath.bpf.maps import Event

log = logging.getLogger("podnet.datapath.bpf")

EventSink = Callable[[Event], None]


class EventReader:
    def __init__(self, map_fd: int, sink: EventSink):
        self._sink = sink
        self._lib = libbpf.lib()
        # Keep a reference: ctypes frees the C trampoline with the Python object.
        self._callback = libbpf.SAMPLE_FN(self._on_sample)
        self._rb = libbpf.check_ptr(self._lib.ring_buffer__new(map_fd, self._callback, None, None), "ring buffer")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bpf-events", daemon=True)
        self._thread.start()

    def _on_sample(self, _ctx: int | None, data: int | None, size: int) -> int:
        if not data:
            return 0
        try:
            self._sink(Event.unpack(ctypes.string_at(data, size)))
        except Exception:  # a callback must not raise into C
            log.exception("handling a BPF event")
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            rc = self._lib.ring_buffer__poll(self._rb, 200)
            if rc < 0 and rc != -4:  # EINTR
                log.error("reading BPF events stopped: error %d", rc)
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._lib.ring_buffer__free(self._rb)
