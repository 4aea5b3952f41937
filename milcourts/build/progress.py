"""Progress of a build: a bar of runs done, each running run's current cell, and a log per run."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import re
import sys
import threading
from pathlib import Path


class CellProgress(logging.Handler):
    """Writes each run's log (build/logs/NAME.log) and reports each cell started to `events`
    (anything with put((run, cell, cells)): the progress display, or a queue to it from a worker)."""

    def __init__(self, run_name: str, n_cells: int, log_path: Path, events):
        super().__init__()
        self.run_name, self.n_cells, self.events = run_name, n_cells, events
        self.log = log_path.open("w", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.log.write(message + "\n")
        self.log.flush()
        found = re.match(r"Executing Cell (\d+)", message)
        if found and self.events is not None:
            self.events.put((self.run_name, int(found.group(1)), self.n_cells))

    def close(self) -> None:
        self.log.close()
        super().close()


class Progress:
    """A bar of runs done out of the total, followed by the current cell of each run executing.

    On a terminal it is one line redrawn in place, with messages printed above it; in a log (CI,
    a pipe) each change is a line of its own, since carriage returns would garble the log.
    """

    WIDTH = 24

    def __init__(self, total: int, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.done = total, 0
        self.cells: dict[str, tuple[int, int]] = {}
        self.is_terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.lock = threading.Lock()

    def line(self) -> str:
        filled = round(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
        running = ", ".join(f"{name} cell {cell}/{cells}" for name, (cell, cells) in self.cells.items())
        return f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} runs" + (
            f" | {running}" if running else ""
        )

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _draw(self) -> None:
        self._write(f"\r\033[K{self.line()}" if self.is_terminal else self.line() + "\n")

    def message(self, text: str) -> None:
        with self.lock:
            self._write(f"\r\033[K{text}\n" if self.is_terminal else text + "\n")
            if self.is_terminal:
                self._draw()

    def put(self, event: tuple[str, int, int]) -> None:
        name, cell, cells = event
        with self.lock:
            self.cells[name] = (cell, cells)
            self._draw()

    def finished(self, name: str, seconds: float) -> None:
        with self.lock:
            self.done += 1
            self.cells.pop(name, None)
        self.message(f"{name}: done in {seconds:.1f} s")
        if not self.is_terminal:
            with self.lock:
                self._draw()

    def close(self) -> None:
        if self.is_terminal:
            self._write("\n")


@contextlib.contextmanager
def relayed(progress: Progress):
    """A queue worker processes can put cell events on, drained into `progress` by a thread."""
    # from the fork server, like the worker pool: the build process may have run a fit (JAX
    # threads), and forking a threaded process can deadlock the child
    manager = multiprocessing.get_context("forkserver").Manager()
    events = manager.Queue()
    stop = threading.Event()

    def drain():
        while not stop.is_set() or not events.empty():
            try:
                progress.put(events.get(timeout=0.1))
            except queue.Empty:
                continue
            except (EOFError, OSError):  # the manager went away (interruption): nothing more to show
                return

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield events
    finally:
        stop.set()
        thread.join(timeout=2)
        manager.shutdown()
