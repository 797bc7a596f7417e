"""Deleting endpoint veths in the background (podnet.datapath.veth hands them over)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from podnet.datapath.errors import DatapathError

log = logging.getLogger("podnet.datapath")


class Deleter(Protocol):
    def delete_endpoint(self, endpoint_id: str, ip: str | None) -> bool: ...
    def delete_endpoints(self, endpoints: list[tuple[str, str | None]]) -> None: ...
    def close(self) -> None: ...


class Reaper:
    """Deletes endpoint veths on its own thread and netlink socket.

    Deleting a veth waits for an RCU grace period (~18 ms here): docker's
    DeleteEndpoint need not wait for it (its sandbox, and with it the pod's
    end, is already gone); a runtime's DEL does (`wait`), since it may ADD the
    same container and interface again at once. The endpoint's /32 route is removed with the veth,
    and only for that veth's ifindex, so a new endpoint reusing the IP meanwhile
    keeps its route. A veth the reaper fails to delete is found by the agent's
    leaked-veth collection.

    What is queued when the thread comes round is deleted together (`delete_endpoints`: one grace
    period for the lot), up to BATCH at a time; a batch the kernel refuses is retried one by one.
    """

    BATCH = 64

    def __init__(self, deleter: Callable[[], Deleter]):
        self._queue: queue.SimpleQueue[tuple[str, str | None] | None] = queue.SimpleQueue()
        self._deleter = deleter
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._done: dict[str, threading.Event] = {}  # endpoint -> set once its veth is deleted
        self._thread = threading.Thread(target=self._run, name="veth-reaper", daemon=True)
        self._thread.start()

    def submit(self, endpoint_id: str, ip: str | None) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
            self._done.setdefault(endpoint_id, threading.Event())
        self._queue.put((endpoint_id, ip))

    def wait(self, endpoint_id: str, timeout_s: float) -> bool:
        """Until the endpoint's deletion is done (True; also when none is pending), or the timeout."""
        with self._lock:
            done = self._done.get(endpoint_id)
        return done is None or done.wait(timeout_s)

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        return self._idle.wait(timeout_s)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _delete(self, datapath: Deleter, batch: list[tuple[str, str | None]]) -> None:
        try:
            if len(batch) > 1:
                datapath.delete_endpoints(batch)
            else:
                datapath.delete_endpoint(*batch[0])
        except DatapathError as err:
            if len(batch) == 1:
                log.warning("deleting the veth of endpoint %s: %s", batch[0][0], err)
            else:
                log.warning("deleting %d endpoint veths together: %s; one by one instead", len(batch), err)
                for endpoint_id, ip in batch:
                    try:
                        datapath.delete_endpoint(endpoint_id, ip)
                    except DatapathError as one:
                        log.warning("deleting the veth of endpoint %s: %s", endpoint_id, one)
        with self._lock:
            for endpoint_id, _ip in batch:
                done = self._done.pop(endpoint_id, None)
                if done is not None:
                    done.set()
                self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    def _run(self) -> None:
        datapath = self._deleter()  # its own netlink socket, made on this thread
        try:
            while (item := self._queue.get()) is not None:
                batch = [item]
                stop = False
                while len(batch) < self.BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._delete(datapath, batch)
                if stop:
                    break
        finally:
            datapath.close()
