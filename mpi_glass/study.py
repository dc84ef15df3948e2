"""The prediction study on arrays (paper Sec. III): what ``mpi_glass select`` reports.

``run_study`` takes the raw features, propensities and species of C configurations and
returns one JSON-ready dict (it becomes report.json):

1. the single-feature table: Pearson rho(X, p), Delta(X -> p), Delta(p -> X) per feature,
   averaged over configurations (Fig. 4), and Delta(q -> p), Delta(p -> q);
2. the paper's per-configuration selections: one supervised greedy (minimise
   Delta(X_d -> p), with the Gaussian-noise control point) and one unsupervised greedy
   (minimise the symmetrised Delta(X_full, X_d)) per configuration (Figs. 5, 6);
3. the regression study: leave-one-configuration-out OLS with the first d features of four
   selections - supervised II, unsupervised II, Lasso and random (Figs. 7-9), and the same at
   every further propensity time (Fig. 10).

Protocols (who may look at what before configuration c is predicted):

* ``honest`` (default): every selection used to predict c is computed on the *training*
  configurations only - supervised and unsupervised II minimise their mean Delta over the
  other C - 1 configurations, Lasso runs on their pooled particles - so neither c's
  propensity nor its features are read before c is predicted.  C greedy runs per method.
* ``paper``: the authors' protocol: the selection used for c is the per-configuration
  selection of c itself (item 2; Lasso on c's own particles), then the regression as above.
  Selection then sees the test propensity, so rho(p, p_hat) is optimistic.

Features are standardised per configuration for the information imbalance (DESIGN.md); the
regression standardises with the training set's moments (``mpi_glass.regression``).
Independent work (greedy runs, candidate blocks, random-draw blocks) goes through
``mapper.map``; every item is a pure function of its index, so results do not depend on the
number of ranks or the order in which items run.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import regression as rg
from .errors import InputError
from .imbalance import (SerialMapper, imbalance_pair, single_feature_table, standardise,
                        supervised_greedy, unsupervised_greedy)

#: The four feature selections compared in the regression study (Fig. 7), in plot order.
METHODS = ("supervised_ii", "unsupervised_ii", "lasso", "random")
PROTOCOLS = {
    "honest": "every selection used to predict configuration c is computed on the other "
              "configurations only (c's propensity and features are never read before it "
              "is predicted)",
    "paper": "the selection used to predict configuration c is computed on c itself (the "
             "authors' protocol; the test propensity is seen by the supervised selections)",
}


@dataclass(frozen=True)
class StudyParams:
    """The knobs of the study (the ``[select]`` keys of the config)."""

    d_max: int = 15
    k: int = 1
    protocol: str = "honest"
    random_draws: int = 1000
    noise_seed: int = 0

    @classmethod
    def from_any(cls, params):
        """From None (defaults), a mapping, or any object with these attributes
        (e.g. ``config.SelectConfig``); other keys and attributes are ignored."""
        if params is None:
            return cls()
        get = params.get if isinstance(params, dict) else lambda key, _: getattr(params, key, _)
        values = {f.name: get(f.name, f.default) for f in fields(cls)}
        out = cls(**values)
        if out.protocol not in PROTOCOLS:
            raise InputError(f"select.protocol: 'honest' or 'paper', got {out.protocol!r}")
        for key in ("d_max", "k", "random_draws"):
            value = getattr(out, key)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"select.{key}: expected a positive integer, got {value!r}")
        return out


class _Stopwatch:
    """Wall-clock seconds per named stage."""

    def __init__(self):
        self.seconds = {}

    @contextmanager
    def __call__(self, stage):
        start = time.perf_counter()
        yield
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------

@dataclass
class _Study:
    """What every stage of one study shares."""

    features: np.ndarray        # (C, N, M) raw
    X: list                     # per-configuration standardised (N, M) features
    species: np.ndarray         # (C, N) or None
    params: StudyParams
    mapper: object
    seed: int                   # root of the random-baseline draws
    clock: _Stopwatch
    log: object


def run_study(features, names, p_by_time, q, species, params=None, mapper=None, log=None,
              seed=None, tau_alpha=None):
    """The whole study; see the module docstring.  Runs on every rank, same result on each.

    features: (C, N, M) raw features; names: M feature names; p_by_time: {label: (C, N)}
    propensities - the label "main" (else the first) is the main time, every other label
    gets its own regression study (Fig. 10); q: (C, N) bond-breaking propensity at the main
    time, or None; species: (C, N) codes 0 S, 1 M, 2 L, or None; params: ``StudyParams``,
    a mapping or ``SelectConfig``; mapper: object with ``map(fn, n)`` (default serial);
    log: callable(str) for progress; seed: root of the random-baseline draws (default
    params.noise_seed); tau_alpha: copied into the results.

    Returns a dict with the keys ``protocol``, ``single_feature``, ``delta_q_p``,
    ``supervised``, ``unsupervised``, ``regression``, ``regression_at``, ``predictions``
    (numpy arrays: not JSON; ``report.write_report`` moves them to the figure data),
    ``tau_alpha``, ``timings`` and bookkeeping (see README/report).
    """
    params = StudyParams.from_any(params)
    features, names, p_by_time, q, species = _validated(features, names, p_by_time, q,
                                                        species, params)
    C, N, M = features.shape
    X = [standardise(features[c], names, f"features of configuration {c}") for c in range(C)]
    study = _Study(features, X, species, params, mapper or SerialMapper(),
                   params.noise_seed if seed is None else int(seed), _Stopwatch(),
                   log or (lambda message: None))
    labels = list(p_by_time)
    p = p_by_time[labels[0]]
    results = {
        "protocol": params.protocol,
        "protocol_description": PROTOCOLS[params.protocol],
        "parameters": dict(asdict(params), random_seed=study.seed),
        "n_configurations": C, "n_particles": N, "n_features": M,
        "feature_names": list(names), "time_labels": labels, "tau_alpha": tau_alpha,
    }
    clock = study.clock

    study.log(f"study: single-feature table ({M} features x {C} configurations)")
    with clock("single_feature"):
        results["single_feature"] = single_feature_summary(X, p, names, params.k, study.mapper)
        results["delta_q_p"] = delta_q_p(q, p, params.k) if q is not None else None

    study.log(f"study: per-configuration selections (d_max = {params.d_max})")
    with clock("supervised_per_configuration"):
        supervised = per_configuration_supervised(X, p, params, study.mapper)
    with clock("unsupervised_per_configuration"):
        unsupervised = per_configuration_unsupervised(X, params, study.mapper)
    results["supervised"] = [_supervised_entry(c, r, names) for c, r in enumerate(supervised)]
    results["unsupervised"] = [_unsupervised_entry(c, r, names)
                               for c, r in enumerate(unsupervised)]

    with clock("unsupervised_folds"):
        if params.protocol == "honest":
            study.log("study: unsupervised selections on the training configurations of "
                      "each fold")
            unsupervised = fold_greedies(X, None, params, study.mapper)
        unsupervised_orders = [r.selected for r in unsupervised]

    results["regression"], results["predictions"] = regression_study(
        study, p, unsupervised_orders, own_supervised=supervised)
    results["regression_at"] = {
        label: regression_study(study, p_by_time[label], unsupervised_orders, label=label)[0]
        for label in labels[1:]}
    results["timings"] = clock.seconds
    return results


# ---------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------

def single_feature_summary(X, p, names, k=1, mapper=None):
    """Per feature name: Pearson, Delta(X -> p), Delta(p -> X) - mean and standard deviation
    over configurations, and the per-configuration values (paper Fig. 4)."""
    mapper = mapper or SerialMapper()
    tables = mapper.map(lambda c: single_feature_table(X[c], p[c], k), len(X))
    summary = {}
    for j, name in enumerate(names):
        entry = {}
        for key in ("pearson", "delta_x_to_p", "delta_p_to_x"):
            values = np.array([table[key][j] for table in tables])
            entry[key] = float(values.mean())
            entry[f"{key}_std"] = float(values.std())
            entry[f"{key}_per_configuration"] = values.tolist()
        summary[name] = entry
    return summary


def delta_q_p(q, p, k=1):
    """Delta(q -> p) and Delta(p -> q), averaged over configurations (paper Sec. III A)."""
    pairs = np.array([imbalance_pair(q[c], p[c], k) for c in range(len(p))])
    return {"delta_q_to_p": float(pairs[:, 0].mean()), "delta_p_to_q": float(pairs[:, 1].mean()),
            "delta_q_to_p_per_configuration": pairs[:, 0].tolist(),
            "delta_p_to_q_per_configuration": pairs[:, 1].tolist()}


def per_configuration_supervised(X, p, params, mapper=None):
    """One supervised greedy per configuration, on that configuration alone (Fig. 5).

    Configuration c's noise column comes from its own stream, ``noise_seed(params, c)``.
    """
    def job(c, inner):
        return supervised_greedy([X[c]], [p[c]], d_max=params.d_max, mapper=inner,
                                 noise_seed=noise_seed(params.noise_seed, c), k=params.k)
    return map_jobs(mapper, len(X), job)


def per_configuration_unsupervised(X, params, mapper=None):
    """One unsupervised greedy per configuration, on that configuration alone (Fig. 6)."""
    def job(c, inner):
        return unsupervised_greedy([X[c]], d_max=params.d_max, mapper=inner, k=params.k)
    return map_jobs(mapper, len(X), job)


def fold_greedies(X, p, params, mapper=None):
    """The honest protocol's selections: for fold c, the greedy on every configuration but
    c (supervised if ``p`` is given, else unsupervised); it never sees c's data."""
    def job(c, inner):
        train = [k for k in range(len(X)) if k != c]
        if p is None:
            return unsupervised_greedy([X[k] for k in train], d_max=params.d_max,
                                       mapper=inner, k=params.k)
        return supervised_greedy([X[k] for k in train], [p[k] for k in train],
                                 d_max=params.d_max, mapper=inner,
                                 noise_seed=noise_seed(params.noise_seed, c), k=params.k)
    return map_jobs(mapper, len(X), job)


