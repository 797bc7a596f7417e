"""Fan-out of the datapath's drop/trace events to `GET /v1/monitor` streams (like `cilium monitor`).

The ring buffer has one reader (the datapath's event thread); each HTTP
stream is a subscriber with its own bounded queue on the server's event loop.
Trace events cost a ring-buffer write per forwarded packet, so the programs
emit them only while some subscriber asks for them. Subscribers are capped
(`max_subscribers`, 64): past that, `subscribe` refuses (the API answers 429).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from podnet.api.models import MonitorEvent
from podnet.datapath.bpf.maps import Event
from podnet.errors import PodnetError, Reason

log = logging.getLogger("podnet.agent.monitor")

QUEUE_LIMIT = 4096
RECENT = 256
MAX_SUBSCRIBERS = 64


class TooManySubscribersError(PodnetError):
    reason = Reason.too_many_monitors


@dataclass(eq=False)
class Subscriber:
    loop: asyncio.AbstractEventLoop
    types: frozenset[str]
    queue: asyncio.Queue[MonitorEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    lost: int = 0

    def offer(self, event: MonitorEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lost += 1


class Monitor:
    def __init__(
        self,
        describe: Callable[[Event], MonitorEvent],
        set_trace: Callable[[bool], None] | None,
        *,
        max_subscribers: int = MAX_SUBSCRIBERS,
    ):
        self.max_subscribers = max_subscribers
        self._describe = describe
        self._set_trace = set_trace
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self.recent: deque[MonitorEvent] = deque(maxlen=RECENT)

    @property
    def available(self) -> bool:
        return self._set_trace is not None

    def publish(self, raw: Event) -> None:
        """Called on the datapath's event thread."""
        event = self._describe(raw)
        if event.type == "drop":
            self.recent.append(event)
        with self._lock:
            targets = [s for s in self._subscribers if event.type in s.types]
        for sub in targets:
            sub.loop.call_soon_threadsafe(sub.offer, event)

    def subscribe(self, types: frozenset[str]) -> Subscriber:
        sub = Subscriber(asyncio.get_running_loop(), types)
        with self._lock:
            if len(self._subscribers) >= self.max_subscribers:
                raise TooManySubscribersError(
                    f"{len(self._subscribers)} monitors are already streaming (at most {self.max_subscribers}): "
                    "stop one, or try again later"
                )
            self._subscribers.append(sub)
            self._update_trace()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
            self._update_trace()

    def _update_trace(self) -> None:
        if self._set_trace is not None:
            want = any("trace" in s.types for s in self._subscribers)
            try:
                self._set_trace(want)
            except OSError as err:
                log.warning("switching trace events %s: %s", "on" if want else "off", err)
