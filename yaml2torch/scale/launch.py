"""Worker processes on this machine: start them, follow the study while they run, stop them together.

Each worker runs in its own session (a terminal's Ctrl-C reaches only the launcher, which passes
one SIGINT/SIGTERM to each worker) and gets SIGTERM if the launcher dies (Linux). The workers'
stderr comes back through the launcher's ``say``, line by line: a worker writing to the terminal
itself would land its line on the end of the launcher's live progress bar.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from yaml2torch.scale.signals import StopRequested, stop_on_signals

PARENT_PID_OPTION = "--parent-pid"


def launch_workers(
    commands: Sequence[Sequence[str]],
    *,
    on_poll: Callable[[], None] = lambda: None,
    busy: Callable[[], bool] = lambda: True,
    say: Callable[[str], None],
    poll: float = 1.0,
) -> list[int]:
    """Run the worker command lines until all exit; ``on_poll`` between looks. Their exit codes.

    Each command gets ``--parent-pid <this pid>`` appended (see ``terminate_with_parent``).
    Raises StopRequested after SIGINT/SIGTERM, once the signal was passed on and the workers exited.
    ``busy`` says whether the workers still have work (a trial running or one to start): only then
    does a signal stop them, and only then is that said.
    """
    processes = [
        subprocess.Popen(
            [*command, PARENT_PID_OPTION, str(os.getpid())],
            start_new_session=True,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        for command in commands
    ]
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()  # said from this thread only: one line at a time
    relays = [_relay(process.stderr, lines) for process in processes if process.stderr is not None]

    def say_lines() -> None:
        while not lines.empty():
            say(lines.get())

    try:
        with stop_on_signals():
            try:
                while any(p.poll() is None for p in processes):
                    time.sleep(poll)
                    say_lines()
                    on_poll()
            except StopRequested as stop:
                say_lines()
                running = [p for p in processes if p.poll() is None]
                if running and busy():  # else they are done and only exiting: nothing to stop
                    say(f"yaml2torch: {stop.signal_name}: stopping {len(running)} workers")
                    stop.said = True
                for process in running:
                    process.send_signal(stop.signum)
                for process in running:
                    process.wait(60)
                raise
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for relay in relays:
            relay.join(5)  # the last lines (a worker's summary) before anything the caller prints
        say_lines()
    on_poll()
    codes = [p.returncode for p in processes]
    failed = [code for code in codes if code != 0]
    if failed:
        say(f"yaml2torch: {len(failed)} of {len(processes)} workers exited with errors ({failed})")
    return codes


def _relay(stream: IO[str], lines: queue.SimpleQueue[str]) -> threading.Thread:
    """A thread that queues each line of a worker's stderr until the worker closes it."""

    def relay() -> None:
        with stream:
            for line in stream:
                lines.put(line.rstrip("\n"))

    thread = threading.Thread(target=relay, name="worker-stderr", daemon=True)
    thread.start()
    return thread


def terminate_with_parent(parent_pid: int) -> bool:
    """In a launched worker: get SIGTERM when the launcher dies (Linux). False if it is gone already."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return True
    return os.getppid() == parent_pid  # it may have died before prctl took effect