def regression_study(study, p, unsupervised_orders, own_supervised=None, label=None):
    """rho(p, p_hat) versus d for the four selections at one propensity time p (C, N).

    The unsupervised orders do not depend on p and are passed in; ``own_supervised``
    (per-configuration supervised greedies on this p) is reused by the paper protocol,
    computed when missing.  Returns (summary dict, predictions of supervised II at d_max).
    """
    params, clock, tag = study.params, study.clock, "" if label is None else f"@{label}"
    reg = rg.LocoRegression(study.features, p, study.species)
    with clock("supervised_folds" + tag):
        if params.protocol == "honest":
            study.log(f"study{tag}: supervised selections on the training configurations of "
                      "each fold")
            supervised = fold_greedies(study.X, p, params, study.mapper)
        else:
            supervised = own_supervised or per_configuration_supervised(study.X, p, params,
                                                                        study.mapper)
    with clock("lasso" + tag):
        lasso = rg.lasso_orders(reg, params.d_max, params.protocol)
    orders = {"supervised_ii": [r.selected for r in supervised],
              "unsupervised_ii": [list(o) for o in unsupervised_orders], "lasso": lasso}
    summary = {}
    with clock("regression" + tag):
        for method, order in orders.items():
            summary[method] = rg.summarise(rg.loco_curves(reg, order, params.d_max),
                                           reg.groups)
            summary[method]["selected"] = [[int(j) for j in o[:params.d_max]] for o in order]
    study.log(f"study{tag}: random baseline ({params.random_draws} draws per d)")
    with clock("random" + tag):
        mean, spread = rg.random_curves(reg, params.d_max, params.random_draws, study.seed,
                                        study.mapper)
    summary["random"] = dict(rg.summarise(mean, reg.groups), draws=params.random_draws,
                             pearson_draw_std=spread[:, :, 0].tolist())
    d = params.d_max
    p_hat = np.stack([reg.predict(c, orders["supervised_ii"][c][:d]) for c in range(reg.C)])
    return summary, {"method": "supervised_ii", "d": d, "p_hat": p_hat}


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

