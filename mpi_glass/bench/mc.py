"""Benchmark of the MC engine (``mpi_glass bench mc``): trial moves per CPU second.

Displacement trials alone, with the ns per trial split into list builds, pair evaluation and
the rest; swap trials alone; and the equilibration mix (20 % swaps).  Run it beside the
reference kernels with ``analysis/bench_mc_vs_reference.sh``.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

from ..mc import (SKIN, _build_lists, _move_change, _wrap, engine_tables, initial_configuration,
                  new_rng_state, run_sweeps)
from ..model import (DEFAULT_MODEL, PAPER_DENSITY, PAPER_FRACTIONS, box_side, composition_counts,
                     species_array)

__all__ = ["benchmark"]


@njit(cache=True, error_model="numpy")
def _pair_evaluations(pos, species, box, start, nbr, ends, particles, steps, tb):
    """dE of many displacement trials, none applied: the pair evaluation alone."""
    half, total = 0.5 * box, np.int64(0)
    for k in range(particles.shape[0]):
        i = particles[k]
        xn, _ = _wrap(pos[i, 0] + steps[k, 0], box)
        yn, _ = _wrap(pos[i, 1] + steps[k, 1], box)
        total += _move_change(pos, species, start, nbr, ends, i, xn, yn, box, half, tb)
    return total


def _thread_seconds(work):
    """(result, CPU seconds of this thread): other processes on a shared machine do not
    count, unlike wall time."""
    start = time.thread_time()
    result = work()
    return result, time.thread_time() - start


def _cost_split(pos, species, box, skin, stats, seconds, seed):
    """ns per displacement trial spent in list builds, in pair evaluation and in the rest
    (random numbers, the skin test, Metropolis, bookkeeping), from timing the first two
    alone on the final configuration."""
    uspecies, model = species.view(np.uint8), DEFAULT_MODEL
    tb = engine_tables(model)
    cut2 = (model.cutoff_table + skin)**2
    lists = _build_lists(pos, uspecies, box, cut2, cut2, tb.level, False)
    reps = 10
    _, build_seconds = _thread_seconds(
        lambda: [_build_lists(pos, uspecies, box, cut2, cut2, tb.level, False)
                 for _ in range(reps)])
    draws = np.random.default_rng(seed)
    trials = stats.moves_attempted
    particles = draws.integers(0, pos.shape[0], trials)
    steps = draws.uniform(-0.06, 0.06, (trials, 2))
    _pair_evaluations(pos, uspecies, box, *lists, particles[:10], steps[:10], tb)  # compile
    _, pair_seconds = _thread_seconds(
        lambda: _pair_evaluations(pos, uspecies, box, *lists, particles, steps, tb))
    builds_ns = 1e9 * build_seconds / reps * stats.list_builds / trials
    pairs_ns = 1e9 * pair_seconds / trials
    return {"ns_per_trial_list_builds": builds_ns, "ns_per_trial_pair_evaluation": pairs_ns,
            "ns_per_trial_rest": 1e9 * seconds / trials - builds_ns - pairs_ns}


def benchmark(n=4000, temperature=0.5, sweeps=None, seed=0, skin=SKIN):
    """Trial-move throughput of ``run_sweeps`` on the paper's system after a brief
    equilibration (swap moves, then plain moves); compile time excluded, CPU time of this
    thread.  Displacement trials alone (with the ns per trial split into list builds, pair
    evaluation and the rest), swap trials alone, and the equilibration mix (20 % swaps)."""
    n = 4000 if n is None else int(n)
    temperature = 0.5 if temperature is None else float(temperature)
    sweeps = 400 if sweeps is None else int(sweeps)
    counts = composition_counts(n, PAPER_FRACTIONS)
    box = box_side(n, PAPER_DENSITY)
    rng = new_rng_state(np.random.SeedSequence(seed))
    pos = initial_configuration(counts, box, rng)
    img = np.zeros_like(pos, dtype=np.int64)
    species = species_array(counts)
    run_sweeps(pos, img, species, box, rng, 50, temperature, 0.12, 0.2, skin=skin)
    run_sweeps(pos, img, species, box, rng, 20, temperature, 0.12, skin=skin)

    def rate(swap_probability, n_sweeps):
        state = (pos.copy(), img.copy(), species.copy(), box, rng.copy())
        stats, seconds = _thread_seconds(lambda: run_sweeps(
            *state, n_sweeps, temperature, 0.12, swap_probability, skin=skin))
        return stats, seconds, n_sweeps * n / seconds, state

    wall = time.perf_counter()
    stats, cpu, moves_rate, (final_pos, _, final_species, _, _) = rate(0.0, sweeps)
    wall = time.perf_counter() - wall
    swaps, _, swap_rate, _ = rate(1.0, max(1, sweeps // 4))
    _, _, equilibration_rate, _ = rate(0.2, max(1, sweeps // 2))
    trials = stats.moves_attempted
    return {"n": n, "temperature": temperature, "sweeps": sweeps, "skin": skin,
            "trials_per_second_cpu": moves_rate, "trials_per_second_wall": trials / wall,
            "ns_per_trial": 1e9 * cpu / trials,
            **_cost_split(final_pos, final_species, box, skin, stats, cpu, seed),
            "acceptance": stats.moves_accepted / trials,
            "mean_neighbours": stats.neighbours_examined / trials,
            "list_builds_per_sweep": stats.list_builds / sweeps,
            "swap_trials_per_second_cpu": swap_rate,
            "swap_acceptance": swaps.swaps_accepted / swaps.swaps_attempted,
            "swap_mean_neighbours": swaps.neighbours_examined / swaps.swaps_attempted,
            "equilibration_trials_per_second_cpu": equilibration_rate,
            "equilibration_over_displacement": equilibration_rate / moves_rate}
