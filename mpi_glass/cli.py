"""Command line: ``mpi_glass {simulate, import, select, bench, config}``.

The contract (also in ``--help``): exit status 0 success, 2 bad input (one line naming the
key or file and the way out), 1 internal error (one line asking for a report; ``--debug``
shows the traceback), 75 interrupted (checkpointed; rerun the same command to resume).
``--debug``, ``--quiet`` and ``--verbose`` work before or after the subcommand.  The same
commands run serially, or under ``mpirun -n K`` for any K.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import textwrap
import time
import traceback
from pathlib import Path

from . import __version__, signals
from .errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, InputError, Interrupted
from .progress import LOGGER, setup_logging

EXIT_STATUS_HELP = """\
exit status:
  0   success
  1   internal error: a bug in mpi_glass, please report it (rerun with --debug for the
      traceback)
  2   bad input: config, files, command line or environment (one line says which and the
      way out)
  75  interrupted (SIGTERM, SIGUSR1, Ctrl-C): checkpointed; rerun the same command to
      resume
"""

#: OS errors that are the user's environment, not our bug: a full disk, no permission.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}


def _counted(low):
    """argparse type: an integer >= ``low`` (a count of ranks, sweeps, particles)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


_POSITIVE, _NATURAL = _counted(1), _counted(0)

#: Seconds a rank other than the root waits before ending an interrupted job itself.
ROOT_FIRST_SECONDS = 3.0


def _global_flags(parser, suppress):
    """--debug/--quiet/--verbose; subcommands repeat them without defaults of their own."""
    default = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("--debug", action="store_true", **default,
                        help="show the traceback of an error")
    parser.add_argument("--quiet", action="store_true", **default,
                        help="log warnings and errors only (no progress)")
    parser.add_argument("--verbose", action="store_true", **default,
                        help="log debugging detail too")


def _common(parser):
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config, or a preset name (laptop, paper, ci, ka2d, beta); "
                             "default: the embedded laptop preset")
    parser.add_argument("--out", metavar="DIR",
                        help="output directory (default: mpi_glass_out/<config name>)")
    parser.add_argument("--force", action="store_true",
                        help="replace finished outputs (the old ones stay until the new ones "
                             "are complete); simulate recomputes the chains whose checkpoints "
                             "do not fit the config and reuses the others")


