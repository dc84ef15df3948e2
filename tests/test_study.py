"""The prediction study (mpi_glass.study): selections, protocols, determinism, validation."""
import dataclasses
import json
import math

import numpy as np
import pytest

from conftest import ShuffledMapper
from mpi_glass.config import SelectConfig
from mpi_glass.errors import InputError
from mpi_glass.study import METHODS, PROTOCOL_RUNS, run_study

INFORMATIVE = (1, 5, 8)
WEIGHTS = (1.0, 0.7, -0.5)
NOISE = 0.6


def synthetic(C=4, N=1000, M=10, seed=0):
    """p = w . X[:, INFORMATIVE] + Gaussian noise; the other features are pure noise except
    feature 2, weakly tied to feature 1.  Raw features carry offsets and scales.  Pools
    smaller than 10 use features (1, M/2, M-1) instead."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((C, N, M))
    X[..., 2] = 0.4 * X[..., 1] + math.sqrt(1 - 0.4**2) * X[..., 2]
    informative = list(INFORMATIVE) if M >= 10 else [1, M // 2, M - 1]
    p = X[..., informative] @ np.array(WEIGHTS) + NOISE * rng.standard_normal((C, N))
    species = rng.integers(0, 3, (C, N))
    names = [f"{kind}_l{0.5 * (j + 1):.1f}" for kind in ("rho", "theta") for j in range(M // 2)]
    raw = X * rng.uniform(0.5, 2.0, M) + rng.uniform(-3, 3, M)
    return raw, p, species, names


PARAMS = SelectConfig(d_max=4, random_draws=60, k=1, protocol="honest")


def params(base=PARAMS, **changes):
    return dataclasses.replace(base, **changes)


def comparable(results):
    """The results without wall-clock timings, as JSON text (arrays included)."""
    stripped = {key: value for key, value in results.items() if key != "timings"}
    return json.dumps(stripped, default=lambda a: np.asarray(a).tolist(), sort_keys=True)


@pytest.fixture(scope="module")
def study():
    X, p, species, names = synthetic()
    q = -p + 0.3 * np.random.default_rng(1).standard_normal(p.shape)
    second = 0.5 * p + 0.5 * np.random.default_rng(2).standard_normal(p.shape)
    results = run_study(X, names, {"main": p, "second": second}, q, species,
                        params(protocol="both"))
    return X, p, species, names, q, results


def test_results_structure(study):
    *_, names, _, results = study
    for key in ("supervised", "unsupervised", "single_feature", "regression", "protocol",
                "tau_alpha", "timings", "delta_q_p", "regression_at", "predictions"):
        assert key in results
    assert results["protocol"] == "both" and results["protocols"] == ["honest", "paper"]
    assert list(results["single_feature"]) == names
    assert len(results["supervised"]) == len(results["unsupervised"]) == 4
    entry = results["supervised"][0]
    assert len(entry["names"]) == len(entry["delta_forward"]) == len(entry["delta_backward"]) == 4
    assert 0 < entry["noise_forward"] < 1.5
    by_protocol = results["regression_by_protocol"]
    assert results["regression"] is by_protocol["honest"]       # the first-named protocol
    for protocol in ("honest", "paper"):
        for method in METHODS:
            block = by_protocol[protocol][method]
            assert block["d"] == [1, 2, 3, 4]
            assert len(block["pearson"]) == 4 and len(block["pearson_mean"]) == 4
            assert set(block["species"]) == {"S", "M", "L"}
            if method != "random":   # selected[c][d - 1]: the d features used for fold c
                assert [[len(s) for s in sets] for sets in block["selected"]] == \
                    [[1, 2, 3, 4]] * 4
        assert set(results["regression_at_by_protocol"][protocol]) == {"second"}
    assert results["regression_at"] is results["regression_at_by_protocol"]["honest"]
    assert results["predictions"]["p_hat"].shape == (4, 1000)
    assert all(seconds >= 0 for seconds in results["timings"].values())
    json.dumps({k: v for k, v in results.items() if k != "predictions"})  # JSON-ready


def test_supervised_and_lasso_pick_the_informative_features_first(study):
    *_, results = study
    for method in ("supervised_ii", "lasso"):
        for sets in results["regression"][method]["selected"]:
            assert set(sets[2]) == set(INFORMATIVE), method
    for entry in results["supervised"]:  # the per-configuration (paper) selections too
        assert set(entry["selected"][:3]) == set(INFORMATIVE)


def test_rho_at_three_features_matches_the_analytic_value(study):
    *_, results = study
    signal = sum(w * w for w in WEIGHTS)
    expected = math.sqrt(signal / (signal + NOISE**2))
    # sampling error of rho over 1000 particles ~ (1 - rho^2)/sqrt(1000) ~ 0.005 each
    for method in ("supervised_ii", "lasso"):
        rho = np.array(results["regression"][method]["pearson"])[:, 2]
        assert np.all(np.abs(rho - expected) < 0.025), (method, rho, expected)
        assert abs(rho.mean() - expected) < 0.012


def test_single_feature_table_tracks_the_weights(study):
    *_, names, _, results = study
    table = results["single_feature"]
    strongest = max(names, key=lambda n: abs(table[n]["pearson"]))
    assert strongest == names[INFORMATIVE[0]]
    signal = sum(w * w for w in WEIGHTS) + NOISE**2
    assert table[names[1]]["pearson"] == pytest.approx(1.0 / math.sqrt(signal), abs=0.03)
    assert table[names[3]]["delta_x_to_p"] == pytest.approx(1.0, abs=0.08)  # pure noise
    assert results["delta_q_p"]["delta_q_to_p"] < 0.6


def test_random_at_full_pool_equals_all_features():
    X, p, species, names = synthetic(C=3, N=300, M=6)
    results = run_study(X, names, {"main": p}, None, species,
                        params(d_max=6, random_draws=5, protocol="both"))
    # every selection at d = M uses the whole pool: the same OLS model
    for block in results["regression_by_protocol"].values():
        for method in ("supervised_ii", "unsupervised_ii", "lasso"):
            np.testing.assert_allclose(np.array(block[method]["pearson"])[:, -1],
                                       np.array(block["random"]["pearson"])[:, -1], atol=1e-10)


def test_honest_protocol_never_reads_the_test_propensity(study):
    X, p, species, names, q, results = study
    c = 2
    p2 = p.copy()
    p2[c] = np.random.default_rng(7).permutation(p[c]) * 3.0 + 1.0
    perturbed = run_study(X, names, {"main": p2}, None, species, PARAMS)
    for method in ("supervised_ii", "unsupervised_ii", "lasso"):
        assert perturbed["regression"][method]["selected"][c] == \
            results["regression"][method]["selected"][c], method
    # same selection and same training data: the very same prediction of configuration c
    np.testing.assert_array_equal(perturbed["predictions"]["p_hat"][c],
                                  results["predictions"]["p_hat"][c])
    # ... while the other folds, which train on c, do see the change
    assert not np.array_equal(perturbed["predictions"]["p_hat"][0],
                              results["predictions"]["p_hat"][0])


def test_what_each_protocol_may_read_of_the_test_propensity(study):
    """Perturb configuration 0's propensity: under the paper protocol fold 0's II sets
    change (selected on configuration 0 itself) but its Lasso sets do not (chosen on the
    training configurations); under the honest protocol none of fold 0's sets change."""
    X, p, species, names = synthetic(C=4, N=300, M=6)
    both = params(d_max=3, random_draws=5, protocol="both")
    p2 = p.copy()
    p2[0] = 2.0 * X[0, :, 0] + 0.1 * np.random.default_rng(3).standard_normal(p.shape[1])
    before, after = (run_study(X, names, {"main": pp}, None, species, both)
                     ["regression_by_protocol"] for pp in (p, p2))
    for method in ("supervised_ii", "unsupervised_ii", "lasso"):
        assert after["honest"][method]["selected"][0] == before["honest"][method]["selected"][0]
    assert after["paper"]["supervised_ii"]["selected"][0] != \
        before["paper"]["supervised_ii"]["selected"][0]
    assert after["paper"]["supervised_ii"]["selected"][0][0] == [0]   # the planted feature
    assert after["paper"]["lasso"]["selected"][0] == before["paper"]["lasso"]["selected"][0]
    # fold 1 trains on configuration 0: its Lasso does see the change
    assert after["paper"]["lasso"]["selected"][1] != before["paper"]["lasso"]["selected"][1]


