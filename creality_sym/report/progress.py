"""A one-line progress display for report steps that take more than a second.

On a terminal, a step that is still running after ``delay`` seconds shows a
spinner, its elapsed time and an optional detail (``step.update("gamma 3/12")``),
redrawn in place. When the step ends the line is replaced by the step's
summary. When the stream is not a terminal nothing is drawn: only the
summaries are printed, one line each, so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_SPINNER = "|/-\\"


class Step:
    """One running step: set ``summary`` for the final line, ``update()`` for detail."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.detail = ""
        self.summary = ""
        self.start = time.perf_counter()

    def update(self, detail: str) -> None:
        """Show ``detail`` next to the step's title (terminal only)."""
        self.detail = detail

    @property
    def elapsed(self) -> float:
        """Seconds since the step started."""
        return time.perf_counter() - self.start


class Progress:
    """Numbered steps printed to ``stream`` (default: stdout).

    ``enabled=None`` draws the live line only when ``stream`` is a terminal.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay: float = 1.0,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = enabled
        self.delay = delay
        self.count = 0

    def _prefix(self) -> str:
        width = len(str(self.total))
        return f"[{self.count:>{width}}/{self.total}]"

    @contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """Run one step; on exit print ``[k/N] title: summary (t s)``."""
        self.count += 1
        step = Step(title)
        stop = threading.Event()
        drawer = None
        if self.live:
            drawer = threading.Thread(target=self._draw, args=(step, stop), daemon=True)
            drawer.start()
        failed = True
        try:
            yield step
            failed = False
        finally:
            stop.set()
            if drawer is not None:
                drawer.join()
                self.stream.write("\r\033[K")
            status = "failed" if failed else step.summary
            self.stream.write(f"{self._prefix()} {title}: {status} ({step.elapsed:.1f} s)\n")
            self.stream.flush()

    def _draw(self, step: Step, stop: threading.Event) -> None:
        if stop.wait(self.delay):
            return
        tick = 0
        while not stop.is_set():
            detail = f"  {step.detail}" if step.detail else ""
            line = (
                f"{self._prefix()} {step.title} {_SPINNER[tick % 4]} {step.elapsed:.0f} s{detail}"
            )
            self.stream.write("\r\033[K" + line[:150])
            self.stream.flush()
            tick += 1
            stop.wait(0.2)

    def note(self, text: str) -> None:
        """Print a line that is not a step (warnings, the final path)."""
        self.stream.write(text + "\n")
        self.stream.flush()