def _subcommand(sub, name, help, description, example):
    parser = sub.add_parser(name, help=help, description=textwrap.fill(description, 88),
                            epilog=f"example:\n  {example}\n\n{EXIT_STATUS_HELP}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_flags(parser, suppress=True)
    return parser


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mpi_glass",
        description="Which structure controls glassy dynamics? Iso-configurational MC, "
                    "structural descriptors and information-imbalance feature selection.",
        epilog="examples:\n  mpi_glass simulate && mpi_glass select\n"
               "  mpiexec -n 4 mpi_glass simulate --config run/paper.toml\n\n"
               + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mpi_glass {__version__}")
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = _subcommand(
        sub, "simulate", "equilibrate configurations and run the iso-configurational "
                         "dynamics -> sim.h5",
        "Equilibrate C configurations, run R iso-configurational trajectories from each and "
        "write DIR/sim.h5 (configurations, displacements, propensities p and q, F_s^CR). "
        "Rerunning the same command resumes from DIR/sim.h5.checkpoint/; rerunning it with "
        "larger budgets (equilibration.sweeps, dynamics.t_max) continues every chain.",
        "mpiexec -n 2 mpi_glass simulate --config run/ci.toml --out /tmp/ci")
    _common(sim)

    imp = _subcommand(
        sub, "import", "another engine's trajectories (LAMMPS dump, HOOMD GSD) or "
                       "propensities (NPZ) -> sim.h5",
        "Read the files named by the config's [import] table (paths relative to the config "
        "file), compute p, q and F_s^CR as simulate does and write DIR/sim.h5, ready for "
        "'mpi_glass select'.",
        "mpi_glass import --config mydata.toml --out /tmp/mydata")
    _common(imp)

    sel = _subcommand(
        sub, "select", "features, information-imbalance selection, regression study and "
                       "report from sim.h5",
        "Compute the 60 structural features of sim.h5's configurations, select features by "
        "information imbalance, predict the propensity and write DIR/select.h5, report.md, "
        "report.json and figures/. Without --config the config stored in sim.h5 is used.",
        "mpi_glass select --sim /tmp/ci/sim.h5 --out /tmp/ci")
    _common(sel)
    sel.add_argument("--sim", metavar="FILE", help="input sim.h5 (default: DIR/sim.h5)")
    sel.add_argument("--features-only", action="store_true",
                     help="compute and write the 60 features to select.h5, then stop (a "
                          "later full select completes it without --force)")

    cfg = _subcommand(
        sub, "config", "print a preset's TOML, the table of all keys, or a memory estimate",
        "Print the TOML of a preset, the table of every config key with its default and "
        "meaning ('keys'), or with --memory the memory a config needs per rank.",
        "mpi_glass config paper --memory --ranks 128")
    cfg.add_argument("preset", nargs="?", default="laptop", metavar="NAME",
                     help="laptop, paper, ci, ka2d, beta, 'keys' for the table of keys, or (with "
                          "--memory) a TOML file")
    cfg.add_argument("--memory", action="store_true",
                     help="print the memory estimate of simulate and select for this config")
    cfg.add_argument("--ranks", type=_POSITIVE, default=1, metavar="K",
                     help="number of ranks the estimate assumes (default 1)")

    bench = _subcommand(
        sub, "bench", "throughput benchmarks (JSON with --json)",
        "Measure the throughput of one stage on this machine; the README's performance "
        "table is made of these figures.",
        "mpi_glass bench mc --temperature 0.3 --json")
    _bench_commands(bench)
    return parser


def _bench_commands(bench):
    bsub = bench.add_subparsers(dest="what", required=True, metavar="WHAT")
    b = bsub.add_parser("mc", help="MC trial moves per second per core")
    b.add_argument("--n", type=_POSITIVE, default=4000, help="number of particles (default 4000)")
    b.add_argument("--temperature", type=float, default=0.5, help="temperature (default 0.5)")
    b.add_argument("--sweeps", type=_POSITIVE, default=None, help="sweeps timed (default 400)")
    b = bsub.add_parser("descriptors", help="seconds for all 60 features of one configuration")
    b.add_argument("--n", type=_POSITIVE, default=4000, help="number of particles (default 4000)")
    b = bsub.add_parser("imbalance", help="seconds for II pairs and the greedy selections")
    b.add_argument("--n", type=_POSITIVE, default=4000, help="number of points N (default 4000)")
    b.add_argument("--m", type=_POSITIVE, default=60, help="number of candidate features M "
                                                      "(default 60)")
    b.add_argument("--d", type=_POSITIVE, default=15, help="features selected by the greedy "
                                                      "searches (default 15)")
    b = bsub.add_parser("dii", help="seconds per DII epoch, a full backward elimination, "
                                    "peak memory per rank")
    b.add_argument("--n", type=_POSITIVE, default=4000, help="number of points N (default 4000)")
    b.add_argument("--m", type=_POSITIVE, default=60, help="number of features M (default 60)")
    b.add_argument("--d", type=_POSITIVE, default=15, help="d_max of the elimination (default 15)")
    b.add_argument("--epochs", type=_POSITIVE, default=3, help="epochs timed (default 3)")
    b.add_argument("--epochs-only", action="store_true",
                   help="time the epochs only, no backward elimination (large N)")
    b = bsub.add_parser("equilibrate", help="tau_eq, swap acceptances and trials/s of a "
                                            "certified equilibration from a random start")
    b.add_argument("--n", type=_POSITIVE, default=1000, help="number of particles (default 1000)")
    b.add_argument("--temperature", type=float, default=0.3, help="temperature (default 0.3)")
    b.add_argument("--sweeps", type=_POSITIVE, default=1_000_000,
                   help="budget in sweeps (default 1e6); stops once certified (one chain)")
    b.add_argument("--swap-probability", type=float, default=0.2,
                   help="fraction of swap trials (default 0.2)")
    b.add_argument("--sample-every", type=_POSITIVE, default=None,
                   help="sweeps between samples (default: budget / 1000)")
    b.add_argument("--plain-sweeps", type=_NATURAL, default=0,
                   help="then run plain MC this long for tau_alpha and the speed-up")
    b.add_argument("--seed", type=_NATURAL, default=0, help="seed of the random start (default 0)")
    b.add_argument("--save", metavar="FILE.npz", help="save U/N(t), q(t) for analysis/")
    b = bsub.add_parser("certificate", help="false-failure and detection rates of the "
                                            "equilibrium certificate, sweeps to certify")
    b.add_argument("--n", type=_POSITIVE, default=1000, help="number of particles (default 1000)")
    b.add_argument("--temperature", type=float, default=0.5, help="temperature (default 0.5)")
    b.add_argument("--chains", type=_NATURAL, default=8,
                   help="chains from random starts (default 8; 0: none)")
    b.add_argument("--sweeps", type=_NATURAL, default=2_000_000,
                   help="budget of each chain in sweeps (default 2e6; 0: none); the chains stop "
                        "together once certified together")
    b.add_argument("--sample-every", type=_POSITIVE, default=None,
                   help="sweeps between samples (default: budget / 2000)")
    b.add_argument("--segments", type=_NATURAL, default=0,
                   help="then continue each certified chain for this many segments, each "
                        "certified on its own (false failures; default 0)")
    b.add_argument("--segment-sweeps", type=_POSITIVE, default=None,
                   help="segment length (default: where the ensemble stopped)")
    b.add_argument("--detect-sweeps", type=_NATURAL, default=0,
                   help="also run --chains plain-MC quenches and swap chains from random "
                        "starts this long (detection; default 0: none)")
    b.add_argument("--synthetic-trials", type=_NATURAL, default=0,
                   help="AR(1) series per length for the synthetic calibration (default 0)")
    b.add_argument("--seed", type=_NATURAL, default=0, help="seed of the random starts (default 0)")
    b = bsub.add_parser("simulate", help="parallel efficiency of simulate at 1 and 2 ranks")
    b.add_argument("--ranks", default="1,2", help="comma-separated rank counts")
    b = bsub.add_parser("progress", help="cost of run-wide progress under MPI (no files)")
    b.add_argument("--ranks", type=_POSITIVE, default=8,
                   help="MPI ranks, may exceed the cores (default 8)")
    b.add_argument("--seconds", type=float, default=20.0,
                   help="seconds of measurement (default 20)")
    for b in bsub.choices.values():
        b.add_argument("--json", action="store_true", help="print one JSON object")
        _global_flags(b, suppress=True)


def _run_simulate(args, dist):
    from .config import load_config
    from .simulate import Simulation
    from .store import default_out_dir
    cfg = load_config(args.config)
    if cfg.imported is not None:
        raise InputError(f"{args.config}: has an [import] table: run 'mpi_glass import "
                         f"--config {args.config}' to import its data")
    out = Path(args.out) if args.out else default_out_dir(cfg)
    Simulation(cfg, out, dist, force=args.force).run()


def _run_import(args, dist):
    from .config import load_config
    from .importing import Import
    from .store import default_out_dir
    if not args.config:
        raise InputError("import: --config FILE is required (a TOML file with an [import] "
                         "table)")
    cfg = load_config(args.config)
    out = Path(args.out) if args.out else default_out_dir(cfg)
    base = Path(args.config).parent if Path(args.config).exists() else Path(".")
    Import(cfg, out, dist, force=args.force, base=base).run()


def _run_select(args, dist):
    from .config import load_config
    from .selection import Selection, config_for_sim
    from .store import default_out_dir
    given = load_config(args.config) if args.config else None
    if args.sim:
        sim_path = Path(args.sim)
    else:
        sim_path = Path(args.out or default_out_dir(given or load_config())) / "sim.h5"
    cfg = config_for_sim(sim_path, given)
    out = Path(args.out) if args.out else default_out_dir(cfg)
    Selection(cfg, out, sim_path, dist, force=args.force,
              features_only=args.features_only).run()


def _run_config(args, dist):
    from .config import config_table_markdown, load_config, preset_text
    if args.memory:
        from .memory import estimate_table
        text = estimate_table(load_config(args.preset), ranks=args.ranks)
    elif args.preset == "keys":
        text = config_table_markdown()
    else:
        text = preset_text(args.preset)
    if dist.is_root:
        print(text)


def _run_bench(args, dist):
    from . import bench
    result = bench.run(args, dist)
    if not dist.is_root:
        return
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"{key:>32s}  {shown}")


