"""The prediction study on arrays (paper Sec. III): what ``mpi_glass select`` reports.

``run_study`` takes the raw features, propensities and species of C configurations and
returns one JSON-ready dict (it becomes report.json):

1. the single-feature table: Pearson rho(X, p), Delta(X -> p), Delta(p -> X) per feature,
   averaged over configurations (Fig. 4), and Delta(q -> p), Delta(p -> q);
2. the paper's per-configuration selections: one supervised greedy (minimise
   Delta(X_d -> p), with the Gaussian-noise control point) and one unsupervised greedy
   (minimise the symmetrised Delta(X_full, X_d)) per configuration (Figs. 5, 6);
3. the regression study: leave-one-configuration-out OLS with d features chosen by four
   methods - supervised II, unsupervised II, Lasso and random (Figs. 7-9), under one or both
   protocols, and the same at every further propensity time (Fig. 10).

Protocols (who may look at what before configuration c is predicted); in every one the
regression and its scaler are fitted on the training configurations (the other C - 1):

* ``honest``: every selection used to predict c is computed on the training configurations
  only - supervised and unsupervised II minimise their mean Delta over them (C greedy runs
  per method), Lasso runs on their pooled particles - so neither c's propensity nor its
  features are read before c is predicted.
* ``paper``: the authors' protocol: the II selections used for c are the per-configuration
  selections of c itself (item 2), so the supervised one has seen the test propensity; the
  Lasso alpha and support come from the training configurations, as in the authors'
  notebook (Lasso fitted on X_train, y_train).
* ``both``: the two side by side on the same features; ``regression`` holds the first-named
  (honest), ``regression_by_protocol`` both.  Lasso and random are the same under both by
  construction: only the II selections differ.

Features are standardised per configuration for the information imbalance (DESIGN.md); the
regression standardises with the training set's moments (``mpi_glass.regression``).
Independent work (greedy runs, candidate blocks, random-draw blocks) goes through
``mapper.map``; every item is a pure function of its index, so results do not depend on the
number of ranks or the order in which items run.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from . import regression as rg
from .config import SelectConfig
from .errors import InputError
from .imbalance import (imbalance_pair, single_feature_table, standardise, supervised_greedy,
                        unsupervised_greedy)
from .imbalance.dii_select import DiiSettings, backward_elimination
from .mapper import SerialMapper
from .methods import DEFAULT_METHODS, REGISTRY
from .model import SPECIES_NAMES

__all__ = ["METHODS", "PROTOCOLS", "PROTOCOL_RUNS", "run_study", "single_feature_summary",
           "delta_q_p", "per_configuration_supervised", "per_configuration_unsupervised",
           "fold_greedies", "regression_study", "map_jobs", "noise_seed", "MethodContext",
           "curve_summary", "dii_per_configuration", "dii_fold_selections"]

#: The methods run by default (``select.methods``); every method: ``methods.REGISTRY``.
METHODS = DEFAULT_METHODS
PROTOCOLS = {
    "honest": "every selection used to predict configuration c is computed on the other "
              "configurations only (c's propensity and features are never read before it "
              "is predicted)",
    "paper": "the authors' protocol: the II selections used to predict configuration c are "
             "computed on c itself (the supervised one sees the test propensity); Lasso "
             "alpha and support on the other configurations",
}
#: ``select.protocol`` -> the protocols run; the first named fills ``regression``.
PROTOCOL_RUNS = {"honest": ("honest",), "paper": ("paper",), "both": ("honest", "paper")}


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
    species_names: tuple        # the model's, one per species code
    params: SelectConfig
    protocols: tuple            # the protocols run, first-named first
    mapper: object
    seed: int                   # root of the random-baseline draws
    clock: _Stopwatch
    log: object
    methods: tuple = DEFAULT_METHODS   # the registry entries run, in plot order
    dii: DiiSettings = DiiSettings()
    cache: dict = field(default_factory=dict)   # selections that do not depend on p


def run_study(features, names, p_by_time, q, species, params=None, mapper=None, log=None,
              seed=None, tau_alpha=None, dii=None, species_names=SPECIES_NAMES):
    """The whole study; see the module docstring.  Runs on every rank, same result on each.

    features: (C, N, M) raw features; names: M feature names; p_by_time: {label: (C, N)}
    propensities - the label "main" (else the first) is the main time, every other label
    gets its own regression study (Fig. 10); q: (C, N) bond-breaking propensity at the main
    time, or None; species: (C, N) codes 0 S, 1 M, 2 L, or None; params: the validated
    ``[select]`` section (``config.SelectConfig``; None: its defaults); mapper: object with
    ``map(fn, n)`` (default serial); log: callable(str) for progress; seed: root of the
    random-baseline draws (default params.noise_seed); tau_alpha: copied into the results;
    dii: ``DiiSettings`` of the ``dii`` method (default: its defaults).  ``params.methods``
    (default ``methods.DEFAULT_METHODS``) chooses the methods of the regression study;
    species_names: the model's species, one per code (default the paper's S, M, L).

    Returns a dict with the keys ``protocol`` (the config value), ``protocols`` (those run),
    ``single_feature``, ``delta_q_p``, ``supervised``, ``unsupervised``, ``regression`` (the
    first protocol's), ``regression_by_protocol``, ``regression_at`` and
    ``regression_at_by_protocol`` (further times), ``predictions`` (numpy arrays: not JSON;
    ``report.write_report`` moves them to the figure data), ``tau_alpha``, ``timings`` and
    bookkeeping (see README/report).  ``regression[method]["selected"][c][d - 1]`` lists
    the d features used to predict configuration c.

    Examples
    --------
    p is feature "a" plus noise; three configurations of 30 particles:

    >>> from mpi_glass.config import SelectConfig
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 30, 4))
    >>> p = X[..., 0] + 0.1 * rng.standard_normal((3, 30))
    >>> results = run_study(X, ["a", "b", "c", "d"], {"main": p}, None, None,
    ...                     SelectConfig(d_max=2, random_draws=4))
    >>> results["supervised"][0]["names"][0], results["protocols"]
    ('a', ['honest', 'paper'])
    """
    params = params if params is not None else SelectConfig()
    features, names, p_by_time, q, species = _validated(features, names, p_by_time, q,
                                                        species, params, len(species_names))
    C, N, M = features.shape
    X = [standardise(features[c], names, f"features of configuration {c}") for c in range(C)]
    protocols = PROTOCOL_RUNS[params.protocol]
    methods = _chosen_methods(params)
    study = _Study(features, X, species, tuple(species_names), params, protocols,
                   mapper or SerialMapper(),
                   params.noise_seed if seed is None else int(seed), _Stopwatch(),
                   log or (lambda message: None), methods, (dii or DiiSettings()).check())
    labels = list(p_by_time)
    p = p_by_time[labels[0]]
    parameters = {key: value for key, value in asdict(params).items() if key != "methods"}
    results = {
        "protocol": params.protocol, "protocols": list(protocols),
        "protocol_descriptions": {name: PROTOCOLS[name] for name in protocols},
        "parameters": dict(parameters, random_seed=study.seed),
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

    own = {}     # per-configuration results of the registry's methods at the main time
    for name in methods:
        if REGISTRY[name].per_configuration is not None:
            study.log(f"study: {name} on each configuration")
            with clock(f"{name}_per_configuration"):
                own[name] = REGISTRY[name].per_configuration(study, p)
    for name in ("dii", "dii_unsupervised"):
        if name in own:
            results[name] = [_dii_entry(c, r, names) for c, r in enumerate(own[name])]
            results["dii_settings"] = asdict(study.dii)
    results["methods"] = list(methods)

    unsupervised_orders = {"paper": [r.selected for r in unsupervised]}
    if "honest" in protocols:
        study.log("study: unsupervised selections on the training configurations of each fold")
        with clock("unsupervised_folds"):
            unsupervised_orders["honest"] = [r.selected for r in
                                             fold_greedies(X, None, params, study.mapper)]

    by_protocol, results["predictions"] = regression_study(
        study, p, unsupervised_orders, own_supervised=supervised, own=own)
    at = {label: regression_study(study, p_by_time[label], unsupervised_orders, label=label)[0]
          for label in labels[1:]}
    results["regression"] = by_protocol[protocols[0]]
    results["regression_by_protocol"] = by_protocol
    results["regression_at_by_protocol"] = {name: {label: at[label][name] for label in at}
                                            for name in protocols}
    results["regression_at"] = results["regression_at_by_protocol"][protocols[0]]
    results["timings"] = clock.seconds
    return results


# ---------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------

def single_feature_summary(X, p, names, k=1, mapper=None):
    """Per feature name: Pearson, Delta(X -> p), Delta(p -> X) - mean and standard deviation
    over configurations, and the per-configuration values (paper Fig. 4).

    Examples
    --------
    >>> from mpi_glass.bench.imbalance import synthetic_features
    >>> X, p, _ = zip(*[synthetic_features(30, 4, seed=c) for c in range(3)])  # p from 1, 3
    >>> summary = single_feature_summary(X, p, ["a", "b", "c", "d"])
    >>> round(summary["b"]["pearson"], 3), len(summary["b"]["delta_x_to_p_per_configuration"])
    (0.881, 3)
    """
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
    """Delta(q -> p) and Delta(p -> q), averaged over configurations (paper Sec. III A).

    Examples
    --------
    Equal spaces share every neighbour: the minimum, 2 / N (N = 10).

    >>> p = np.arange(20.0).reshape(2, 10) ** 1.5
    >>> delta_q_p(p, p)["delta_q_to_p"]
    0.2
    """
    pairs = np.array([imbalance_pair(q[c], p[c], k) for c in range(len(p))])
    return {"delta_q_to_p": float(pairs[:, 0].mean()), "delta_p_to_q": float(pairs[:, 1].mean()),
            "delta_q_to_p_per_configuration": pairs[:, 0].tolist(),
            "delta_p_to_q_per_configuration": pairs[:, 1].tolist()}


def per_configuration_supervised(X, p, params, mapper=None):
    """One supervised greedy per configuration, on that configuration alone (Fig. 5).

    Configuration c's noise column comes from its own stream, ``noise_seed(params, c)``.

    Examples
    --------
    >>> from mpi_glass.bench.imbalance import synthetic_features
    >>> X, p, _ = zip(*[synthetic_features(30, 4, seed=c) for c in range(3)])  # p from 1, 3
    >>> from mpi_glass.config import SelectConfig
    >>> [result.selected for result in
    ...  per_configuration_supervised(X, p, SelectConfig(d_max=2))]
    [[1, 3], [1, 3], [1, 3]]
    """
    def job(c, inner):
        return supervised_greedy([X[c]], [p[c]], d_max=params.d_max, mapper=inner,
                                 noise_seed=noise_seed(params.noise_seed, c), k=params.k)
    return map_jobs(mapper, len(X), job)


def per_configuration_unsupervised(X, params, mapper=None):
    """One unsupervised greedy per configuration, on that configuration alone (Fig. 6).

    Examples
    --------
    >>> from mpi_glass.bench.imbalance import synthetic_features
    >>> X, p, _ = zip(*[synthetic_features(30, 4, seed=c) for c in range(3)])  # p from 1, 3
    >>> from mpi_glass.config import SelectConfig
    >>> [result.selected for result in per_configuration_unsupervised(X, SelectConfig(d_max=2))]
    [[0, 3], [2, 3], [2, 0]]
    """
    def job(c, inner):
        return unsupervised_greedy([X[c]], d_max=params.d_max, mapper=inner, k=params.k)
    return map_jobs(mapper, len(X), job)


def fold_greedies(X, p, params, mapper=None):
    """The honest protocol's selections: for fold c, the greedy on every configuration but
    c (supervised if ``p`` is given, else unsupervised); it never sees c's data.

    Examples
    --------
    >>> from mpi_glass.bench.imbalance import synthetic_features
    >>> X, p, _ = zip(*[synthetic_features(30, 4, seed=c) for c in range(3)])  # p from 1, 3
    >>> from mpi_glass.config import SelectConfig
    >>> [result.selected for result in fold_greedies(X, p, SelectConfig(d_max=2))]
    [[1, 3], [1, 3], [1, 3]]
    """
    def job(c, inner):
        train = [k for k in range(len(X)) if k != c]
        if p is None:
            return unsupervised_greedy([X[k] for k in train], d_max=params.d_max,
                                       mapper=inner, k=params.k)
        return supervised_greedy([X[k] for k in train], [p[k] for k in train],
                                 d_max=params.d_max, mapper=inner,
                                 noise_seed=noise_seed(params.noise_seed, c), k=params.k)
    return map_jobs(mapper, len(X), job)


class MethodContext:
    """What a method's ``summary`` (``mpi_glass.methods``) may use at one propensity time:
    the study, p (C, N), the regression engine ``reg``, and the selections computed so far
    (per configuration at the main time, per fold), cached so each is computed once."""

    def __init__(self, study, p, unsupervised_orders, own_supervised=None, own=None,
                 label=None):
        self.study, self.p, self.params = study, p, study.params
        self.clock, self.log = study.clock, study.log
        self.tag = "" if label is None else f"@{label}"
        self.reg = rg.LocoRegression(study.features, p, study.species, study.species_names)
        self.unsupervised_orders = unsupervised_orders
        self._supervised = {"paper": own_supervised} if own_supervised else {}
        self._own = dict(own or {}) if label is None else {}

    def supervised_orders(self, protocol):
        """The supervised greedy orders used to predict each configuration."""
        if protocol not in self._supervised:
            with self.clock("supervised_folds" + self.tag):
                if protocol == "honest":
                    self.log(f"study{self.tag}: supervised selections on the training "
                             "configurations of each fold")
                    self._supervised[protocol] = fold_greedies(self.study.X, self.p,
                                                               self.params, self.study.mapper)
                else:
                    self._supervised[protocol] = per_configuration_supervised(
                        self.study.X, self.p, self.params, self.study.mapper)
        return [r.selected for r in self._supervised[protocol]]

    def dii_own(self):
        """The DII backward eliminations on each configuration at this time."""
        if "dii" not in self._own:
            with self.clock("dii_per_configuration" + self.tag):
                self._own["dii"] = dii_per_configuration(self.study, list(self.p))
        return self._own["dii"]

    def dii_targets(self, unsupervised):
        """Per configuration, the DII target: X_full (unsupervised) or p."""
        return self.study.X if unsupervised else list(self.p)


def regression_study(study, p, unsupervised_orders, own_supervised=None, label=None, own=None):
    """rho(p, p_hat) versus d for the study's methods at one propensity time p (C, N), for
    every protocol of the study.

    unsupervised_orders: {protocol: per-fold orders} (they do not depend on p);
    ``own_supervised`` (per-configuration supervised greedies on this p) and ``own``
    ({method: per-configuration results}) are what the paper protocol uses, computed when
    missing.  Methods that do not depend on the protocol are computed once.  Returns
    ({protocol: summary dict}, predictions at d_max under the first protocol of supervised
    II, else of the first method with feature sets).
    """
    ctx = MethodContext(study, p, unsupervised_orders, own_supervised, own, label)
    shared, by_protocol = {}, {name: {} for name in study.protocols}
    for name in study.methods:
        method = REGISTRY[name]
        if method.by_protocol:
            for protocol in study.protocols:
                by_protocol[protocol][name] = method.summary(ctx, protocol)
        else:
            shared[name] = method.summary(ctx, None)
    for name in study.protocols:
        by_protocol[name].update(shared)
    return by_protocol, _predictions(study, ctx.reg, by_protocol)


def _predictions(study, reg, by_protocol):
    """p_hat of every configuration at d_max, from the first protocol's sets."""
    first = by_protocol[study.protocols[0]]
    with_sets = [name for name in study.methods if "selected" in first.get(name, {})]
    if not with_sets:
        return None
    method = "supervised_ii" if "supervised_ii" in with_sets else with_sets[0]
    d_max = study.params.d_max
    sets = first[method]["selected"]
    p_hat = np.stack([reg.predict(c, sets[c][d_max - 1]) for c in range(reg.C)])
    return {"method": method, "d": d_max, "p_hat": p_hat, "protocol": study.protocols[0]}


