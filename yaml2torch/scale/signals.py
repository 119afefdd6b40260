"""SIGINT/SIGTERM -> a ``StopRequested`` raised in the main thread, so the current trial ends at once.

``StopRequested`` derives from KeyboardInterrupt: ``except Exception`` in training code does not
swallow it. A second signal while stopping exits immediately (status 128 + signal number).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequested(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the listed signals raise StopRequested (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if received:
            sys.stderr.write(f"yaml2torch: second {signal.Signals(signum).name}, exiting now\n")
            os._exit(128 + signum)
        received.append(signum)
        raise StopRequested(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