def test_paper_protocol_uses_each_configurations_own_selections(study):
    *_, results = study
    paper = results["regression_by_protocol"]["paper"]
    for method, key in (("supervised_ii", "supervised"), ("unsupervised_ii", "unsupervised")):
        own = [entry["selected"] for entry in results[key]]
        assert [sets[-1] for sets in paper[method]["selected"]] == own
    honest = results["regression_by_protocol"]["honest"]
    for method in ("lasso", "random"):   # the same under both protocols
        assert paper[method] == honest[method]


def test_single_protocol_runs_match_both():
    X, p, species, names = synthetic(C=4, N=300, M=6)
    small = params(d_max=3, random_draws=5)
    results = run_study(X, names, {"main": p}, None, species, params(small, protocol="both"))
    for protocol in ("honest", "paper"):
        alone = run_study(X, names, {"main": p}, None, species,
                          params(small, protocol=protocol))
        assert alone["protocols"] == [protocol]
        assert comparable({"r": alone["regression"]}) == \
            comparable({"r": results["regression_by_protocol"][protocol]})


def test_protocol_choices_of_the_config_are_the_study_s():
    field = {f.name: f for f in dataclasses.fields(SelectConfig)}["protocol"]
    assert set(field.metadata["choices"]) == set(PROTOCOL_RUNS)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_mapper_order_and_rank_count_do_not_matter(size):
    X, p, species, names = synthetic(C=4, N=200, M=6)
    both = params(d_max=3, random_draws=70, protocol="both")
    serial = run_study(X, names, {"main": p}, None, species, both)
    shuffled = run_study(X, names, {"main": p}, None, species, both,
                         mapper=ShuffledMapper(seed=size, size=size))
    assert comparable(shuffled) == comparable(serial)