_COMMANDS = {"simulate": _run_simulate, "import": _run_import, "select": _run_select,
             "config": _run_config,
             "bench": _run_bench}


def _log_level(args):
    if args.verbose:
        return logging.DEBUG
    return logging.WARNING if args.quiet else logging.INFO


def main(argv=None):
    """The command line; returns the exit status (see the module docstring)."""
    previous = signals.install()    # again: a caller's import of this module may be late
    args = None
    try:
        signals.begin_command()     # a signal received while starting up stops us here
        args = build_parser().parse_args(argv)
        return _main(args)
    except Interrupted as exc:      # during start-up or argument parsing
        return _interrupted(exc, None, None)
    except BrokenPipeError:
        return _closed_stdout()
    finally:
        signals.reset()
        signals.restore(previous)


def _main(args):
    setup_logging(0, _log_level(args))
    dist = None
    try:
        from .parallel import Distributor
        dist = Distributor()
        signals.install()           # MPI initialisation (MPICH) takes SIGUSR1: take it back
        setup_logging(dist.rank, _log_level(args))
        _COMMANDS[args.command](args, dist)
        signals.check()             # a signal that came while the run was finishing
    except (Interrupted, KeyboardInterrupt) as exc:
        return _interrupted(exc, dist, args.command)
    except BrokenPipeError:
        return _closed_stdout()
    except Exception as exc:  # noqa: BLE001 - the CLI boundary turns errors into one line
        signals.defer()             # from here on a signal must not cut the report short
        if signals.received():      # e.g. a numba call that the handler's exception cut
            return _interrupted(Interrupted(signals.received()), dist, args.command)
        if args.debug:
            if not _is_bad_input(exc):
                raise
            traceback.print_exc()   # bad input stays exit 2, now with its traceback
        status = _report_error(exc, dist)
        if dist is not None and dist.parallel:   # another rank may wait in a collective
            if _root_reports_it(exc, dist):
                # This rank stayed silent because rank 0 logs the line; an abort from here
                # at once would often end rank 0 before it writes, so give it a moment.
                time.sleep(ROOT_REPORT_GRACE_S)
            dist.abort(status)
        return status
    return 0


