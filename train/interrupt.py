"""Ctrl-C and SIGTERM stop training at a step boundary, never inside a step.

Raising from a signal handler would interrupt a step anywhere (after D's update but before
G's, inside a BatchNorm forward) and the checkpoint taken then would hold half of the next
step. So the handler only records the request; the loop finishes its step, checkpoints and
raises `Stopped`. A second signal raises KeyboardInterrupt at once, saving nothing.
"""
from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger("ganrt.train")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """Training stopped at a step boundary on a signal; its checkpoint is saved."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped at step {step}")
        self.step = step


class StopRequests:
    """While active, SIGINT and SIGTERM ask for a stop at the next step boundary (main thread only)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # asked twice: stop now, mid-step, without saving
        self.signal = signum
        log.warning("%s: stopping after this step, with a checkpoint (send it again to stop at once, without one)",
                    signal.Signals(signum).name)

    def __enter__(self) -> "StopRequests":
        # Python delivers signals to the main thread only; a trainer driven from another
        # thread keeps the default behaviour.
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