def curve_summary(reg, selections):
    """The JSON summary of one method's rho(d) with the sets used, selected[c][d - 1]."""
    return dict(rg.summarise(rg.loco_curves(reg, selections), reg.groups),
                selected=[[list(map(int, s)) for s in sets] for sets in selections])



def dii_per_configuration(study, targets):
    """The DII backward elimination on each configuration alone; ``targets[c]`` is its
    target space (p[c], or X[c] itself for the unsupervised DII)."""
    def job(c, inner):
        return backward_elimination([study.X[c]], [targets[c]], study.params.d_max,
                                    study.dii, mapper=inner)
    return map_jobs(study.mapper, len(study.X), job)


def dii_fold_selections(ctx, unsupervised=False):
    """The honest protocol's DII sets: fold c's elimination minimises the mean DII over
    every configuration but c (target p, or each configuration's X_full)."""
    study, targets = ctx.study, ctx.dii_targets(unsupervised)
    name = "dii_unsupervised" if unsupervised else "dii"

    def job(c, inner):
        train = [k for k in range(len(study.X)) if k != c]
        return backward_elimination([study.X[k] for k in train], [targets[k] for k in train],
                                    study.params.d_max, study.dii, mapper=inner).selected
    ctx.log(f"study{ctx.tag}: {name} on the training configurations of each fold")
    with ctx.clock(f"{name}_folds" + ctx.tag):
        return map_jobs(study.mapper, len(study.X), job)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