def map_jobs(mapper, n, job):
    """[job(i, inner_mapper) for i in range(n)], the work spread over the mapper's ranks.

    When the jobs split evenly over the ranks (size divides n) each rank runs whole jobs
    serially; otherwise the jobs run one after the other with their own work items
    (candidate blocks) spread over the ranks.  Both give identical results: a greedy's
    outcome does not depend on how its candidates are blocked.
    """
    size = int(getattr(mapper, "size", 1))
    if size > 1 and n % size == 0:
        return mapper.map(lambda i: job(i, SerialMapper()), n)
    return [job(i, mapper) for i in range(n)]


def noise_seed(root, c):
    """The noise-control seed of configuration (or fold) c: its own stream, keyed by c."""
    return int(np.random.SeedSequence([root, c]).generate_state(1)[0])


def _supervised_entry(c, result, names):
    return {"configuration": c, "selected": result.selected,
            "names": [names[j] for j in result.selected],
            "delta_forward": result.delta_forward[:, 0].tolist(),
            "delta_backward": result.delta_backward[:, 0].tolist(),
            "noise_forward": float(result.noise_forward[0]),
            "noise_backward": float(result.noise_backward[0])}


def _unsupervised_entry(c, result, names):
    forward, backward = result.delta_forward[:, 0], result.delta_backward[:, 0]
    return {"configuration": c, "selected": result.selected,
            "names": [names[j] for j in result.selected],
            "delta_forward": forward.tolist(), "delta_backward": backward.tolist(),
            "delta_symmetric": ((forward + backward) / np.sqrt(2.0)).tolist()}


