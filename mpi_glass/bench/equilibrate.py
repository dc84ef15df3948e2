"""Benchmark of the certified equilibration (``mpi_glass bench equilibrate``).

One chain from a random start, equilibrated in the certified mode: tau_eq, the sweeps to
certification, swap acceptance per species pair and trial moves per CPU second, and
optionally plain MC from the final configuration for the speed-up.  ``analysis/
equilibration.py`` draws the series it saves.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np

from .. import dynamics, mc
from ..equilibrium import (DEFAULT_THRESHOLD, TAU_ABOVE, EquilibrationChain,
                           drift_corrected_overlap, new_chain_records, relaxation_time)
from ..model import PAPER_DENSITY, PAPER_FRACTIONS, box_side, composition_counts, species_array
from ..schema import ChainState

__all__ = ["benchmark", "fresh_chain_state"]


def fresh_chain_state(n, seed, n_samples):
    """A random start of the paper's composition and density, as simulate makes one."""
    counts = composition_counts(n, PAPER_FRACTIONS)
    box = box_side(n, PAPER_DENSITY)
    rng = mc.new_rng_state(np.random.SeedSequence(seed))
    positions = mc.initial_configuration(counts, box, rng)
    species = species_array(counts)
    state = ChainState(positions=positions, images=np.zeros((n, 2), np.int64), species=species,
                       rng=rng, **new_chain_records(positions, species, n_samples))
    return state, box


def _plain_relaxation(state, box, temperature, delta_max, sweeps):
    """Plain MC (no swaps) from a chain's final configuration: F_s^CR(t) and q(t) against the
    start on log-spaced times; returns (times, fs, q, tau_alpha, tau_q) with the taus as
    (value, kind) from ``relaxation_time``."""
    pos, species = state.positions.copy(), state.species.copy()
    images, rng = np.zeros_like(state.images), state.rng.copy()
    start = pos.copy()
    times = dynamics.log_times(sweeps, 8, ())
    disp = np.zeros((1, len(times), pos.shape[0], 2))
    q = np.empty(len(times))
    done = 0
    for k, t in enumerate(times):
        mc.run_sweeps(pos, images, species, box, rng, int(t) - done, temperature, delta_max)
        done = int(t)
        unwrapped = pos + images * box
        disp[0, k] = unwrapped - start
        q[k] = drift_corrected_overlap(unwrapped, species, start, species, box)
    fs = dynamics.propensities(disp, start, species, box)[2]
    return times, fs, q, relaxation_time(times, fs), relaxation_time(times, q)


def _chain_summary(state, cert, n, cpu):
    """Certificate, acceptances and speed of a finished benchmark chain, as a flat dict."""
    counts = state.mc_counts
    accepted, attempted = state.pair_swaps
    recorded = state.n_recorded
    trials = state.sweeps_done * n
    return {
        "certified": bool(cert is not None and cert.certified),
        "sweeps_run": state.sweeps_done, "cpu_seconds": cpu,
        "trials_per_second_cpu": trials / cpu,
        "tau_eq": cert.tau_eq if cert else math.nan,
        "tau_eq_kind": cert.tau_eq_kind if cert else TAU_ABOVE,
        "tau_eq_cpu_seconds": (cert.tau_eq * n / (trials / cpu)) if cert else math.nan,
        "overlap_mid_end": cert.overlap if cert else math.nan,
        "stationary": bool(cert and cert.stationary),
        "energy_per_particle_last_quarter": float(np.nanmean(
            state.energy[3 * recorded // 4:recorded])),
        "move_acceptance": counts[0] / max(counts[1], 1),
        "swap_acceptance": counts[2] / max(counts[3], 1),
        **{f"swap_acceptance_{p}": accepted[k] / max(attempted[k], 1)
           for k, p in enumerate(mc.SWAP_PAIRS)},
        **{f"swap_attempts_{p}": int(attempted[k]) for k, p in enumerate(mc.SWAP_PAIRS)},
    }


def benchmark(n=1000, temperature=0.3, sweeps=None, swap_probability=0.2, sample_every=None,
              plain_sweeps=0, seed=0, threshold=DEFAULT_THRESHOLD, save=None):
    """Equilibrate one chain from a random start in the certified mode and time it.

    Returns tau_eq, the sweeps to certification, swap acceptance per species pair and trial
    moves per CPU second (process time, so a shared machine does not distort it).  With
    ``plain_sweeps`` > 0, plain MC then runs from the final configuration and the result
    adds its tau_alpha (F_s^CR) and the relaxation time of q, for the speed-up.  ``save``
    names an .npz file for ``analysis/equilibration.py``.
    """
    sweeps = int(sweeps or 1_000_000)
    sample_every = int(sample_every or max(1, sweeps // 1000))
    state, box = fresh_chain_state(int(n), seed, sweeps // sample_every)
    chain = EquilibrationChain(state, box=box, temperature=temperature, delta_max=0.12,
                               swap_probability=swap_probability, sweeps=sweeps,
                               sample_every=sample_every, threshold=threshold,
                               stop_when_certified=True)
    cpu = time.process_time()
    while not chain.done:
        chain.advance(sweeps)
    cpu = time.process_time() - cpu
    cert = chain.certificate()
    result = {"n": int(n), "temperature": float(temperature), "budget_sweeps": sweeps,
              "swap_probability": float(swap_probability), "sample_every": sample_every,
              **_chain_summary(state, cert, int(n), cpu)}
    series = dict(energy=state.energy, overlap=state.overlap,
                  energy_times=np.arange(1, state.energy.size + 1) * sample_every,
                  check_points=np.array(sorted(chain.checks)) * sample_every)
    if plain_sweeps:
        cpu = time.process_time()
        times, fs, q, (tau_a, kind_a), (tau_q, kind_q) = _plain_relaxation(
            state, box, temperature, 0.12, int(plain_sweeps))
        cpu = time.process_time() - cpu
        result.update(plain_sweeps=int(plain_sweeps), plain_cpu_seconds=cpu,
                      plain_tau_alpha=tau_a, plain_tau_alpha_kind=kind_a,
                      plain_tau_q=tau_q, plain_tau_q_kind=kind_q,
                      speedup_q=tau_q / result["tau_eq"] if cert else math.nan)
        series.update(plain_times=times, plain_fs=fs, plain_overlap=q)
    if save:
        np.savez(save, **series, result_json=np.array(json.dumps(result, default=float)))
    return result
