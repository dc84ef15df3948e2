"""Progress on rank 0: a bar on a terminal, plain log lines otherwise, both with an ETA."""
from __future__ import annotations

import sys
import time


def _duration(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Report ``done / total`` units of work with rate and time left.

    ``unit`` names what is counted (e.g. "trials"); only the root rank should create an
    active instance (``enabled=False`` elsewhere makes every call a no-op).
    """

    def __init__(self, label, total, unit="items", enabled=True, stream=None,
                 log_every=30.0, start_done=0):
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.log_every = 0.2 if self.tty else log_every
        self.start_time = time.monotonic()
        self.start_done = start_done     # work already done when we started (restart)
        self.last_print = -float("inf")
        self.done = start_done

    def update(self, done, force=False):
        if not self.enabled:
            return
        self.done = done
        now = time.monotonic()
        if not force and now - self.last_print < self.log_every:
            return
        self.last_print = now
        self.stream.write(self._line(now))
        self.stream.flush()

    def _line(self, now):
        elapsed = now - self.start_time
        fraction = min(self.done / self.total, 1.0)
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = _duration(left) if left == left else "?"
        stats = f"{100 * fraction:5.1f}%  {rate:.3g} {self.unit}/s  ETA {eta}"
        if self.tty:
            width = 30
            bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
            return f"\r{self.label} [{bar}] {stats}"
        return f"[mpi_glass] {self.label}: {stats}\n"

    def close(self):
        if not self.enabled:
            return
        self.update(self.done, force=True)
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def log(message, enabled=True):
    """A plain log line on stderr (rank 0 only: pass enabled=distributor.is_root)."""
    if enabled:
        print(f"[mpi_glass] {message}", file=sys.stderr, flush=True)