def _closed_stdout():
    """The reader of our output went away (``| head``): not an error of ours."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # so the final flush does not fail again
    except (OSError, ValueError):
        pass
    return 0


def _interrupted(exc, dist, command):
    """The one line of a run stopped by a signal; under MPI, end the job with status 75.

    The signal reaches every rank (srun and mpiexec forward it).  Simulate's ranks get a
    moment to finish their chunk and checkpoint (a select has nothing to save: its old
    outputs stay as they are).  The root says the line and ends the job; another rank waits
    a little longer, so that the root's line is the one shown, and speaks only if the root
    has not ended the job by then (it got no signal).
    """
    signals.defer()     # a second signal (a launcher forwards several) must not cut this short
    name = str(exc) if isinstance(exc, Interrupted) else "SIGINT"
    line = (f"stopped by {name}: what was done is kept (simulate's checkpoints, select's "
            f"previous outputs); rerun the same command to resume")
    if dist is None or not dist.parallel:
        LOGGER.error(line)
        return EXIT_INTERRUPTED
    grace = float(os.environ.get("MPI_GLASS_SIGNAL_GRACE", "20")) \
        if command == "simulate" else 0.0
    if dist.is_root:
        LOGGER.error(line)
        time.sleep(grace)
    else:
        time.sleep(grace + ROOT_FIRST_SECONDS)
        LOGGER.error(line)
    dist.abort(EXIT_INTERRUPTED)
    return EXIT_INTERRUPTED


# Seconds a silent rank waits before its abort, so that rank 0's one-line error is written.
ROOT_REPORT_GRACE_S = 2.0


def _root_reports_it(exc, dist):
    """True on a rank other than 0 whose error rank 0 reports for every rank."""
    return (not dist.is_root and isinstance(exc, InputError)
            and exc.same_on_every_rank)


def _is_bad_input(exc):
    return isinstance(exc, InputError) or (isinstance(exc, OSError)
                                           and exc.errno in ENVIRONMENT_ERRNOS)


def _report_error(exc, dist):
    """Log one line for ``exc`` and return the exit status it means."""
    rank = 0 if dist is None else dist.rank
    if isinstance(exc, InputError):
        status, message = EXIT_INPUT, str(exc)
        if rank != 0 and exc.same_on_every_rank:    # rank 0 says it for every rank
            return status
    elif isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        status = EXIT_INPUT
        where = exc.filename or "a file of the output folder"
        message = f"{where}: {exc.strerror}; free space or fix permissions, then rerun"
    else:
        status = EXIT_INTERNAL
        first = str(exc).splitlines()[0] if str(exc) else ""
        message = (f"internal error {type(exc).__name__}: {first} - please report this "
                   f"(rerun with --debug for the traceback)")
    lines = message.splitlines()
    LOGGER.error(f"error: {lines[0] if lines else type(exc).__name__}")
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
