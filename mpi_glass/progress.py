"""Logging and progress on rank 0: a bar on a terminal, plain log lines otherwise.

Log lines go through the standard ``logging`` module (logger ``mpi_glass``).  The CLI calls
``setup_logging`` once with the rank: rank 0 shows everything from its level up, the other
ranks only warnings and errors, prefixed with their rank, so a 128-rank job logs once.

The time left is only shown once the rate has been measured on real work: the clock starts
at the first work reported after the start (numba compiles and a resumed run reloads its
checkpoints before that), and needs ``RATE_WINDOW`` seconds of work before an ETA is given.
"""
from __future__ import annotations

import logging
import sys
import time

LOGGER = logging.getLogger("mpi_glass")
#: Seconds of measured work before a rate (and so an ETA) is shown.
RATE_WINDOW = 5.0


class _RankFormatter(logging.Formatter):
    """``[mpi_glass] message``, with ``[rank N]`` on ranks other than 0."""

    def __init__(self, rank):
        super().__init__()
        self.prefix = "[mpi_glass] " if rank == 0 else f"[mpi_glass] [rank {rank}] "

    def format(self, record):
        return self.prefix + record.getMessage()


class RankFilter(logging.Filter):
    """Rank 0 passes every record; other ranks pass warnings and errors only."""

    def __init__(self, rank):
        super().__init__()
        self.rank = rank

    def filter(self, record):
        return self.rank == 0 or record.levelno >= logging.WARNING


def setup_logging(rank=0, level=logging.INFO, stream=None):
    """Route the ``mpi_glass`` logger to stderr (or ``stream``) for this rank; idempotent."""
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_RankFormatter(rank))
    handler.addFilter(RankFilter(rank))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False


def log(message, enabled=True):
    """An informational log line (pass enabled=distributor.is_root for rank-0-only lines)."""
    if enabled:
        LOGGER.info(message)


def warn(message):
    """A warning: shown on every rank, with the rank prefixed on ranks other than 0."""
    LOGGER.warning(message)


def _duration(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Report ``done / total`` units of work with rate and time left.

    ``unit`` names what is counted (e.g. "trials"); only the root rank should create an
    active instance (``enabled=False`` elsewhere makes every call a no-op).  ``start_done``
    is the work already done when we started (a resumed run); ``clock`` is for tests.
    """

    def __init__(self, label, total, unit="items", enabled=True, stream=None,
                 log_every=30.0, start_done=0, clock=time.monotonic):
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.log_every = 0.2 if self.tty else log_every
        self.clock = clock
        self.start_done = start_done
        self.baseline = None    # (time, done) of the first work reported: the rate's origin
        self.last_print = -float("inf")
        self.done = start_done

    def update(self, done, force=False):
        if not self.enabled:
            return
        self.done = done
        now = self.clock()
        if self.baseline is None and done > self.start_done:
            self.baseline = (now, done)
        if not force and now - self.last_print < self.log_every:
            return
        self.last_print = now
        if self.tty:
            if LOGGER.isEnabledFor(logging.INFO):
                self.stream.write(self._bar(self._stats(now)))
                self.stream.flush()
        else:
            LOGGER.info(f"{self.label}: {self._stats(now)}")

    def rate(self, now):
        """Units per second measured since the first reported work; None until measured."""
        if self.baseline is None:
            return None
        since, done_then = self.baseline
        if now - since < RATE_WINDOW or self.done <= done_then:
            return None
        return (self.done - done_then) / (now - since)

    def _stats(self, now):
        fraction = min(self.done / self.total, 1.0)
        rate = self.rate(now)
        if fraction >= 1.0:
            return "100.0%  done"
        if rate is None:
            return f"{100 * fraction:5.1f}%  measuring the rate"
        left = (self.total - self.done) / rate
        return f"{100 * fraction:5.1f}%  {rate:.3g} {self.unit}/s  ETA {_duration(left)}"

    def _bar(self, stats):
        width = 30
        fraction = min(self.done / self.total, 1.0)
        bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
        return f"\r{self.label} [{bar}] {stats}"

    def close(self):
        if not self.enabled:
            return
        self.update(self.done, force=True)
        if self.tty and LOGGER.isEnabledFor(logging.INFO):
            self.stream.write("\n")
            self.stream.flush()
