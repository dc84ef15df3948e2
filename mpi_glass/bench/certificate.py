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
* **sweeps to certify** from random starts, over K chains (median and maximum).

"too short" (fewer effective samples than the minimum) is counted apart: for an
equilibrium chain it is not a failure (the chain goes on), for a non-equilibrium one it is
a detection (never a pass).  CPU cost: the real chains dominate (N = 1000 runs ~3e6 trial
moves per CPU second); the synthetic part takes seconds.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import mc
from ..equilibrium import (CERTIFIED, MIN_EFFECTIVE_SAMPLES, NOT_CERTIFIED,
                           STATIONARITY_SIGMAS, TOO_SHORT, EquilibrationChain, certify,
                           certify_ensemble, drift_corrected_overlap)
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

def _equilibrate(n, temperature, seeds, budget, sample_every, swap_probability, eq_args):
    """Chains from random starts in the certified mode; (states, boxes, certificates)."""
    states, boxes, certs = [], [], []
    for seed in seeds:
        state, box = fresh_chain_state(n, seed, budget // sample_every)
        chain = EquilibrationChain(state, box=box, temperature=temperature, delta_max=0.12,
                                   swap_probability=swap_probability, sweeps=budget,
                                   sample_every=sample_every, stop_when_certified=True,
                                   **eq_args)
        while not chain.done:
            chain.advance(budget)
        states.append(state)
        boxes.append(box)
        certs.append(chain.certificate())
    return states, boxes, certs


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
              threshold=0.1, seed=0):
    """The certificate's calibration at one temperature (see the module docstring).

    ``chains`` chains from random starts (swap MC, certified mode, ``budget`` sweeps) give
    the sweeps to certify and, pooled, the ensemble verdict; ``segments`` > 0 continues each
    certified chain for that many segments of ``segment_sweeps`` (default: the largest
    sweeps to certify) and certifies each (false failures); ``detect_sweeps`` > 0 runs
    ``chains`` plain-MC quenches and ``chains`` swap chains from random starts for that many
    sweeps in the certified mode (detection); ``synthetic_trials`` > 0 adds
    ``synthetic_calibration``.
    """
    n, chains, budget = int(n), int(chains), int(budget)
    sample_every = int(sample_every or max(1, budget // 2000))
    eq_args = dict(threshold=float(threshold), sigmas=float(sigmas),
                   min_effective=float(min_effective))
    result = {"n": n, "temperature": float(temperature), "chains": chains,
              "budget_sweeps": budget, "sample_every": sample_every, **eq_args}
    cpu = time.process_time()
    seeds = [1000 * int(seed) + k for k in range(chains)]
    if chains and budget:
        states, boxes, certs = _equilibrate(n, temperature, seeds, budget, sample_every, 0.2,
                                            eq_args)
        rows = [_cert_row(c, s) for c, s in zip(certs, states)]
        sweeps = np.array([r["sweeps"] for r in rows])
        done = np.array([r["verdict"] == CERTIFIED for r in rows])
        pooled = certify_ensemble(
            [s.energy[:s.checked_sample] for s in states],
            [s.overlap[:s.checked_sample] for s in states],
            [s.checked_reference for s in states], sample_every, **eq_args)
        result["from_random_starts"] = {
            "per_chain": rows, "certified": int(done.sum()),
            "sweeps_to_certify_median": float(np.median(sweeps[done])) if done.any()
            else math.nan,
            "sweeps_to_certify_max": int(sweeps[done].max()) if done.any() else None,
            "ensemble_verdicts": [c.verdict for c in pooled],
            "ensemble_rhat": pooled[0].rhat, "ensemble_rhat_limit": pooled[0].rhat_limit,
            "ensemble_tau_int": pooled[0].tau_int}
        if segments and done.any():
            length = int(segment_sweeps or sweeps[done].max())
            seg = [c for s, b, ok in zip(states, boxes, done) if ok
                   for c in _segments(s, b, temperature, length, int(segments), sample_every,
                                      eq_args)]
            result["equilibrium_segments"] = dict(
                verdict_rates([c.verdict for c in seg]), segment_sweeps=length,
                tau_int_median=float(np.median([c.tau_int for c in seg])),
                effective_samples_median=float(np.median([c.effective_samples for c in seg])),
                overlap_max=float(max(c.overlap for c in seg)))
    if detect_sweeps:
        detect_sweeps = int(detect_sweeps)
        every = max(1, detect_sweeps // 500)
        for name, swap in (("plain_mc_quench", 0.0), ("first_swap_sweeps", 0.2)):
            det_states, _, det_certs = _equilibrate(
                n, temperature, [s + 500 for s in seeds], detect_sweeps, every, swap, eq_args)
            rows = [_cert_row(c, s) for c, s in zip(det_certs, det_states)]
            result[f"detection_{name}"] = dict(
                verdict_rates([r["verdict"] for r in rows]), sweeps=detect_sweeps,
                detected=float(np.mean([r["verdict"] != CERTIFIED for r in rows])),
                per_chain=rows)
    result["cpu_seconds"] = time.process_time() - cpu
    if synthetic_trials:
        result["synthetic"] = synthetic_calibration(int(synthetic_trials), chains=max(chains, 2),
                                                    sigmas=sigmas, min_effective=min_effective,
                                                    seed=seed)
    return result
