"""Background processes of ``guard serve``: the incident scan and the retention scheduler.

Each runs in a process of its own (spawned, never forked: the API process has threads), so a
slow pass slows only itself, never a request worker, the event loop or the API's GIL. A process
runs its pass function until asked to stop, and exits when ``guard serve`` stops or dies: it
watches its parent between passes. What a pass does, and how it survives a failing pass, is
the pass loop's: ``guard.incidents.worker.run_scanner``, ``guard.subjects.worker.run_scheduler``.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from multiprocessing.process import BaseProcess
    from multiprocessing.synchronize import Event as ProcessEvent

    from guard.config import Settings

#: How often (seconds) a waiting process checks that ``guard serve`` is still there.
PARENT_CHECK_SECONDS = 1.0


class PassLoop(Protocol):
    """A module-level function that runs passes until ``stop`` is set (picklable for spawn)."""

    def __call__(
        self,
        settings: Settings,
        stop: threading.Event | ProcessEvent,
        *,
        parent_pid: int | None = None,
    ) -> None:
        """Run until stopped (or the parent is gone)."""
        ...


def wait_or_stop(
    stop: threading.Event | ProcessEvent, seconds: float, parent_pid: int | None
) -> bool:
    """Wait ``seconds`` (or until stopped); True when the loop should end."""
    left = seconds
    while left > 0:
        step = min(left, PARENT_CHECK_SECONDS)
        if stop.wait(step):
            return True
        if parent_pid is not None and os.getppid() != parent_pid:
            return True  # guard serve is gone; do not outlive it
        left -= step
    return stop.is_set()


def _process_main(loop: PassLoop, settings: Settings, stop: ProcessEvent, parent_pid: int) -> None:
    from guard.logging import configure_logging  # noqa: PLC0415 - a fresh (spawned) process

    configure_logging(settings)
    loop(settings, stop, parent_pid=parent_pid)


class BackgroundProcess:
    """One background process of ``guard serve``: start it, stop it."""

    def __init__(self, settings: Settings, loop: PassLoop, *, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._process: BaseProcess = context.Process(
            target=_process_main,
            args=(loop, settings, self._stop, os.getpid()),
            name=name,
            daemon=True,
        )

    def start(self) -> None:
        """Start the process."""
        self._process.start()

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self._process.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to stop after its current pass; terminate the process if it does not."""
        self._stop.set()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout)