def _validated(features, names, p_by_time, q, species, params):
    """Arrays as float64/int, shapes checked; one-line InputErrors naming the input."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 3:
        raise InputError(f"features: expected (C, N, M), got shape {features.shape}")
    C, N, M = features.shape
    if C < 2:
        raise InputError(f"features: leave-one-configuration-out regression needs at least "
                         f"2 configurations, got {C}")
    names = [str(name) for name in names]
    if len(names) != M or len(set(names)) != M:
        raise InputError(f"names: expected {M} distinct feature names, got {len(names)}")
    if params.d_max > M:
        raise InputError(f"select.d_max: {params.d_max} exceeds the {M} features in the pool")
    if params.k >= N:
        raise InputError(f"select.k: must be below the {N} particles, got {params.k}")
    if not p_by_time:
        raise InputError("p_by_time: no propensity given")
    ordered = {}
    for label in sorted(p_by_time, key=lambda key: key != "main"):  # "main" first if present
        ordered[label] = _per_particle(p_by_time[label], (C, N), f"p[{label!r}]")
        flat = np.ptp(ordered[label], axis=1) == 0
        if flat.any():
            raise InputError(f"p[{label!r}]: constant in configuration {int(np.argmax(flat))}")
    if q is not None:
        q = _per_particle(q, (C, N), "q")
    if species is not None:
        species = np.asarray(species)
        if species.shape != (C, N) or not np.isin(species, (0, 1, 2)).all():
            raise InputError(f"species: expected codes 0, 1, 2 of shape {(C, N)}")
    return features, names, ordered, q, species


def _per_particle(values, shape, what):
    values = np.asarray(values, dtype=np.float64)
    if values.shape != shape:
        raise InputError(f"{what}: expected shape {shape}, got {values.shape}")
    if not np.isfinite(values).all():
        raise InputError(f"{what}: contains NaN or inf")
    return values
