"""The methods of the regression study: one registry entry each (DESIGN "Methods of the study").

An entry says everything the rest of the package needs about a method: its ``name`` (the key
in report.json, select.h5 and ``select.methods``), its ``label`` and ``style`` (colour,
marker, sideways dodge) in the figures and report, whether its selections depend on the
protocol (``by_protocol``), whether its feature sets are recorded under
``/prediction/<protocol>/<name>/features`` (``records_sets``), its ``summary`` - the JSON
summary of rho(p, p_hat) vs d under one protocol - and the extra select.h5 fields and group
attributes it writes (plain tuples here; ``schema`` turns them into declarations, so this
module imports nothing heavy and ``schema`` may import it).

A new method is one function ``summary(ctx, protocol)`` (usually ``_sets_summary`` over a
``select(ctx, protocol)`` returning ``selected[c][d - 1]``) and one ``register`` line.

``ctx`` (``study.MethodContext``) holds the study, the propensity p of this time, the
regression engine and what earlier stages computed (the per-configuration selections).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Method", "REGISTRY", "register", "DEFAULT_METHODS", "protocol_methods",
           "set_methods"]


@dataclass(frozen=True)
class Method:
    """One method of the study (see the module docstring)."""
    name: str
    label: str
    style: tuple                    # (matplotlib colour, marker, sideways dodge of the points)
    by_protocol: bool
    records_sets: bool
    summary: object                 # callable(ctx, protocol) -> JSON summary dict
    fields: dict = field(default_factory=dict)        # name -> (path, dtype, dims, units, doc)
    group_attrs: dict = field(default_factory=dict)   # group -> ((name, dtype, units, doc),)
    per_configuration: object = None  # callable(study, p) -> per-configuration results
    description: str = ""


REGISTRY = {}


def register(method):
    """Add ``method`` to the registry (its name must be new)."""
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} registered twice")
    REGISTRY[method.name] = method
    return method


def protocol_methods(names=None):
    """Names (of ``names``, default all) whose selections depend on the protocol."""
    return tuple(n for n in (names or REGISTRY) if REGISTRY[n].by_protocol)


def set_methods(names=None):
    """Names (of ``names``, default all) whose feature sets are recorded."""
    return tuple(n for n in (names or REGISTRY) if REGISTRY[n].records_sets)


# ---------------------------------------------------------------------------------------
# Summaries of the built-in methods
# ---------------------------------------------------------------------------------------

def _sets_summary(select):
    """summary(ctx, protocol) from select(ctx, protocol) -> selected[c][d - 1]."""
    def summary(ctx, protocol):
        from .study import curve_summary
        return curve_summary(ctx.reg, select(ctx, protocol))
    return summary


def _greedy_sets(kind):
    def select(ctx, protocol):
        from .regression import nested_selections
        orders = ctx.supervised_orders(protocol) if kind == "supervised" \
            else ctx.unsupervised_orders[protocol]
        return [nested_selections(order, ctx.params.d_max) for order in orders]
    return select


def _lasso_sets(ctx, protocol):
    from .regression import lasso_selections
    with ctx.clock("lasso" + ctx.tag):
        return lasso_selections(ctx.reg, ctx.params.d_max)


def _random_summary(ctx, protocol):
    from . import regression as rg
    params = ctx.params
    ctx.log(f"study{ctx.tag}: random baseline ({params.random_draws} draws per d)")
    with ctx.clock("random" + ctx.tag):
        mean, spread = rg.random_curves(ctx.reg, params.d_max, params.random_draws,
                                        ctx.study.seed, ctx.study.mapper)
    return dict(rg.summarise(mean, ctx.reg.groups), draws=params.random_draws,
                pearson_draw_std=spread[:, :, 0].tolist())


def _dii_sets(ctx, protocol):
    from .study import dii_fold_selections
    if protocol == "paper":
        return [result.selected for result in ctx.dii_own()]
    return dii_fold_selections(ctx)


def _dii_per_configuration(study, p):
    from .study import dii_per_configuration
    return dii_per_configuration(study, list(p))


def _dii_unsupervised_sets(ctx, protocol):
    """Target X_full: independent of p, so computed once for every propensity time."""
    from .study import dii_fold_selections
    key = ("dii_unsupervised", protocol)
    if key not in ctx.study.cache:
        if protocol == "paper":
            own = ctx.study.cache.get("dii_unsupervised_own") or \
                _dii_unsupervised_per_configuration(ctx.study, None)
            ctx.study.cache[key] = [result.selected for result in own]
        else:
            ctx.study.cache[key] = dii_fold_selections(ctx, unsupervised=True)
    return ctx.study.cache[key]


def _dii_unsupervised_per_configuration(study, p):
    from .study import dii_per_configuration
    if "dii_unsupervised_own" not in study.cache:
        study.cache["dii_unsupervised_own"] = dii_per_configuration(study, study.X)
    return study.cache["dii_unsupervised_own"]


def _dii_fields(name, target):
    group = f"/{name}"
    fields = {
        f"{name}_weights": (f"{group}/weights", "float64", ("configuration", "step", "feature"),
                            "1", "|w| after the DII optimisation with d features on "
                            "configuration c (0: dropped); row [c, d-1]"),
        f"{name}_loss": (f"{group}/loss", "float64", ("configuration", "step"), "1",
                         f"DII(A(w) -> {target}) at those weights"),
        f"{name}_order": (f"{group}/order", "int64", ("configuration", "feature"), "1",
                          "features in the order they survive backward elimination: the "
                          "first d are the set of size d"),
    }
    attrs = ((("target", "str", "1", f"target space B: '{target}'"),) + _DII_ATTRS)
    return fields, {group: attrs}


_DII_ATTRS = (
    ("standardise", "str", "1", "features: 'per configuration' (zero mean, unit variance over "
     "its N particles, population std) before weighting"),
    ("lambda_rule", "str", "1", "'adaptive': lambda_i = factor * d2 to i's k-th neighbour in "
     "the weighted space; 'global': factor * its mean over i"),
    ("lambda_factor", "float", "1", "the factor"),
    ("lambda_k", "int", "1", "the neighbour k of lambda"),
    ("optimizer", "str", "1", "adam or gd"),
    ("learning_rate", "float", "1", "initial learning rate (cosine decay to 0)"),
    ("epochs", "int", "1", "epochs with all M features"),
    ("refit_epochs", "int", "1", "epochs after each elimination"),
    ("l1", "float", "1", "L1 strength"),
    ("seed", "int", "1", "seed of the initial-weight jitter"),
    ("one_at_a_time", "bool", "1", "one feature dropped per step above d_max too"),
    ("ranks", "str", "1", "target ranks: mid-ranks, r = 1 + #closer + #tied/2 (the point "
     "itself excluded)"),
)


register(Method("supervised_ii", "supervised II", ("C0", "o", -0.12), True, True,
                _sets_summary(_greedy_sets("supervised")),
                description="greedy minimisation of Delta(X_d -> p)"))
register(Method("unsupervised_ii", "unsupervised II", ("C1", "s", -0.04), True, True,
                _sets_summary(_greedy_sets("unsupervised")),
                description="greedy minimisation of the symmetrised Delta(X_full, X_d)"))
register(Method("lasso", "Lasso", ("C2", "D", 0.04), False, True, _sets_summary(_lasso_sets),
                description="support of the Lasso path with d non-zero coefficients"))
register(Method("random", "random", ("C3", "^", 0.12), False, False, _random_summary,
                description="uniform random d-subsets, rho averaged over draws"))
_fields, _attrs = _dii_fields("dii", "p (the propensity at the main time)")
register(Method("dii", "DII", ("C4", "v", 0.0), True, True, _sets_summary(_dii_sets),
                fields=_fields, group_attrs=_attrs, per_configuration=_dii_per_configuration,
                description="backward elimination on Differentiable Information Imbalance "
                            "weights, target p"))
_fields, _attrs = _dii_fields("dii_unsupervised", "X_full (all M standardised features)")
register(Method("dii_unsupervised", "unsupervised DII", ("C5", "P", 0.08), True, True,
                _sets_summary(_dii_unsupervised_sets), fields=_fields, group_attrs=_attrs,
                per_configuration=_dii_unsupervised_per_configuration,
                description="backward elimination on DII weights, target X_full"))

#: ``select.methods`` when the config does not say (``dii`` is opt-in: see README).
DEFAULT_METHODS = ("supervised_ii", "unsupervised_ii", "lasso", "random")
