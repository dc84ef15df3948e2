"""Benchmarks report their keys; the synthetic data they run on has the shape it claims."""
import numpy as np
import pytest

from mpi_glass.bench import descriptors as bench_descriptors
from mpi_glass.bench import imbalance as bench_imbalance
from mpi_glass.bench import peak_rss_mb


def test_descriptors_benchmark_reports_timings():
    result = bench_descriptors.benchmark(n=300)
    assert result["n"] == 300 and result["m"] == 60
    parts = result["seconds_local"] + result["seconds_coarse_grain"]
    assert 0 < parts == pytest.approx(result["seconds_total"])


def test_dense_configuration_has_the_paper_composition_and_density():
    positions, species, side = bench_descriptors.dense_configuration(1000, seed=3)
    assert positions.shape == (1000, 2) and np.bincount(species).tolist() == [440, 200, 360]
    assert 1000 / side**2 == pytest.approx(1.024)


def test_imbalance_benchmark_reports_its_keys():
    result = bench_imbalance.benchmark(n=200, m=8, d=3)
    for key in ("pair_seconds", "supervised_greedy_seconds", "unsupervised_greedy_seconds",
                "peak_rss_mb", "n", "m", "d"):
        assert key in result


def test_synthetic_features_are_standardised_and_informative():
    X, p, informative = bench_imbalance.synthetic_features(500, 12, seed=1)
    assert X.shape == (500, 12) and p.shape == (500,)
    assert np.allclose(X.mean(axis=0), 0) and np.allclose(X.std(axis=0), 1)
    correlation = [abs(np.corrcoef(X[:, m], p)[0, 1]) for m in range(12)]
    assert int(np.argmax(correlation)) in informative


def test_peak_rss_is_a_positive_number_of_megabytes():
    assert 1.0 < peak_rss_mb() < 1e6


def test_simulate_benchmark_work_splits_evenly_over_one_and_two_ranks():
    from mpi_glass.bench.simulate import SIMULATE_BENCH_TOML
    from mpi_glass.config import parse_config
    cfg = parse_config(SIMULATE_BENCH_TOML, origin="bench")
    assert cfg.relaxation_scan.temperatures == ()       # main ensemble only
    assert cfg.dynamics.configurations * cfg.dynamics.replicas % 2 == 0
    assert cfg.dynamics.configurations % 2 == 0


def test_progress_over_mpi_counts_everything_and_writes_nothing():
    from mpi_glass.bench.progress import progress_cost
    result = progress_cost(ranks=2, seconds=1.0)
    assert result["ranks"] == 2 and result["counted_equals_done"]
    assert result["files_created"] == []


def test_certificate_benchmark_detects_a_frozen_quench_and_certifies_a_hot_liquid():
    """bench certificate end to end on N = 150 (seconds): plain-MC quenches at T = 0.30 are
    never certified; swap chains at T = 2.0 certify, and their continued segments mostly do
    (only the verdict codes are asserted beyond that: three segments are no rate)."""
    from conftest import cli
    import json
    proc = cli("bench", "certificate", "--n", "150", "--temperature", "0.3", "--chains", "2",
               "--sweeps", "0", "--detect-sweeps", "2000", "--json")
    quench = json.loads(proc.stdout)["detection_plain_mc_quench"]
    assert quench["n"] == 2 and quench["detected"] == 1.0 and quench["certified"] == 0.0
    from mpi_glass.bench.certificate import benchmark
    hot = benchmark(n=150, temperature=2.0, chains=2, budget=16000, sample_every=10,
                    segments=2)
    assert hot["from_random_starts"]["certified"] == 2
    assert hot["from_random_starts"]["ensemble_sweeps_to_certify"] < 16000
    assert hot["from_random_starts"]["own_sweeps_to_certify_max"] < 16000
    segments = hot["equilibrium_segments"]
    assert segments["n"] == 4 and segments["certified"] + segments["not_certified"] \
        + segments["too_short"] == pytest.approx(1.0)


def test_synthetic_calibration_keeps_false_failures_rare_and_catches_quench_like_decays():
    """AR(1) equilibrium series with 40 tau_int per half: <= 1 % NOT certified in 400; the
    same series under a 30 sd decay with t_r = n / 4 are never certified."""
    from mpi_glass.bench.certificate import synthetic_calibration
    out = synthetic_calibration(trials=400, tau=10.0, chains=4)["half_40_tau"]
    assert out["single_check"]["not_certified"] <= 0.01
    assert out["certified_mode"]["not_certified"] <= 0.01
    assert out["relaxing_n_over_4"]["certified"] == 0.0
