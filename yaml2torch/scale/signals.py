"""SIGINT/SIGTERM -> a ``StopRequested`` raised in the main thread, so the current trial ends at once.

``StopRequested`` derives from KeyboardInterrupt: ``except Exception`` in training code does not
swallow it. A second signal while stopping exits immediately (status 128 + signal number).

A signal that lands while the main thread is inside code that holds locks or an open database
transaction (SQLAlchemy, Optuna, the journal's lock, logging, threading) is held back until that
code returns to its caller: an exception raised inside it can leave an SQLite write transaction
open or a lock held, and the stopping worker then waits on itself for ever when it records the
interrupted trial (seen in CI). The caller's next line raises it, through a trace function set on
that one frame (as ``pdb.set_trace`` does), so nothing polls and no other signal is used.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# Modules (and their submodules) that must not be interrupted by an exception.
SHIELDED_MODULES = (
    "sqlalchemy",
    "optuna",
    "psycopg",
    "threading",
    "logging",
    "yaml2torch.scale.journal",
    "yaml2torch.scale.budget",
)


class StopRequested(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.interrupted_trial: int | None = None  # set by the worker loop when it stopped a trial
        self.said = False  # the stop was said in a line of its own: the CLI adds none
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def is_shielded(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return any(name == module or name.startswith(module + ".") for module in SHIELDED_MODULES)


def in_shielded_code(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a caller of it runs in one of SHIELDED_MODULES."""
    while frame is not None:
        if is_shielded(frame):
            return True
        frame = frame.f_back
    return False


def shield_boundary(frame: FrameType | None) -> FrameType | None:
    """The frame that called the outermost shielded frame on ``frame``'s stack (where a held-back
    signal can be raised): ``frame`` itself when nothing is shielded, None when every frame is
    (then the signal waits for the end of the block)."""
    boundary = None
    while frame is not None:
        if is_shielded(frame):
            boundary = None
        elif boundary is None:
            boundary = frame
        frame = frame.f_back
    return boundary


class _Stop:
    """One ``stop_on_signals`` block's state: the signal received and whether it was raised."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.raised = False
        self.traced = False
        self.previous_trace = sys.gettrace()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            sys.stderr.write(f"yaml2torch: second {signal.Signals(signum).name}, exiting now\n")
            os._exit(128 + signum)
        self.signum = signum
        boundary = shield_boundary(frame)
        if boundary is frame:  # nothing shielded on the stack
            self.raise_now()
        if boundary is not None:
            boundary.f_trace = self.at_boundary
            boundary.f_trace_lines = True
            self.traced = True
            sys.settrace(_trace_nothing_new)  # line events reach the boundary's own f_trace only

    def at_boundary(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self.raised:
            return None
        if event == "return":  # the boundary returns without another line: stop in its caller
            if frame.f_back is not None:
                frame.f_back.f_trace = self.at_boundary
                frame.f_back.f_trace_lines = True
            return self.at_boundary
        self.raise_now()

    def raise_now(self) -> None:
        assert self.signum is not None
        self.raised = True
        raise StopRequested(self.signum)

    def end(self) -> None:
        if self.traced:
            sys.settrace(self.previous_trace)


def _trace_nothing_new(frame: FrameType, event: str, arg: Any) -> None:
    return None


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the listed signals raise StopRequested (main thread only; a no-op elsewhere).

    A signal still held back when the block ends is raised as it exits.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stop = _Stop()
    previous = {signum: signal.signal(signum, stop.on_signal) for signum in signals}
    try:
        yield
    finally:
        stop.end()
        for signum, old in previous.items():
            signal.signal(signum, old)
    if stop.signum is not None and not stop.raised:
        stop.raise_now()