def test_timings_and_log():
    X, p, species, names = synthetic(C=2, N=150, M=4)
    messages = []
    results = run_study(X, names, {"main": p}, None, species, params(d_max=2, random_draws=3),
                        log=messages.append, tau_alpha=123.0)
    assert messages and results["tau_alpha"] == 123.0
    assert {"single_feature", "supervised_folds", "random"} <= set(results["timings"])


@pytest.mark.parametrize("change, message", [
    (dict(C=1), "at least 2 configurations"),
    (dict(d_max=11), "exceeds the 10 features"),
    (dict(species=5), "species"),
    (dict(constant_p=True), "constant in configuration 1"),
    (dict(nan_feature=True), "NaN"),
])
def test_bad_input_is_one_line_input_error(change, message):
    X, p, species, names = synthetic(C=change.get("C", 3), N=50, M=10)
    chosen = params(**{k: v for k, v in change.items() if k == "d_max"})
    if "species" in change:
        species = species.copy()
        species[0, 0] = change["species"]
    if change.get("constant_p"):
        p = p.copy()
        p[1] = 0.5
    if change.get("nan_feature"):
        X = X.copy()
        X[0, 3, 4] = np.nan
    with pytest.raises(InputError, match=message) as info:
        run_study(X, names, {"main": p}, None, species, chosen)
    assert "\n" not in str(info.value)


@pytest.mark.mpi(min_size=2)
def test_same_results_under_mpi():
    from mpi_glass.parallel import Distributor
    X, p, species, names = synthetic(C=4, N=200, M=6)
    both = params(d_max=3, random_draws=70, protocol="both")
    serial = run_study(X, names, {"main": p}, None, species, both)
    parallel = run_study(X, names, {"main": p}, None, species, both, mapper=Distributor())
    assert comparable(parallel) == comparable(serial)
