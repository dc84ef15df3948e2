"""Calibration of the equilibrium certificate (``mpi_glass bench certificate``).

Every statistical decision ships with measured false-alarm and miss rates; this module
measures them for ``mpi_glass.equilibrium``:

* **false failures** -- how often the certificate says NOT certified for a chain that *is*
  in equilibrium: (a) segments of equilibrium chains (K chains from random starts,
  certified, then continued; each segment certified on its own: U/N over the segment, q
  between its middle and its end), (b) thousands of synthetic AR(1) series of known
  tau_int with second halves 10-80 tau_int long (the regime real certificates are decided
  in), examined one check at a time and as the certified mode examines a chain (doubling
  check points, stop when certified), and ensembles of K such chains for R-hat;
* **detection** -- how often it refuses a chain that is *not*: plain-MC quenches from a
  random start and the first ``detect_sweeps`` swap sweeps from one, plus synthetic series
  still relaxing (AR(1) + an exponential decay over the whole run);
* **sweeps to certify** from random starts: K chains run as ``simulate`` runs one ensemble
  (in lockstep, stopped together where all are certified together), and each chain's own
  first certified check point (median and maximum).

"too short" (fewer effective samples than the minimum) is counted apart: for an
equilibrium chain it is not a failure (the chain goes on), for a non-equilibrium one it is
a detection (never a pass).  CPU cost: the real chains dominate (N = 1000 runs ~3e6 trial
moves per CPU second); the synthetic part takes seconds.
"""
from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np

from .. import mc
from ..equilibrium import (CERTIFIED, MIN_EFFECTIVE_SAMPLES, NOT_CERTIFIED,
                           STATIONARITY_SIGMAS, TOO_SHORT, EquilibrationChain, certify,
                           certify_ensemble, certify_together, check_points,
                           drift_corrected_overlap)
from .equilibrate import fresh_chain_state

__all__ = ["benchmark", "synthetic_calibration", "verdict_rates", "ar1_series"]

#: Second-half lengths of the synthetic series, in units of tau_int.
HALF_LENGTHS_TAU = (10, 20, 40, 80)


def verdict_rates(verdicts):
    """Fractions of certified / NOT certified / too short among ``verdicts``, and n.

    Examples
    --------
    >>> verdict_rates([1, 1, 0, -1])
    {'n': 4, 'certified': 0.5, 'not_certified': 0.25, 'too_short': 0.25}
    """
    v = np.asarray(verdicts, dtype=int)
    n = int(v.size)
    share = (lambda code: float(np.mean(v == code)) if n else math.nan)  # noqa: E731
    return {"n": n, "certified": share(CERTIFIED), "not_certified": share(NOT_CERTIFIED),
            "too_short": share(TOO_SHORT)}


def ar1_series(tau, length, count, rng):
    """``count`` stationary AR(1) series of unit variance with tau_int = ``tau`` samples.

    x_t = phi x_(t-1) + e_t with phi = (tau - 1) / (tau + 1), started in the stationary
    distribution, scaled to unit variance.

    Examples
    --------
    >>> x = ar1_series(9.0, 100_000, 1, np.random.default_rng(0))[0]
    >>> round(float(x.std()), 1), round(float(np.corrcoef(x[:-1], x[1:])[0, 1]), 2)
    (1.0, 0.8)
    """
    from scipy.signal import lfilter
    phi = (tau - 1.0) / (tau + 1.0)
    noise = rng.normal(size=(count, length)) * math.sqrt(1.0 - phi * phi)
    noise[:, 0] /= math.sqrt(1.0 - phi * phi)
    return lfilter([1.0], [1.0, -phi], noise, axis=1)


def _passing_overlap(n):
    """An overlap record that passes the decorrelation test at sample n (energy test only)."""
    q = np.full(n, np.nan)
    q[-1] = 0.0
    return q


def _verdict(energy, sigmas, min_effective):
    n = len(energy)
    return certify(energy, _passing_overlap(n), 1, n // 2, sigmas=sigmas,
                   min_effective=min_effective).verdict


