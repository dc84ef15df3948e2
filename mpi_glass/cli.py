"""Command line: ``mpi_glass {simulate, select, bench, config}``.

Errors are one line on stderr and exit status 2; ``--debug`` shows the traceback instead.
The same commands run serially, or under ``mpirun -n K`` for any K.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import __version__
from .errors import InputError

EXIT_INPUT = 2


def _common(parser):
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config, or a preset name (laptop, paper, ci); "
                             "default: the embedded laptop preset")
    parser.add_argument("--out", metavar="DIR",
                        help="output directory (default: mpi_glass_out/<config name>)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite finished outputs and discard checkpoints")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mpi_glass",
        description="Which structure controls glassy dynamics? Iso-configurational MC, "
                    "structural descriptors and information-imbalance feature selection.")
    parser.add_argument("--version", action="version", version=f"mpi_glass {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser("simulate", help="equilibrate configurations and run the "
                                          "iso-configurational dynamics -> sim.h5")
    _common(sim)

    sel = sub.add_parser("select", help="features, information-imbalance selection, "
                                        "regression study and report from sim.h5")
    _common(sel)
    sel.add_argument("--sim", metavar="FILE", help="input sim.h5 (default: DIR/sim.h5)")
    sel.add_argument("--features-only", action="store_true",
                     help="compute and write the 60 features, then stop")

    cfg = sub.add_parser("config", help="print a preset's TOML, or the table of all keys")
    cfg.add_argument("preset", nargs="?", default="laptop",
                     help="laptop, paper, ci, or 'keys' for the table of keys")

    bench = sub.add_parser("bench", help="throughput benchmarks (JSON with --json)")
    bsub = bench.add_subparsers(dest="what", required=True, metavar="WHAT")
    b = bsub.add_parser("mc", help="MC trial moves per second per core")
    b.add_argument("--n", type=int, default=4000)
    b.add_argument("--temperature", type=float, default=0.5)
    b.add_argument("--sweeps", type=int, default=None)
    b = bsub.add_parser("descriptors", help="seconds for all 60 features of one configuration")
    b.add_argument("--n", type=int, default=4000)
    b = bsub.add_parser("imbalance", help="seconds for II pairs and the greedy selections")
    b.add_argument("--n", type=int, default=4000)
    b.add_argument("--m", type=int, default=60)
    b.add_argument("--d", type=int, default=15)
    b = bsub.add_parser("simulate", help="parallel efficiency of simulate at 1 and 2 ranks")
    b.add_argument("--ranks", default="1,2", help="comma-separated rank counts")
    b = bsub.add_parser("progress", help="cost of run-wide progress under MPI (no files)")
    b.add_argument("--ranks", type=int, default=8, help="MPI ranks (may exceed the cores)")
    b.add_argument("--seconds", type=float, default=20.0, help="measured wall time")
    for b in bsub.choices.values():
        b.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _run_simulate(args, dist):
    from .config import load_config
    from .simulate import Simulation
    from .store import default_out_dir
    cfg = load_config(args.config)
    out = Path(args.out) if args.out else default_out_dir(cfg)
    Simulation(cfg, out, dist, force=args.force).run()


def _run_select(args, dist):
    from .config import load_config
    from .select import Selection
    from .store import default_out_dir
    cfg = load_config(args.config)
    out = Path(args.out) if args.out else default_out_dir(cfg)
    sim_path = Path(args.sim) if args.sim else out / "sim.h5"
    Selection(cfg, out, sim_path, dist, force=args.force,
              features_only=args.features_only).run()


def _run_config(args, dist):
    from .config import config_table_markdown, preset_text
    if dist.is_root:
        print(config_table_markdown() if args.preset == "keys" else preset_text(args.preset))


def _run_bench(args, dist):
    from . import bench
    result = bench.run(args)
    if not dist.is_root:
        return
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"{key:>32s}  {shown}")


_COMMANDS = {"simulate": _run_simulate, "select": _run_select, "config": _run_config,
             "bench": _run_bench}


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .parallel import Distributor
    from .simulate import EXIT_INTERRUPTED, Interrupted
    dist = Distributor()
    try:
        _COMMANDS[args.command](args, dist)
    except Interrupted as exc:
        print(f"mpi_glass: [rank {dist.rank}] stopped by {exc}; checkpoint written, rerun the "
              f"same command to resume", file=sys.stderr, flush=True)
        if dist.parallel:
            # The signal reached every rank (srun/mpiexec forward it); give the others a
            # moment to finish their chunk and checkpoint before ending the job.
            time.sleep(float(os.environ.get("MPI_GLASS_SIGNAL_GRACE", "20")))
            dist.abort(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the CLI boundary turns errors into one line
        if args.debug:
            raise
        _report_error(exc, dist)
        if dist.parallel:      # another rank may be waiting in a collective
            dist.abort(EXIT_INPUT)
        return EXIT_INPUT
    return 0


def _report_error(exc, dist):
    where = "" if dist.is_root else f"[rank {dist.rank}] "
    if isinstance(exc, InputError):
        if not dist.is_root:      # every rank validates the same input: say it once
            return
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
    print(f"mpi_glass: error: {where}{message.splitlines()[0] if message else ''}",
          file=sys.stderr, flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
