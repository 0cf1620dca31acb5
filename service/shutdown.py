"""Graceful shutdown, part one: on the first SIGTERM/SIGINT readiness answers 503 at once, and the signal reaches
uvicorn's own handler `shutdown_drain_s` later. uvicorn then stops accepting, lets in-flight requests finish
within `shutdown_timeout_s` (its `timeout_graceful_shutdown`) and runs the lifespan's end."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from service.dataplane import DataPlane

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def drain_on_signal(plane: DataPlane, drain_s: float) -> Iterator[None]:
    """Wrap the server's signal handlers while serving (a no-op off the main thread, e.g. under TestClient)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    timer: threading.Timer | None = None

    def forward(sig: int, frame: FrameType | None) -> None:
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)
        else:  # no server handler (SIG_DFL): let the signal do what it does by default
            signal.signal(sig, handler)
            signal.raise_signal(sig)

    def handle(sig: int, frame: FrameType | None) -> None:
        nonlocal timer
        plane.begin_drain()
        if timer is not None or drain_s <= 0:  # a second signal, or no drain: shut down now
            if timer is not None:
                timer.cancel()
            forward(sig, frame)
            return
        log.info("signal %d: not ready; serving %.3gs more before closing the listening socket", sig, drain_s)
        timer = threading.Timer(drain_s, forward, (sig, None))
        timer.daemon = True
        timer.start()

    for sig in SIGNALS:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
