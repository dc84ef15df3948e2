"""One signal contract for every command, serial or under any MPI launcher.

SIGTERM, SIGUSR1 (SLURM's warning before a time limit) and SIGINT (Ctrl-C) stop a run: what
is done is kept - simulate checkpoints its chains, select keeps its old outputs and drops its
staging folder - and the command exits 75 with one line ("rerun the same command").

* The handlers are installed before anything heavy is imported (``python -m mpi_glass``
  does it first), so a signal during start-up is not lost, and again after MPI
  initialisation: MPICH takes over SIGUSR1's disposition when it starts.
* A handler either raises ``Interrupted`` at once (the default), or, inside ``deferred()``,
  only records the signal for a loop that checks ``received()`` at safe points - simulate's
  chains, which checkpoint there.  Compiled (numba) code never sees an exception raised
  under it there.
* A handler that runs where Python cannot raise (a weakref callback or ``__del__``, e.g.
  inside importlib's module locks) has its ``Interrupted`` "ignored"; our unraisable hook
  delivers the signal again a moment later, so it raises at the next ordinary point, with no
  traceback.
* Elsewhere an exception raised under a numba call can surface as another error
  ("SystemError: ... returned a result with an exception set"); the CLI reports any error
  that ends a run after a stop signal as the interruption it is (``received``).

Examples
--------
>>> previous = install()
>>> with deferred():
...     signal.raise_signal(signal.SIGUSR1)      # recorded, not raised
...     received()
'SIGUSR1'
>>> restore(previous); reset()
"""
from __future__ import annotations

import _thread
import signal
import sys
import threading
from contextlib import contextmanager

from .errors import Interrupted

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

_state = {"raised": None, "deferred": 0}
_REDELIVERY_DELAY_S = 0.01       # long enough for a weakref callback or __del__ to return


def _handler(signum, frame):
    name = signal.Signals(signum).name
    record(name)
    if not _state["deferred"]:
        raise Interrupted(name)


def _redeliver_unraisable(unraisable):
    """An ``Interrupted`` raised where it cannot propagate is neither lost nor printed: the
    signal is delivered again a moment later, from a helper thread, so that its handler runs
    once this callback has returned and raises at the next ordinary point."""
    if not isinstance(unraisable.exc_value, Interrupted):
        _state["unraisable_hook"](unraisable)
        return
    signum = signal.Signals[unraisable.exc_value.args[0]]
    try:
        threading.Timer(_REDELIVERY_DELAY_S, _redeliver, (signum,)).start()
    except RuntimeError:         # interpreter shutting down: the signal stays recorded
        pass


def _redeliver(signum):
    if signal.getsignal(signum) is _handler:     # not once the command has restored its own
        _thread.interrupt_main(signum)


def _install_unraisable_hook():
    if sys.unraisablehook is not _redeliver_unraisable:
        _state["unraisable_hook"] = sys.unraisablehook
        sys.unraisablehook = _redeliver_unraisable


def install():
    """Install the handlers of the stop signals (main thread); returns the previous ones."""
    previous = {"unraisablehook": sys.unraisablehook}
    _install_unraisable_hook()
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, _handler)
    return previous


def install_for_library():
    """Outside the CLI (a notebook running ``Simulation.run``): SIGTERM and SIGUSR1 get our
    handler, SIGINT stays the caller's (Ctrl-C raises KeyboardInterrupt as usual)."""
    _install_unraisable_hook()
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        if signal.getsignal(sig) is not _handler:
            signal.signal(sig, _handler)


def restore(previous):
    """Put back the handlers ``install`` returned (a library caller's own)."""
    for key, handler in previous.items():
        if key == "unraisablehook":
            sys.unraisablehook = handler
        elif handler is not None:
            signal.signal(key, handler)


def received():
    """The name of the first stop signal received, or None."""
    return _state["raised"]


def record(name):
    """Note a stop signal as if it had been received (tests, or a caller's own stop)."""
    if _state["raised"] is None:
        _state["raised"] = name


def reset():
    """Forget a received signal and leave deferred mode (start of a command)."""
    _state["raised"], _state["deferred"] = None, 0


def defer():
    """From now on (until ``reset``) stop signals are only recorded (simulate's chains)."""
    _state["deferred"] += 1


@contextmanager
def deferred():
    """Within the block, stop signals are only recorded: the code checks ``received()``."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1


def start_up():
    """``python -m mpi_glass``, first thing: install, and only record until main() starts."""
    install()
    defer()
    _state["start_up"] = True


def begin_command():
    """main(): a signal received during start-up raises now; one left over from an earlier
    run in this process (a library call, a test) is forgotten."""
    if not _state.pop("start_up", False):
        _state["raised"] = None
    raising()


def raising():
    """Leave deferred mode: the next stop signal raises; one already received raises now."""
    _state["deferred"] = 0
    check()


def check():
    """Raise ``Interrupted`` if a stop signal has been received."""
    if _state["raised"] is not None:
        raise Interrupted(_state["raised"])
