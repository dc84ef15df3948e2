"""The CLI contract: exit statuses, global flags anywhere, help for everything, logging by
rank, and the SLURM script that requeues on status 75 only."""
import argparse
import errno
import io
import logging
import os
import subprocess
from pathlib import Path

import pytest

from mpi_glass import cli
from mpi_glass.errors import InputError, Interrupted
from mpi_glass.progress import LOGGER, log, setup_logging, warn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _detach_logging():
    yield
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)


def _parsers(parser=None):
    """The main parser and every subparser below it."""
    parser = parser or cli.build_parser()
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_has_help_and_every_subcommand_a_description_and_example():
    parsers = list(_parsers())
    assert len(parsers) >= 9     # main, 4 commands, 4 benchmarks
    for parser in parsers:
        for action in parser._actions:
            if action.option_strings or action.dest in ("preset",):
                assert action.help, f"{parser.prog} {action.option_strings}: no help"
    main = parsers[0]
    for name, sub in next(a for a in main._actions
                          if isinstance(a, argparse._SubParsersAction)).choices.items():
        assert sub.description, name
        assert "example:" in sub.epilog and "exit status" in sub.epilog, name


def test_exit_statuses_are_documented_in_help():
    text = cli.build_parser().format_help()
    for status in ("0", "1", "2", "75"):
        assert f"\n  {status} " in text
    assert "please report" in text and "--debug" in text


@pytest.mark.parametrize("argv", [
    ["--debug", "--quiet", "config", "keys"],
    ["config", "keys", "--debug", "--quiet"],
    ["--debug", "config", "keys", "--quiet"],
    ["bench", "mc", "--debug", "--quiet"],
])
def test_global_flags_before_or_after_the_subcommand(argv):
    args = cli.build_parser().parse_args(argv)
    assert args.debug and args.quiet and not args.verbose


def _failing(exc):
    def command(args, dist):
        raise exc
    return command


@pytest.mark.parametrize("exc, status, fragments", [
    (RuntimeError("boom"), 1, ("internal error RuntimeError: boom", "please report",
                               "--debug")),
    (InputError("cfg.toml: system.n: must be >= 3"), 2, ("cfg.toml: system.n",)),
    (OSError(errno.ENOSPC, "No space left on device", "out/sim.h5"), 2,
     ("out/sim.h5: No space left on device",)),
    (Interrupted("SIGTERM"), 75, ("stopped by SIGTERM", "rerun the same command")),
    (KeyboardInterrupt(), 75, ("stopped by SIGINT",)),
])
def test_exit_status_and_one_line(monkeypatch, capsys, exc, status, fragments):
    monkeypatch.setitem(cli._COMMANDS, "config", _failing(exc))
    monkeypatch.setenv("MPI_GLASS_SERIAL", "1")
    assert cli.main(["config"]) == status
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_debug_after_the_subcommand_shows_the_traceback(monkeypatch):
    monkeypatch.setitem(cli._COMMANDS, "config", _failing(RuntimeError("boom")))
    monkeypatch.setenv("MPI_GLASS_SERIAL", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["config", "--debug"])


def test_rank_filter_and_levels():
    stream = io.StringIO()
    setup_logging(rank=1, level=logging.INFO, stream=stream)
    log("only rank 0 says this")
    warn("every rank says this")
    assert stream.getvalue() == "[mpi_glass] [rank 1] every rank says this\n"
    stream = io.StringIO()
    setup_logging(rank=0, level=logging.WARNING, stream=stream)      # --quiet
    log("progress")
    warn("careful")
    assert stream.getvalue() == "[mpi_glass] careful\n"
    setup_logging(rank=0, level=logging.INFO, stream=stream)
    log("now shown")
    assert stream.getvalue().endswith("[mpi_glass] now shown\n")


def test_quiet_silences_the_log_of_a_run(tmp_path):
    from conftest import cli as run_cli, write_config
    config = write_config(tmp_path)
    loud = run_cli("simulate", "--config", config, "--out", tmp_path / "a")
    quiet = run_cli("simulate", "--config", config, "--out", tmp_path / "b", "--quiet")
    assert "wrote" in loud.stderr and quiet.stderr == ""


