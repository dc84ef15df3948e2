"""The equilibrium certificate: blocking, the collective overlap, tau_eq, and the verdicts on a
frozen glass (must fail) and a liquid (must pass)."""
import math
import re

import h5py
import numpy as np
import pytest

from conftest import cli, write_config
from mpi_glass import equilibrium as eq
from mpi_glass import mc
from mpi_glass.bench.equilibrate import fresh_chain_state
from mpi_glass.config import load_config, parse_config
from mpi_glass.errors import InputError
from mpi_glass.model import (PAPER_DENSITY, PAPER_FRACTIONS, box_side, composition_counts,
                             species_array)
from mpi_glass.parallel import serial
from mpi_glass.report import markdown
from mpi_glass.schema import CHAIN_FIELDS, ChainState
from mpi_glass.simulate import Simulation


def ar1(phi, n, seed, sigma=1.0):
    """x_t = phi x_(t-1) + e_t, started in its stationary distribution."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, n)
    x = np.empty(n)
    x[0] = noise[0] / math.sqrt(1.0 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x


def liquid(n, seed, temperature=1.0, sweeps=100):
    counts = composition_counts(n, PAPER_FRACTIONS)
    box = box_side(n, PAPER_DENSITY)
    rng = mc.new_rng_state(np.random.SeedSequence(seed))
    pos = mc.initial_configuration(counts, box, rng)
    img = np.zeros((n, 2), np.int64)
    species = species_array(counts)
    mc.run_sweeps(pos, img, species, box, rng, sweeps, temperature, 0.12, 0.2)
    return pos, img, species, box, rng


def brute_overlap(pos, species, ref, ref_species, box, radius):
    """O(N^2): count i with a same-species reference particle within radius."""
    d = pos[:, None, :] - ref[None, :, :]
    d -= box * np.round(d / box)
    close = (np.hypot(d[..., 0], d[..., 1]) < radius) & (species[:, None] == ref_species[None])
    return close.any(axis=1).mean()


# --- tau_int, stationarity and R-hat -----------------------------------------------------

def ar1_tau(phi):
    """Analytic tau_int of AR(1): 1 + 2 sum_k phi^k = (1 + phi) / (1 - phi)."""
    return (1.0 + phi) / (1.0 - phi)


@pytest.mark.parametrize("phi", [0.0, 0.8, 0.95])
def test_integrated_time_matches_the_analytic_ar1_value_and_pymbar(phi):
    from pymbar import timeseries
    x = ar1(phi, 2**16, seed=3)
    tau = eq.integrated_time(x)
    assert tau == pytest.approx(ar1_tau(phi), rel=0.1)
    # pymbar (Chodera 2016) sums C_t up to its first zero crossing: an independent route
    assert tau == pytest.approx(timeseries.statistical_inefficiency(x, fast=False), rel=0.1)


def test_pooled_integrated_time_of_many_short_chains_beats_one():
    """Eight chains of 20 tau each: pooled, tau_int is within 20 % of the truth, where the
    spread of single-chain estimates is several times wider."""
    phi = 0.9                                     # tau_int = 19
    chains = [ar1(phi, 380, seed=s) for s in range(8)]
    pooled = eq.integrated_time(chains)
    singles = [eq.integrated_time(x) for x in chains]
    assert pooled == pytest.approx(ar1_tau(phi), rel=0.25)
    assert np.std(singles) > 2 * abs(pooled - np.mean(singles)) or np.std(singles) > 2.0


def test_autocorrelation_equals_the_direct_sum():
    x = ar1(0.7, 300, seed=4)
    y = x - x.mean()
    direct = np.array([np.dot(y[:y.size - k], y[k:]) for k in range(y.size)]) / np.dot(y, y)
    assert np.allclose(eq.autocorrelation(x), direct)


@pytest.mark.parametrize("phi", [0.0, 0.8])
def test_stationarity_error_is_the_analytic_error_of_an_ar1_quarter_difference(phi):
    """sd of mean(Q4) - mean(Q3) for long AR(1): sqrt(2 sigma_x^2 tau / (n/4))."""
    n = 2**17
    x = ar1(phi, n, seed=3)
    drift, error, passed, tau, ess = eq.stationarity(x)
    exact = math.sqrt(2.0 / (1.0 - phi**2) * ar1_tau(phi) / (n / 4))
    assert error == pytest.approx(exact, rel=0.1) and passed
    assert ess == pytest.approx(n / 2 / ar1_tau(phi), rel=0.2)


def test_stationarity_passes_a_stationary_series_and_fails_a_drift():
    x = ar1(0.8, 4000, seed=5)
    assert eq.stationarity(x)[2]
    x = ar1(0.8, 4000, seed=7)
    drift, error, passed, _, ess = eq.stationarity(x + np.linspace(0.0, 2.25, x.size))
    assert not passed and drift == pytest.approx(2.25 / 4, abs=4 * error) and ess > 100
    assert eq.stationarity(x[:5])[2] is False


@pytest.mark.parametrize("rise", [3.0, 4.0, 8.0])
def test_a_steep_trend_reads_as_too_few_effective_samples_not_as_a_pass(rise):
    """A trend larger than the noise makes the series one long correlation: the energy
    test must then say 'too short' (ESS < 16), never certify."""
    x = ar1(0.8, 4000, seed=5) + np.linspace(0.0, rise, 4000)
    overlap = np.r_[np.ones(2000), np.full(2000, 0.05)]
    cert = eq.certify(x, overlap, sample_every=10, reference_sample=2000)
    assert cert.effective_samples < 16 and cert.verdict == eq.TOO_SHORT


def test_false_failures_of_the_energy_test_on_short_ar1_chains_stay_below_1_percent():
    """Chains only 10 tau_int long in their second half (the regime of the issue): the
    energy test with the default 2.5 sigma fails at most 1 % of 400 equilibrium series,
    where the old blocking error (plateau never reached) failed about half."""
    phi = 0.9
    fails = sum(not eq.stationarity(ar1(phi, 380, seed=100 + s))[2] for s in range(400))
    assert fails <= 4


def split_rhat_by_the_paper(chains):
    """Vehtari et al. 2021, section 4, written out loop by loop as an independent route."""
    from scipy.stats import norm, rankdata
    halves = []
    for chain in chains:
        h = len(chain) // 2
        halves += [chain[:h], chain[len(chain) - h:]]

    def rhat(parts):
        n = len(parts[0])
        means = [sum(p) / n for p in parts]
        grand = sum(means) / len(parts)
        b = n / (len(parts) - 1) * sum((m - grand) ** 2 for m in means)
        w = sum(sum((v - m) ** 2 for v in p) / (n - 1) for p, m in zip(parts, means)) / len(parts)
        return math.sqrt(((n - 1) / n * w + b / n) / w)

    def normal_scores(parts):
        flat = [v for p in parts for v in p]
        r = rankdata(flat)
        z = [norm.ppf((ri - 3 / 8) / (len(flat) + 1 / 4)) for ri in r]
        n = len(parts[0])
        return [z[i * n:(i + 1) * n] for i in range(len(parts))]

    median = float(np.median([v for p in halves for v in p]))
    folded = [[abs(v - median) for v in p] for p in halves]
    return max(rhat(normal_scores(halves)), rhat(normal_scores(folded)))


def test_split_rhat_equals_the_published_definition():
    rng = np.random.default_rng(8)
    chains = rng.normal(size=(4, 101)) + np.array([[0.0], [0.0], [0.3], [0.0]])
    chains[1] *= 2.0                              # a wider chain: the folded R-hat sees it
    assert eq.split_rhat(chains) == pytest.approx(split_rhat_by_the_paper(chains), rel=1e-12)


def test_rhat_limit_holds_its_false_alarm_rate_and_catches_a_stuck_chain():
    """Six AR(1) chains of 20 tau_int: R-hat exceeds the limit for at most ~1 % of 300
    equilibrium ensembles, and in every ensemble where one chain is offset by 3 sd."""
    phi, n, alarms, caught = 0.9, 380, 0, 0
    for trial in range(300):
        chains = np.stack([ar1(phi, n, seed=10_000 + 6 * trial + k) for k in range(6)])
        tau = eq.integrated_time(list(chains))
        alarms += eq.split_rhat(chains) > eq.rhat_limit(6, n // 2, tau)
        if trial < 50:
            chains[0] += 3.0 / math.sqrt(1.0 - phi**2)
            caught += eq.split_rhat(chains) > eq.rhat_limit(6, n // 2,
                                                            eq.integrated_time(list(chains)))
    assert alarms <= 6 and caught == 50


def test_certify_ensemble_pools_tau_and_fails_every_chain_when_one_is_stuck():
    energies = [-2.0 + 0.01 * ar1(0.9, 1520, seed=s) for s in range(5)]
    overlaps, refs = [np.r_[np.ones(760), np.full(760, 0.05)]] * 5, [760] * 5
    certs = eq.certify_ensemble(energies, overlaps, refs, sample_every=10)
    assert all(c.certified and c.pooled for c in certs)
    assert len({c.tau_int for c in certs}) == 1
    assert all(c.rhat <= c.rhat_limit for c in certs)
    energies[2] = energies[2] - 0.05              # one chain in another state
    certs = eq.certify_ensemble(energies, overlaps, refs, sample_every=10)
    assert not any(c.certified for c in certs) and not certs[0].chains_agree


# --- the collective overlap --------------------------------------------------------------

def test_overlap_equals_brute_force_for_moved_and_relabelled_particles():
    pos, _, species, box, _ = liquid(300, 1)
    rng = np.random.default_rng(2)
    moved = np.mod(pos + rng.normal(0.0, 0.2, pos.shape), box)
    relabelled = species.copy()
    flip = rng.choice(300, 60, replace=False)
    relabelled[flip] = rng.integers(0, 3, 60)
    for radius in (0.3, 0.5, 2.0):       # 2.0: the grid is too coarse for 3 x 3 blocks
        got = eq.collective_overlap(moved, relabelled, pos, species, box, radius)
        assert got == brute_overlap(moved, relabelled, pos, species, box, radius), radius
    assert eq.collective_overlap(pos, species, pos, species, box) == 1.0


def test_unrelated_structures_average_to_the_analytic_q0():
    """Q against randomly translated copies of a liquid (an unrelated structure with the same
    local order) averages to pi a^2 sum N_a^2 / (N L^2)."""
    pos, _, species, box, _ = liquid(400, 4)
    rng = np.random.default_rng(5)
    values = [eq.collective_overlap(np.mod(pos + rng.uniform(0, box, 2), box), species, pos,
                                    species, box) for _ in range(400)]
    q0 = eq.unrelated_overlap(species, box)
    assert q0 == pytest.approx(0.105, abs=0.002)
    assert np.mean(values) == pytest.approx(q0, abs=4 * np.std(values) / math.sqrt(400))


def test_drift_is_removed_and_normalisation_spans_zero_to_one():
    pos, _, species, box, _ = liquid(300, 6)
    shifted = pos + np.array([0.7, -13.3])        # a rigid drift, several boxes far
    assert eq.drift_corrected_overlap(shifted, species, pos, species, box) == 1.0
    q0 = eq.unrelated_overlap(species, box)
    assert eq.normalised_overlap(q0, species, box) == pytest.approx(0.0, abs=1e-15)


# --- tau_eq and check points -------------------------------------------------------------

def test_relaxation_time_of_an_exponential_and_its_bounds():
    lags = np.geomspace(1, 1e4, 41)
    tau, kind = eq.relaxation_time(lags, np.exp(-lags / 300.0))
    assert kind == eq.TAU_MEASURED and tau == pytest.approx(300.0, rel=0.02)
    assert eq.relaxation_time(lags, np.full(41, 0.9)) == (1e4, eq.TAU_ABOVE)
    assert eq.relaxation_time(lags, np.full(41, 0.1)) == (1.0, eq.TAU_BELOW)


def test_check_points_halve_the_run():
    assert eq.check_points(1000) == [16, 32, 63, 125, 250, 500, 1000]
    assert eq.check_points(20) == [20]


# --- verdicts ----------------------------------------------------------------------------

def run_chain(n, temperature, sweeps, swap_probability, sample_every, seed):
    state, box = fresh_chain_state(n, seed, sweeps // sample_every)
    chain = eq.EquilibrationChain(state, box=box, temperature=temperature, delta_max=0.12,
                                  swap_probability=swap_probability, sweeps=sweeps,
                                  sample_every=sample_every, stop_when_certified=True)
    while not chain.done:
        chain.advance(1000)
    return chain, state


def test_a_frozen_glass_is_stationary_enough_but_not_certified():
    """Plain MC at T = 0.30 after a quench: 10^4 sweeps leave the structure in place."""
    chain, state = run_chain(150, 0.30, 10_000, 0.0, 50, seed=1)
    cert = chain.certificate()
    assert state.sweeps_done == 10_000 and not cert.certified
    assert not cert.decorrelated and cert.overlap > 0.5
    assert cert.tau_eq_kind == eq.TAU_ABOVE


def test_a_liquid_at_t_1_is_certified_early():
    """N = 150, T = 1.0: tau_eq ~ 300 sweeps, so the 16 effective samples a half needs take
    >= 10^4 sweeps; certified at a check point well inside the 3.2e4 budget."""
    chain, state = run_chain(150, 1.0, 32_000, 0.2, 10, seed=1)
    cert = chain.certificate()
    assert cert.certified and state.sweeps_done < 32_000
    assert cert.effective_samples >= 16 and cert.tau_int >= cert.tau_eq
    assert cert.overlap < eq.DEFAULT_THRESHOLD and cert.tau_eq_kind == eq.TAU_MEASURED
    assert cert.reference_sweeps * 2 == pytest.approx(cert.sweeps, abs=10)
    accepted, attempted = state.pair_swaps
    assert attempted[1] == 0 and attempted[0] > 0 and attempted[2] > 0     # no S<->L
    assert np.all(accepted <= attempted) and accepted.sum() == state.mc_counts[2]


# --- simulate: the certified mode --------------------------------------------------------

FROZEN = {"temperature = 0.8": "temperature = 0.3", "swap_probability = 0.2":
          "swap_probability = 0.0", "require_certificate = false": "require_certificate = true"}


def test_uncertified_configuration_stops_simulate_with_one_clear_line(tmp_path):
    config = write_config(tmp_path, eq_sweeps=400, **FROZEN)
    proc = cli("simulate", "--config", config, "--out", tmp_path / "out", check=False)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert "not certified within equilibration.sweeps = 400" in errors[0]
    assert "require_certificate = false" in errors[0]
    assert "configuration 0 at T = 0.3: NOT certified" in proc.stderr     # the log, rank 0
    assert not (tmp_path / "out" / "sim.h5").exists()


def test_uncertified_configuration_is_kept_and_flagged_when_allowed(tmp_path):
    replace = dict(FROZEN, **{"require_certificate = false": "require_certificate = false"})
    cfg = load_config(write_config(tmp_path, eq_sweeps=400, **replace))
    path = Simulation(cfg, tmp_path / "out", serial()).run()
    with h5py.File(path) as f:
        g = f["configurations/certificate"]
        assert not g["certified"][()].any() and g["overlap"][()].min() > 0.5
        assert np.all(g["sweeps"][()] == 400) and g["threshold"][()] == 0.1
        for name in ("overlap", "tau_eq", "drift", "swap_attempted", "overlap_series",
                     "verdict", "tau_int", "effective_samples", "rhat", "rhat_limit"):
            assert "description" in g[name].attrs and "units" in g[name].attrs
        assert np.all(g["verdict"][()] == eq.NOT_CERTIFIED)       # frozen: not "too short"
        assert g["sigmas"][()] == 2.5 and g["min_effective"][()] == 16.0
        assert not f["relaxation_scan/certified"][()].any()
    assert "NOT certified (kept, flagged): [0, 1, 2]" in markdown._certificate_line(
        [False, False, False])


def test_a_liquid_is_certified_and_stops_early(tmp_path):
    cfg = load_config(write_config(tmp_path, eq_sweeps=16000,
                                   **{"temperature = 0.8": "temperature = 2.0"}))
    path = Simulation(cfg, tmp_path / "out", serial()).run()
    with h5py.File(path) as f:
        g = f["configurations/certificate"]
        assert g["certified"][()].all() and f["relaxation_scan/certified"][()].all()
        assert np.all(g["verdict"][()] == eq.CERTIFIED)
        assert np.all(g["effective_samples"][()] >= 16) and g["rhat"][()] <= g["rhat_limit"][()]
        sweeps = g["sweeps"][()]
        assert np.all(sweeps < 16000) and np.all(sweeps == g["sweeps_examined"][()])
        energy = f["configurations/energy_series"][()]
        assert np.all(np.isnan(energy[:, -1])) and np.all(g["swap_attempted"][:, 1] == 0)


@pytest.mark.parametrize("line, message", [
    ('until = "certified"', 'equilibration.until: expected "certified", "sweeps" or a whole'),
    ("until = 12.5", "equilibration.until"),
    ("certificate_threshold = 1.0", "equilibration.certificate_threshold: must be in (0, 1)"),
    ("certificate_threshold = 0", "equilibration.certificate_threshold: must be in (0, 1)"),
    ("certificate_sigmas = 0", "equilibration.certificate_sigmas: must be > 0"),
    ("certificate_sigmas = -2.5", "equilibration.certificate_sigmas: must be > 0"),
    ("certificate_min_effective = 1.5", "equilibration.certificate_min_effective: must be >= 2"),
])
def test_bad_certificate_input_names_the_key(line, message):
    text = "[equilibration]\n" + line.replace('"certified"', '"always"') + "\n"
    with pytest.raises(InputError, match=re.escape(message)):
        parse_config(text)


def test_a_chain_resumed_from_its_saved_state_ends_bit_identical(tmp_path):
    """Checkpoint (npz round trip) at awkward moments, rebuild the chain, carry on: the same
    records, reference, certificate and MC state as one uninterrupted chain."""
    settings = dict(temperature=1.0, delta_max=0.12, swap_probability=0.2, sweeps=3000,
                    sample_every=10, stop_when_certified=True)

    def start():
        return fresh_chain_state(120, 9, 300)

    whole, box = start()
    chain = eq.EquilibrationChain(whole, box=box, **settings)
    while not chain.done:
        chain.advance(3000)
    pieces, _ = start()
    for step in (7, 13, 250, 1, 999, 3000):
        chain = eq.EquilibrationChain(pieces, box=box, **settings)
        if not chain.done:
            chain.advance(step)
        pieces.save(tmp_path / "chain.npz")
        pieces = ChainState.load(tmp_path / "chain.npz")
    chain = eq.EquilibrationChain(pieces, box=box, **settings)
    while not chain.done:
        chain.advance(37)
    for key in CHAIN_FIELDS:
        mine, theirs = getattr(whole, key), getattr(pieces, key)
        assert np.asarray(mine).tobytes() == np.asarray(theirs).tobytes(), key


def test_bench_equilibrate_and_the_analysis_script(tmp_path):
    """``bench equilibrate --json`` reports tau_eq, per-pair acceptance and trials/s, and
    analysis/equilibration.py draws its saved series."""
    import json
    import subprocess
    import sys
    from conftest import ROOT
    saved = tmp_path / "run.npz"
    proc = cli("bench", "equilibrate", "--n", 150, "--temperature", 1.0, "--sweeps", 32000,
               "--sample-every", 10, "--plain-sweeps", 300, "--save", saved, "--json")
    result = json.loads(proc.stdout)
    assert result["certified"] and result["tau_eq"] > 0 and result["trials_per_second_cpu"] > 0
    assert result["swap_attempts_S-L"] == 0 and 0 < result["swap_acceptance_S-M"] < 1
    assert result["plain_tau_alpha_kind"] in (-1, 0, 1)
    picture = tmp_path / "eq.png"
    subprocess.run([sys.executable, str(ROOT / "analysis" / "equilibration.py"), str(saved),
                    "--out", str(picture)], check=True, capture_output=True)
    assert picture.stat().st_size > 10_000


def test_report_lines_show_each_verdict_tau_int_effective_samples_and_rhat():
    lines = markdown._certificate_detail_lines(
        {"verdict": [1, 0, -1], "tau_int": [2.1e4, 1.8e4, None],
         "effective_samples": [28.0, 17.5, 0.0], "min_effective": 16.0, "rhat": 1.035,
         "rhat_limit": 1.098})
    assert "0: certified, tau_int 2.1e+04 sweeps, 28.0 effective samples" in lines[0]
    assert "2: too short, tau_int ? sweeps, 0.0 effective samples" in lines[0]
    assert "split-R-hat of U/N 1.035 (limit 1.098)" in lines[1]
    assert markdown._scan_certificate_lines({"1.5": [True, False]}) == [
        "- relaxation scan certificates: T = 1.5: 1 of 2 (**NOT certified: [1]**)"]