def _certified_mode_verdict(energy, sigmas, min_effective, first=64):
    """Examine at n/2^k (k = K..0, the first >= ``first`` samples) and stop when certified,
    as ``EquilibrationChain`` does; the verdict at the stop or at the end."""
    n = len(energy)
    points = sorted({math.ceil(n / 2**k) for k in range(20) if math.ceil(n / 2**k) >= first})
    verdict = TOO_SHORT
    for p in points:
        verdict = _verdict(energy[:p], sigmas, min_effective)
        if verdict == CERTIFIED:
            break
    return verdict


def synthetic_calibration(trials=2000, tau=20.0, chains=8, sigmas=STATIONARITY_SIGMAS,
                          min_effective=MIN_EFFECTIVE_SAMPLES, seed=0):
    """False failures and detection of the energy test and R-hat on AR(1) series.

    For each second-half length m tau_int (``HALF_LENGTHS_TAU``): ``trials`` equilibrium
    series examined once (``single_check``) and in the certified mode over doubling check
    points up to that length (``certified_mode``), ``trials // 10`` ensembles of ``chains``
    series (``ensemble``: the fraction where R-hat exceeds its limit, ``rhat_alarm``), and
    ``trials`` series still relaxing, AR(1) plus 30 sd * exp(-t / t_r) over a run of n
    samples, t_r = n / 4 or n / 8 (``relaxing_n_over_4``, ``..._8``: certified = missed; a
    quench from a random start falls by tens of sd of U/N).

    Examples
    --------
    >>> out = synthetic_calibration(trials=40, chains=4)
    >>> sorted(out["half_10_tau"])
    ['certified_mode', 'ensemble', 'relaxing_n_over_4', 'relaxing_n_over_8', 'single_check']
    """
    rng = np.random.default_rng(seed)
    result = {"tau_int_samples": tau, "trials": trials, "chains": chains}
    for m in HALF_LENGTHS_TAU:
        n = int(2 * m * tau)
        x = ar1_series(tau, n, trials, rng)
        single = [_verdict(s, sigmas, min_effective) for s in x]
        mode = [_certified_mode_verdict(s, sigmas, min_effective) for s in x]
        alarms, ensemble_verdicts = [], []
        for _ in range(max(1, trials // 10)):
            group = list(ar1_series(tau, n, chains, rng))
            certs = certify_ensemble(group, [_passing_overlap(n)] * chains, [n // 2] * chains,
                                     1, sigmas=sigmas, min_effective=min_effective)
            alarms.append(not certs[0].chains_agree)
            ensemble_verdicts += [c.verdict for c in certs]
        t = np.arange(n)
        relaxing = {f"relaxing_n_over_{k}": verdict_rates([
            _verdict(s, sigmas, min_effective)
            for s in ar1_series(tau, n, trials, rng) + 30.0 * np.exp(-t * k / n)])
            for k in (4, 8)}
        result[f"half_{m}_tau"] = {
            "single_check": verdict_rates(single),
            "certified_mode": verdict_rates(mode),
            "ensemble": dict(verdict_rates(ensemble_verdicts),
                             rhat_alarm=float(np.mean(alarms))),
            **relaxing,
        }
    return result


# --- real chains -------------------------------------------------------------------------

def _settings(sample_every, eq_args):
    """The [equilibration] fields ``equilibrium.certify_together`` reads."""
    return SimpleNamespace(sample_every=int(sample_every),
                           certificate_threshold=eq_args["threshold"],
                           certificate_sigmas=eq_args["sigmas"],
                           certificate_min_effective=eq_args["min_effective"])


def _together(n, temperature, seeds, budget, sample_every, swap_probability, eq_args, dist):
    """Chains from random starts run as ``simulate``'s certified mode runs an ensemble.

    In lockstep from check point to check point of the budget-free schedule (16 * 2^k
    samples), judged together at each (``certify_together``) and stopped together at the
    first where every chain is certified, or at the last check point within ``budget``.
    The chains are spread over the ranks of ``dist``.  Returns (states, boxes, rounds,
    final): ``rounds`` one row per check point (own and ensemble verdict counts, R-hat),
    ``final`` the ensemble's certificates where it stopped.
    """
    settings = _settings(sample_every, eq_args)
    points = check_points(budget // sample_every, extendable=True)[1:]
    chains, boxes = {}, {}

    def advance(i, target):
        if i not in chains:
            state, boxes[i] = fresh_chain_state(n, seeds[i], budget // sample_every)
            chains[i] = EquilibrationChain(
                state, box=boxes[i], temperature=temperature, delta_max=0.12,
                swap_probability=swap_probability, sweeps=budget, sample_every=sample_every,
                extendable=True, **eq_args)
        chain = chains[i]
        while chain.state.sweeps_done < target:
            chain.advance(target - chain.state.sweeps_done)
        own = chain.certificate()
        return chain.state, boxes[i], own.verdict if own else TOO_SHORT

    rounds, final, states, box_of = [], [], [], []
    for point in points:
        target = point * sample_every
        results = dist.map(lambda i: advance(i, target), len(seeds))
        states, box_of, own = map(list, zip(*results))
        final = certify_together([(s.energy, s.overlap) for s in states], point, settings)
        rounds.append({"sweeps": target, "own_certified": int(sum(v == CERTIFIED for v in own)),
                       "own_verdicts": [int(v) for v in own],
                       "ensemble_certified": int(sum(c.certified for c in final)),
                       "rhat": final[0].rhat, "rhat_limit": final[0].rhat_limit,
                       "tau_int": final[0].tau_int})
        if all(c.certified for c in final):
            break
    return states, box_of, rounds, final


def _first_certified(rounds, k):
    """Sweeps of chain k's first check point certified on its own (None: never)."""
    return next((r["sweeps"] for r in rounds if r["own_verdicts"][k] == CERTIFIED), None)


def _from_random_starts(rounds, final, states):
    own = [_first_certified(rounds, k) for k in range(len(states))]
    reached = [s for s in own if s is not None]
    stop = rounds[-1]["sweeps"] if rounds and all(c.certified for c in final) else None
    return {"per_chain": [dict(_cert_row(c, s), own_sweeps_to_certify=o)
                          for c, s, o in zip(final, states, own)],
            "ensemble_sweeps_to_certify": stop,
            "certified": int(sum(c.certified for c in final)),
            "own_certified": len(reached),
            "own_sweeps_to_certify_median": float(np.median(reached)) if reached else math.nan,
            "own_sweeps_to_certify_max": int(max(reached)) if reached else None,
            "rounds": rounds,
            "ensemble_rhat": final[0].rhat if final else math.nan,
            "ensemble_rhat_limit": final[0].rhat_limit if final else math.nan,
            "ensemble_tau_int": final[0].tau_int if final else math.nan}


def _segments(state, box, temperature, segment, count, sample_every, eq_args):
    """Continue an equilibrium chain (swap MC) for ``count`` segments of ``segment`` sweeps
    and certify each on its own; returns the certificates."""
    pos, img, species, rng = (state.positions.copy(), state.images.copy(),
                              state.species.copy(), state.rng.copy())
    n_samples = segment // sample_every
    certs = []
    for _ in range(count):
        energy, overlap = np.empty(n_samples), np.full(n_samples, np.nan)
        reference = None
        for k in range(n_samples):
            mc.run_sweeps(pos, img, species, box, rng, sample_every, temperature, 0.12, 0.2)
            energy[k] = mc.total_energy(pos, species, box) / species.size
            if k + 1 == n_samples // 2:
                reference = (pos + img * box, species.copy())
        overlap[-1] = drift_corrected_overlap(pos + img * box, species, reference[0],
                                              reference[1], box)
        certs.append(certify(energy, overlap, sample_every, n_samples // 2,
                             eq_args["threshold"], eq_args["sigmas"],
                             eq_args["min_effective"]))
    return certs


def _cert_row(cert, state):
    return {"sweeps": int(state.sweeps_done), "verdict": cert.verdict if cert else TOO_SHORT,
            "tau_int": cert.tau_int if cert else math.nan,
            "effective_samples": cert.effective_samples if cert else 0.0,
            "overlap": cert.overlap if cert else math.nan,
            "drift_sigmas": abs(cert.drift) / cert.drift_error if cert else math.nan}


def benchmark(n=1000, temperature=0.5, chains=8, budget=2_000_000, sample_every=None,
              segments=0, segment_sweeps=None, detect_sweeps=0, synthetic_trials=0,
              sigmas=STATIONARITY_SIGMAS, min_effective=MIN_EFFECTIVE_SAMPLES,
              threshold=0.1, seed=0, dist=None):
    """The certificate's calibration at one temperature (see the module docstring).

    ``chains`` chains from random starts (swap MC, ``budget`` sweeps), run as one ensemble
    of ``simulate``'s certified mode (``_together``), give the sweeps to certify: the
    ensemble's (where they stop together) and each chain's own (its first check point
    certified alone); ``segments`` > 0 continues each certified chain for that many segments
    of ``segment_sweeps`` (default: where the ensemble stopped) and certifies each on its own
    (false failures); ``detect_sweeps`` > 0 runs ``chains`` plain-MC quenches and ``chains``
    swap chains from random starts for that many sweeps, each set as one ensemble
    (detection: a chain the ensemble certifies is missed); ``synthetic_trials`` > 0 adds
    ``synthetic_calibration``.  The chains are spread over the ranks of ``dist``.
    """
    from ..parallel import serial
    dist = dist or serial()
    n, chains, budget = int(n), int(chains), int(budget)
    sample_every = int(sample_every or max(1, budget // 2000))
    eq_args = dict(threshold=float(threshold), sigmas=float(sigmas),
                   min_effective=float(min_effective))
    result = {"n": n, "temperature": float(temperature), "chains": chains,
              "budget_sweeps": budget, "sample_every": sample_every, "ranks": dist.size,
              **eq_args}
    cpu = time.process_time()
    seeds = [1000 * int(seed) + k for k in range(chains)]
    if chains and budget:
        states, boxes, rounds, final = _together(n, temperature, seeds, budget, sample_every,
                                                 0.2, eq_args, dist)
        found = _from_random_starts(rounds, final, states)
        result["from_random_starts"] = found
        done = [c.certified for c in final]
        if segments and any(done):
            length = int(segment_sweeps or found["ensemble_sweeps_to_certify"]
                         or max(s.sweeps_done for s in states))
            picked = [(s, b) for s, b, ok in zip(states, boxes, done) if ok]
            seg = [c for part in dist.map(
                lambda i: _segments(*picked[i], temperature, length, int(segments),
                                    sample_every, eq_args), len(picked)) for c in part]
            result["equilibrium_segments"] = dict(
                verdict_rates([c.verdict for c in seg]), segment_sweeps=length,
                tau_int_median=float(np.median([c.tau_int for c in seg])),
                effective_samples_median=float(np.median([c.effective_samples for c in seg])),
                overlap_max=float(max(c.overlap for c in seg)))
    if detect_sweeps:
        detect_sweeps = int(detect_sweeps)
        every = max(1, detect_sweeps // 512)
        for name, swap in (("plain_mc_quench", 0.0), ("first_swap_sweeps", 0.2)):
            det_states, _, rounds, final = _together(
                n, temperature, [s + 500 for s in seeds], detect_sweeps, every, swap, eq_args,
                dist)
            rows = [_cert_row(c, s) for c, s in zip(final, det_states)]
            result[f"detection_{name}"] = dict(
                verdict_rates([r["verdict"] for r in rows]), sweeps=rounds[-1]["sweeps"],
                detected=float(np.mean([r["verdict"] != CERTIFIED for r in rows])),
                own_detected=float(np.mean([v != CERTIFIED for v in rounds[-1]["own_verdicts"]])),
                per_chain=rows)
    result["cpu_seconds"] = sum(dist.allgather(time.process_time() - cpu))
    if synthetic_trials:
        result["synthetic"] = synthetic_calibration(int(synthetic_trials), chains=max(chains, 2),
                                                    sigmas=sigmas, min_effective=min_effective,
                                                    seed=seed)
    return result