@pytest.mark.parametrize("status, sim_exists, requeued, exit_status", [
    (75, False, True, 0),
    (0, True, False, 0),
    (2, False, False, 2),
    (1, False, False, 1),
    (137, False, False, 137),
])
def test_slurm_script_requeues_on_status_75_only(tmp_path, status, sim_exists, requeued,
                                                 exit_status):
    fake = tmp_path / "bin"
    fake.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (fake / "srun").write_text(f"#!/bin/bash\n{'touch ' + str(out / 'sim.h5') if sim_exists else ''}"
                               f"\nexit {status}\n")
    (fake / "scontrol").write_text(f"#!/bin/bash\necho \"$@\" >> {tmp_path / 'calls'}\n")
    for script in fake.iterdir():
        script.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", OUT=str(out),
               SLURM_JOB_ID="42")
    proc = subprocess.run(["bash", str(ROOT / "slurm" / "simulate.sbatch")], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == exit_status
    calls = (tmp_path / "calls").read_text() if (tmp_path / "calls").exists() else ""
    assert (calls == "requeue 42\n") == requeued


# -- issue 17: small hostile cases -----------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["config", "ci", "--memory", "--ranks", "0"],
    ["config", "ci", "--memory", "--ranks", "-3"],
    ["bench", "equilibrate", "--sweeps", "0"],
    ["bench", "mc", "--n", "0"],
])
def test_counts_below_one_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_a_closed_stdout_is_not_an_internal_error(tmp_path):
    """``mpi_glass config keys | head -1``: the reader leaves early."""
    import sys
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPI_GLASS_SERIAL="1")
    proc = subprocess.run(f"{sys.executable} -m mpi_glass config keys | head -c 10",
                          shell=True, capture_output=True, text=True, env=env,
                          executable="/bin/bash")
    code = subprocess.run(f"set -o pipefail; {sys.executable} -m mpi_glass config keys "
                          f"| head -c 10 >/dev/null", shell=True, env=env,
                          executable="/bin/bash", capture_output=True, text=True)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in code.stderr and code.returncode == 0, code.stderr


def test_closed_stdout_during_print_returns_0(monkeypatch, capsys):
    def command(args, dist):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    monkeypatch.setitem(cli._COMMANDS, "config", command)
    monkeypatch.setenv("MPI_GLASS_SERIAL", "1")
    monkeypatch.setattr(cli, "_closed_stdout", lambda: 0)    # keep pytest's stdout
    assert cli.main(["config"]) == 0
    assert "internal error" not in capsys.readouterr().err


def test_debug_keeps_exit_2_for_bad_input_and_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setitem(cli._COMMANDS, "config", _failing(InputError("cfg.toml: bad key")))
    monkeypatch.setenv("MPI_GLASS_SERIAL", "1")
    assert cli.main(["config", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("error: cfg.toml: bad key")


def test_an_error_after_a_stop_signal_is_the_interruption(monkeypatch, capsys):
    """A numba call cut by the handler's exception surfaces as SystemError: exit 75."""
    import signal
    from mpi_glass import signals

    def command(args, dist):
        signals.defer()
        signal.raise_signal(signal.SIGINT)
        raise SystemError("CPUDispatcher(<function verlet_list>) returned a result with an "
                          "exception set")
    monkeypatch.setitem(cli._COMMANDS, "config", command)
    monkeypatch.setenv("MPI_GLASS_SERIAL", "1")
    assert cli.main(["config"]) == 75
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stopped by SIGINT" in err and "internal" not in err


def test_a_stop_left_over_from_a_library_run_does_not_stop_the_next_command(monkeypatch):
    from mpi_glass import signals
    monkeypatch.setitem(cli._COMMANDS, "config", lambda args, dist: None)
    monkeypatch.setenv("MPI_GLASS_SERIAL", "1")
    signals.record("SIGTERM")        # e.g. a Simulation.run stopped earlier in this process
    assert cli.main(["config"]) == 0
