"""``mpi_glass bench``: throughput figures a user can size a cluster job with.

One module per stage: ``imbalance`` (Delta pairs and greedy selections, on synthetic
features), ``descriptors`` (the 60 features of one configuration), ``simulate`` (parallel
efficiency at several rank counts), ``progress`` (cost of run-wide progress under MPI),
``mc`` (trial moves per CPU second), ``equilibrate`` (the certified equilibration),
``dii`` (the Differentiable Information Imbalance: epoch, full selection, memory) and
``certificate`` (the certificate's false-failure and detection rates).
"""
from __future__ import annotations

import sys

__all__ = ["run", "peak_rss_mb"]


def run(args, dist=None):
    """Dispatch ``mpi_glass bench WHAT`` (parsed ``args``; ``dist`` the distributor, used
    by the benchmarks that spread work over ranks) and return its result dict."""
    if args.what == "mc":
        from .mc import benchmark
        return benchmark(n=args.n, temperature=args.temperature, sweeps=args.sweeps)
    if args.what == "descriptors":
        from .descriptors import benchmark
        return benchmark(n=args.n)
    if args.what == "imbalance":
        from .imbalance import benchmark
        return benchmark(n=args.n, m=args.m, d=args.d)
    if args.what == "dii":
        from .dii import benchmark
        return benchmark(n=args.n, m=args.m, d=args.d, epochs=args.epochs,
                         elimination=not args.epochs_only, mapper=dist)
    if args.what == "equilibrate":
        from .equilibrate import benchmark
        return benchmark(n=args.n, temperature=args.temperature, sweeps=args.sweeps,
                         swap_probability=args.swap_probability,
                         sample_every=args.sample_every, plain_sweeps=args.plain_sweeps,
                         seed=args.seed, save=args.save)
    if args.what == "certificate":
        from .certificate import benchmark
        return benchmark(n=args.n, temperature=args.temperature, chains=args.chains,
                         budget=args.sweeps, sample_every=args.sample_every,
                         segments=args.segments, segment_sweeps=args.segment_sweeps,
                         detect_sweeps=args.detect_sweeps,
                         synthetic_trials=args.synthetic_trials, seed=args.seed, dist=dist)
    if args.what == "simulate":
        from .simulate import simulate_efficiency
        return simulate_efficiency([int(k) for k in args.ranks.split(",")])
    if args.what == "progress":
        from .progress import progress_cost
        return progress_cost(ranks=args.ranks, seconds=args.seconds)
    raise ValueError(args.what)


def peak_rss_mb():
    """Peak resident memory of this process in MB, or NaN where the OS does not say.

    ``resource`` exists on Unix only; it reports KiB on Linux and bytes on macOS.
    """
    try:
        import resource
    except ImportError:     # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)
