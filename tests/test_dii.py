"""The Differentiable Information Imbalance: kernels against an independent brute force,
the gradient against finite differences, the optimiser and the backward elimination."""
import numpy as np
import pytest
from numba import njit

from mpi_glass.imbalance.dii import DiiTarget, dii_value_and_grad


# ---------------------------------------------------------------------------------------
# Independent reference: dense N x N NumPy, ranks by counting, gradient by the chain rule
# written for whole matrices (no code shared with the kernels)
# ---------------------------------------------------------------------------------------

def brute_ranks(B):
    """r[i, j] = 1 + #{m != i, j: d_im < d_ij} + 1/2 #{m != i, j: d_im = d_ij}; r[i, i] = 0."""
    B = B.reshape(len(B), -1)
    D = ((B[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    n = len(B)
    r = np.zeros((n, n))
    for i in range(n):
        others = np.delete(D[i], i)
        for j in range(n):
            if j != i:
                t = D[i, j]
                r[i, j] = 1 + (others < t).sum() + 0.5 * ((others == t).sum() - 1)
    return r


def brute_dii(X, B, w, k=1, factor=0.1, rule="adaptive"):
    """DII and gradient from dense matrices; lambda's dependence on w included."""
    n, M = X.shape
    diff2 = (X[:, None, :] - X[None, :, :]) ** 2          # (N, N, M)
    D = diff2 @ (w * w)
    R = brute_ranks(B)
    off = ~np.eye(n, dtype=bool)
    Dm = np.where(off, D, np.inf)
    kth = np.argsort(Dm, axis=1, kind="stable")[:, k - 1]   # first of ties, like ours
    dk = Dm[np.arange(n), kth]
    dk_dw = 2 * w * diff2[np.arange(n), kth]              # (N, M)
    if rule == "adaptive":
        lam = factor * dk
        dlam_dw = factor * dk_dw
    else:
        lam = np.full(n, factor * dk.mean())
        dlam_dw = np.broadcast_to(factor * dk_dw.mean(0), (n, M))
    zero = lam == 0                  # limit lambda -> 0: uniform over the coincident points
    safe = np.where(zero, 1.0, lam)
    S = -Dm / safe[:, None]
    S -= S.max(1, keepdims=True)
    C = np.exp(S)
    C[zero] = (Dm[zero] == 0)
    C /= C.sum(1, keepdims=True)
    L = (C * R).sum(1)
    G = C * (R - L[:, None])                              # dL_i / ds_ij
    G[~off | zero[:, None]] = 0                           # no gradient from lambda = 0 rows
    dD = -G / safe[:, None]                               # dL_i / dD_ij
    dlam = (G * np.where(off, D, 0)).sum(1) / safe ** 2   # dL_i / dlambda_i
    grad = 2 * w * np.einsum("ij,ijm->m", dD, diff2) + (dlam[:, None] * dlam_dw).sum(0)
    scale = 2.0 / n ** 2
    return L.sum() * scale, grad * scale


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 5))
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * rng.standard_normal(300)
    w = rng.uniform(0.2, 1.5, 5)
    return X, y, w


@pytest.mark.parametrize("rule", ["adaptive", "global"])
@pytest.mark.parametrize("k", [1, 3])
def test_value_and_gradient_equal_brute_force(data, rule, k):
    X, y, w = data
    value, grad = dii_value_and_grad(X, y, w, k=k, rule=rule)
    ref_value, ref_grad = brute_dii(X, y, w, k=k, rule=rule)
    assert abs(value - ref_value) <= 1e-12 * ref_value
    assert rel(grad, ref_grad) <= 1e-12


def test_ties_in_target_and_features_equal_brute_force():
    rng = np.random.default_rng(4)
    X = rng.integers(0, 4, (200, 3)).astype(float) + 0.01 * rng.standard_normal((200, 3))
    X[50:60] = X[40:50]                                  # duplicate points in A
    y = rng.integers(0, 6, 200).astype(float)           # heavy ties in the target
    w = np.array([1.0, 0.7, 0.4])
    for target in (y, np.c_[y, rng.integers(0, 2, 200).astype(float)]):
        value, grad = dii_value_and_grad(X, target, w, factor=0.5)
        ref_value, ref_grad = brute_dii(X, target, w, factor=0.5)
        assert abs(value - ref_value) <= 1e-12 * ref_value
        assert rel(grad, ref_grad) <= 1e-12


def test_multidimensional_target_equals_brute_force(data):
    X, y, w = data
    B = np.c_[y, X[:, 2]]
    value, grad = dii_value_and_grad(X, B, w, k=2)
    ref_value, ref_grad = brute_dii(X, B, w, k=2)
    assert abs(value - ref_value) <= 1e-12 * ref_value
    assert rel(grad, ref_grad) <= 1e-12


@pytest.mark.parametrize("kind", ["continuous", "seven values", "symmetric"])
def test_target_ranks_1d_equal_counting_on_long_tied_runs(kind):
    rng = np.random.default_rng(3)
    y = {"continuous": rng.standard_normal(301),
         "seven values": rng.integers(0, 7, 301).astype(float),
         "symmetric": np.r_[np.arange(-50.0, 51.0), 0.25 * np.arange(-100.0, 100.0)]}[kind]
    ref = brute_ranks(y)
    target = DiiTarget(y)
    for i in range(len(y)):
        assert target.ranks(i).tolist() == ref[i].tolist()


def test_target_ranks_1d_equal_counting():
    y = np.array([0.0, 2.0, 1.0, 1.0, 3.0, 2.0, 0.0, -1.0])
    ref = brute_ranks(y)
    target = DiiTarget(y)
    for i in range(len(y)):
        assert target.ranks(i).tolist() == ref[i].tolist()


@pytest.mark.parametrize("rule", ["adaptive", "global"])
def test_gradient_equals_finite_differences(data, rule):
    X, y, w = data
    X, y = X[:120], y[:120]
    _, grad = dii_value_and_grad(X, y, w, k=2, rule=rule)
    h = 1e-6
    fd = np.empty_like(w)
    for a in range(len(w)):
        up, down = w.copy(), w.copy()
        up[a] += h
        down[a] -= h
        fd[a] = (dii_value_and_grad(X, y, up, k=2, rule=rule)[0]
                 - dii_value_and_grad(X, y, down, k=2, rule=rule)[0]) / (2 * h)
    assert rel(grad, fd) <= 1e-5


def test_zero_weights_are_skipped_and_have_zero_gradient(data):
    X, y, w = data
    w = w.copy()
    w[2] = 0.0
    value, grad = dii_value_and_grad(X, y, w)
    ref_value, ref_grad = brute_dii(X, y, w)
    assert grad[2] == 0.0
    assert abs(value - ref_value) <= 1e-12 * ref_value
    assert rel(grad, ref_grad) <= 1e-12


def test_block_split_does_not_change_bits(data):
    """Any distribution of the row blocks gives the same bits (the sum is in block order)."""
    X, y, w = data

    class Reversed:
        size = 3

        def map(self, fn, n):                # items computed in another order
            out = {i: fn(i) for i in reversed(range(n))}
            return [out[i] for i in range(n)]
    a = dii_value_and_grad(X, y, w)
    b = dii_value_and_grad(X, y, w, mapper=Reversed())
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


# ---------------------------------------------------------------------------------------
# Optimiser and backward elimination
# ---------------------------------------------------------------------------------------

from mpi_glass.errors import InputError  # noqa: E402
from mpi_glass.imbalance.dii_select import (DiiSettings, backward_elimination,  # noqa: E402
                                            initial_weights, optimise_weights)


def informative_data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    y = X[:, 4] + 0.6 * X[:, 1] + 0.1 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("optimizer", ["adam", "gd"])
def test_optimiser_lowers_the_loss_and_weights_the_informative_features(optimizer):
    X, y = informative_data()
    settings = DiiSettings(epochs=60, optimizer=optimizer,
                           learning_rate=0.1 if optimizer == "adam" else 20.0)
    w, history, loss = optimise_weights([X], [y], settings)
    assert loss < 0.8 * history[0]
    assert set(np.argsort(-w)[:2]) == {1, 4}
    w0 = initial_weights(6, settings.seed)
    assert np.sum(w * w) == pytest.approx(np.sum(w0 * w0), rel=1e-12)      # norm kept


def test_backward_elimination_sets_are_nested_and_weights_match_them():
    X, y = informative_data()
    result = backward_elimination([X], [y], d_max=4, settings=DiiSettings(epochs=40))
    sets = result.selected
    assert [len(s) for s in sets] == [1, 2, 3, 4]
    assert all(a == b[:-1] for a, b in zip(sets, sets[1:]))
    assert set(sets[1]) == {1, 4}
    for d, chosen in enumerate(sets, start=1):
        assert set(np.flatnonzero(result.weights[d - 1])) == set(chosen)
    assert sorted(result.order) == list(range(6))
    # Each loss is the DII at its stored weights (independent brute force).
    for d in (2, 4):
        assert result.loss[d - 1] == pytest.approx(brute_dii(X, y, result.weights[d - 1])[0],
                                                   rel=1e-12)


def test_elimination_is_deterministic_from_its_seed():
    X, y = informative_data()
    a = backward_elimination([X], [y], 3, DiiSettings(epochs=10, refit_epochs=3))
    b = backward_elimination([X], [y], 3, DiiSettings(epochs=10, refit_epochs=3))
    c = backward_elimination([X], [y], 3, DiiSettings(epochs=10, refit_epochs=3, seed=5))
    assert np.array_equal(a.weights, b.weights) and a.order == b.order
    assert not np.array_equal(a.weights, c.weights)


def test_one_at_a_time_and_global_lambda_and_l1_run_the_same_contract():
    X, y = informative_data(n=100)
    for settings in (DiiSettings(epochs=20, refit_epochs=3, one_at_a_time=True),
                     DiiSettings(epochs=20, refit_epochs=3, lambda_rule="global"),
                     DiiSettings(epochs=20, refit_epochs=3, l1=0.5)):
        result = backward_elimination([X], [y], 2, settings)
        assert set(result.selected[1]) == {1, 4}, settings


def test_l1_drives_weights_to_exactly_zero():
    X, y = informative_data(n=100)
    w, _, _ = optimise_weights([X], [y], DiiSettings(epochs=40, l1=2.0))
    assert (w == 0).sum() >= 2 and w[4] > 0


@pytest.mark.parametrize("change, message", [
    ({"lambda_factor": 0.0}, "lambda_factor: must be > 0"),
    ({"lambda_factor": -1.0}, "lambda_factor: must be > 0"),
    ({"learning_rate": 0.0}, "learning_rate: must be > 0"),
    ({"epochs": 0}, "epochs: must be >= 1"),
    ({"refit_epochs": 0}, "refit_epochs: must be >= 1"),
    ({"lambda_rule": "local"}, "lambda_rule: must be one of"),
    ({"optimizer": "sgd"}, "optimizer: must be one of"),
])
def test_bad_settings_are_one_line(change, message):
    X, y = informative_data(n=30)
    with pytest.raises(InputError, match=message) as info:
        backward_elimination([X], [y], 2, DiiSettings(**change))
    assert "\n" not in str(info.value)


def test_d_max_above_the_features_is_refused():
    X, y = informative_data(n=30)
    with pytest.raises(InputError, match="d_max: 7 must be between 1 and the 6 features"):
        backward_elimination([X], [y], 7)


@pytest.mark.parametrize("toml, message", [
    ("[dii]\nlambda_factor = 0\n", "dii.lambda_factor: must be > 0"),
    ("[dii]\nlearning_rate = -0.1\n", "dii.learning_rate: must be > 0"),
    ("[dii]\nepochs = 0\n", "dii.epochs: must be >= 1"),
    ("[select]\nmethods = [\"dii\", \"greedy\"]\n", "select.methods: expected distinct names"),
    ("[select]\nmethods = []\n", "select.methods: expected distinct names"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, toml, message):
    from conftest import cli
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    proc = cli("select", "--config", path, "--out", tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


# ---------------------------------------------------------------------------------------
# In the study
# ---------------------------------------------------------------------------------------

from mpi_glass.config import SelectConfig  # noqa: E402

WITH_DII = ("supervised_ii", "unsupervised_ii", "lasso", "random", "dii", "dii_unsupervised")
FAST = DiiSettings(epochs=15, refit_epochs=3)


def study_data(C=3, N=60, M=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((C, N, M))
    p = X[..., 0] + 0.4 * X[..., 2] + 0.3 * rng.standard_normal((C, N))
    return X, p, rng.integers(0, 3, (C, N)), list("abcde")[:M]


def test_dii_in_the_study_under_both_protocols_and_in_select_h5(tmp_path):
    import h5py

    from mpi_glass.imbalance import standardise
    from mpi_glass.schema import SCHEMA_VERSION, SelectData, read_select, write_select
    from mpi_glass.study import run_study
    X, p, species, names = study_data()
    params = SelectConfig(d_max=3, random_draws=4, methods=WITH_DII)
    results = run_study(X, names, {"main": p, "second": 1.1 * p}, None, species, params,
                        dii=FAST)
    assert results["methods"] == list(WITH_DII)
    assert "methods" not in results["parameters"]        # see results["methods"]
    for protocol in ("honest", "paper"):
        block = results["regression_by_protocol"][protocol]["dii"]
        assert len(block["pearson_mean"]) == 3 and len(block["selected"]) == 3
        assert "dii" in results["regression_at_by_protocol"][protocol]["second"]
    # The paper protocol predicts c with c's own elimination.
    paper = results["regression_by_protocol"]["paper"]["dii"]["selected"]
    assert [entry["order"][:3] for entry in results["dii"]] == [sets[-1] for sets in paper]
    results["propensity_time"] = {"main": 1.0}
    path = tmp_path / "select.h5"
    with h5py.File(path, "w") as f:
        write_select(f, SelectData.from_results(X, names, results,
                                                {"mpi_glass_file": "select",
                                                 "schema_version": SCHEMA_VERSION}))
    back = read_select(path)
    assert back.dii_weights.shape == (3, 3, 5) and back.dii_loss.shape == (3, 3)
    assert back.prediction_paper_dii.shape == back.prediction_honest_dii.shape == (3, 3, 3)
    assert back.dii_unsupervised_weights.shape == (3, 3, 5)
    assert back.prediction_honest_dii_unsupervised.shape == (3, 3, 3)
    # Unsupervised DII does not depend on p: the same sets at both times.
    for protocol in ("honest", "paper"):
        assert (results["regression_by_protocol"][protocol]["dii_unsupervised"]["selected"]
                == results["regression_at_by_protocol"][protocol]["second"]
                ["dii_unsupervised"]["selected"])
    unsup = back.group_attrs["/dii_unsupervised"]
    for c in range(3):
        X_c = standardise(back.feature_values[c])
        assert dii_value_and_grad(X_c, X_c, back.dii_unsupervised_weights[c, 2],
                                  k=int(unsup["lambda_k"]), factor=float(unsup["lambda_factor"]),
                                  rule=unsup["lambda_rule"])[0] == back.dii_unsupervised_loss[c, 2]
    attrs = back.group_attrs["/dii"]
    # The loss recomputed from the file's features, weights and attributes alone (plus p).
    for c in range(3):
        for d in (1, 3):
            value = dii_value_and_grad(standardise(back.feature_values[c]), p[c],
                                       back.dii_weights[c, d - 1], k=int(attrs["lambda_k"]),
                                       factor=float(attrs["lambda_factor"]),
                                       rule=attrs["lambda_rule"])[0]
            assert value == back.dii_loss[c, d - 1]


def test_default_methods_leave_dii_out():
    from mpi_glass.study import run_study
    X, p, species, names = study_data()
    results = run_study(X, names, {"main": p}, None, species,
                        SelectConfig(d_max=2, random_draws=3))
    assert "dii" not in results and "dii" not in results["regression"]


@pytest.mark.parametrize("change, message", [
    ("constant", "constant"), ("nan_feature", "NaN"), ("nan_p", "NaN")])
def test_bad_study_input_is_one_line(change, message):
    from mpi_glass.study import run_study
    X, p, species, names = study_data()
    if change == "constant":
        X[1, :, 3] = 2.0
    elif change == "nan_feature":
        X[0, 5, 1] = np.nan
    else:
        p[2, 7] = np.nan
    with pytest.raises(InputError, match=message) as info:
        run_study(X, names, {"main": p}, None, species,
                  SelectConfig(d_max=2, random_draws=3, methods=("dii",)), dii=FAST)
    assert "\n" not in str(info.value)
    if change == "constant":      # named, and refused (README: constant features are errors)
        assert "feature 'd' (column 3) is constant" in str(info.value)


def test_report_shows_dii_against_greedy(tmp_path):
    from mpi_glass.report import write_report
    from mpi_glass.study import run_study
    X, p, species, names = study_data()
    results = run_study(X, names, {"main": p}, None, species,
                        SelectConfig(d_max=2, random_draws=3, methods=WITH_DII), dii=FAST)
    results["propensity_time"] = {"main": 1.0}
    write_report(tmp_path, results, None, {})
    text = (tmp_path / "report.md").read_text()
    assert "## DII selection" in text and "Does DII beat greedy supervised II" in text
    assert "Does unsupervised DII beat greedy unsupervised II" in text
    assert (tmp_path / "figures" / "fig7_regression.png").exists()


def test_bench_dii_reports_its_keys():
    from mpi_glass.bench.dii import benchmark
    result = benchmark(n=150, m=6, d=2, epochs=1)
    for key in ("seconds_per_epoch", "cpu_seconds_per_epoch", "elimination_seconds",
                "peak_rss_mb_per_rank", "n", "m", "d", "ranks"):
        assert key in result
    with pytest.raises(InputError, match="--d 7 exceeds the 6 features"):
        benchmark(n=150, m=6, d=7)


@pytest.mark.mpi(min_size=2)
def test_bit_identical_for_any_rank_count():
    from mpi_glass.parallel import Distributor
    rng = np.random.default_rng(7)
    X = rng.standard_normal((700, 8))          # 6 row blocks: uneven over the ranks
    y = X[:, 0] + 0.3 * rng.standard_normal(700)
    w = rng.uniform(0.5, 1.5, 8)
    dist = Distributor()
    for rule in ("adaptive", "global"):
        serial = dii_value_and_grad(X, y, w, rule=rule)
        parallel = dii_value_and_grad(X, y, w, rule=rule, mapper=dist)
        assert serial[0] == parallel[0] and np.array_equal(serial[1], parallel[1])
    a = backward_elimination([X[:300]], [y[:300]], 3, FAST)
    b = backward_elimination([X[:300]], [y[:300]], 3, FAST, mapper=dist)
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.loss, b.loss)


def test_the_softmax_exponential_is_within_one_ulp_of_numpy():
    from mpi_glass.imbalance.dii import _EXP_FLOOR, _exp_neg

    @njit
    def exp_all(x):
        out = np.empty_like(x)
        for m in range(x.shape[0]):
            out[m] = _exp_neg(x[m])
        return out

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(0.0, _EXP_FLOOR, 2_000_000), rng.uniform(0.0, 1.0, 10_000),
                        [0.0, 5e-324, 1e-300, np.log(2) / 2, np.log(2), 1.0, _EXP_FLOOR]])
    x = np.concatenate([x, np.nextafter(x[-5:], 0.0), np.nextafter(x[-5:], np.inf)])
    ref = np.exp(-x)
    assert exp_all(np.zeros(1))[0] == 1.0
    assert np.max(np.abs(exp_all(x) - ref) / np.spacing(ref)) <= 1.0