def map_jobs(mapper, n, job):
    """[job(i, inner_mapper) for i in range(n)], the work spread over the mapper's ranks.

    When the jobs split evenly over the ranks (size divides n) each rank runs whole jobs
    serially; otherwise the jobs run one after the other with their own work items
    (candidate blocks) spread over the ranks.  Both give identical results: a greedy's
    outcome does not depend on how its candidates are blocked.

    Examples
    --------
    >>> from mpi_glass.mapper import SerialMapper
    >>> map_jobs(SerialMapper(), 3, lambda i, inner: i * i)
    [0, 1, 4]
    """
    size = int(getattr(mapper, "size", 1))
    if size > 1 and n % size == 0:
        return mapper.map(lambda i: job(i, SerialMapper()), n)
    return [job(i, mapper) for i in range(n)]


def noise_seed(root, c):
    """The noise-control seed of configuration (or fold) c: its own stream, keyed by c.

    Examples
    --------
    >>> noise_seed(0, 1) == noise_seed(0, 1) != noise_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([root, c]).generate_state(1)[0])


def _chosen_methods(params):
    """``params.methods`` (default ``DEFAULT_METHODS``) in registry order, checked."""
    wanted = tuple(getattr(params, "methods", DEFAULT_METHODS) or ())
    unknown = [name for name in wanted if name not in REGISTRY]
    if unknown or not wanted:
        raise InputError(f"select.methods: expected a non-empty list of {', '.join(REGISTRY)}, "
                         f"got {list(wanted)!r}")
    return tuple(name for name in REGISTRY if name in wanted)


def _dii_entry(c, result, names):
    return {"configuration": c, "order": result.order,
            "names": [names[j] for j in result.order[:len(result.loss)]],
            "loss": result.loss.tolist(), "weights": result.weights.tolist()}


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


def _validated(features, names, p_by_time, q, species, params, n_species):
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
        if species.shape != (C, N) or not np.isin(species, np.arange(n_species)).all():
            raise InputError(f"species: expected codes 0 ... {n_species - 1} of shape {(C, N)}")
    return features, names, ordered, q, species


def _per_particle(values, shape, what):
    values = np.asarray(values, dtype=np.float64)
    if values.shape != shape:
        raise InputError(f"{what}: expected shape {shape}, got {values.shape}")
    finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if not finite.all():
        raise InputError(f"{what}: contains NaN or inf in configuration "
                         f"{int(np.argmin(finite))}")
    return values
