"""Feature weights and nested feature sets from the Differentiable Information Imbalance.

``optimise_weights`` minimises the DII (``dii.dii_value_and_grad``, full batch, exact) by
Adam or plain gradient descent; ``backward_elimination`` turns the weights into nested sets
d = d_max ... 1.

Schedule (the defaults of ``DiiSettings``): all M features start with weight 1 (features are
standardised, so every feature starts on an equal footing) times 1 + 1e-3 u, u uniform in
[-1, 1) from ``seed`` (it breaks exact ties between duplicated features deterministically);
Adam (beta 0.9, 0.999, eps 1e-8) with the learning rate decayed by a cosine from
``learning_rate`` to 0 over each optimisation.  After every step the weights are rescaled to
their initial norm, as DADApy does: with either lambda rule the DII is invariant under
w -> s w, so only the direction of w matters and the norm only sets the step size.  The
optional L1 term is applied as DADApy does (clipping toward 0 by lr * l1, then rescaling).

Backward elimination: optimise with all M features for ``epochs``; then repeatedly drop the
features of smallest |w| and re-optimise the others for ``refit_epochs``, warm-started (Adam's
moments kept).  From d_max down, one feature leaves per step, so the sets d = d_max ... 1 are
nested; above d_max half the excess leaves per step (M = 60, d_max = 15: 60, 37, 26, 20, 17,
16, 15 - six refits instead of 45; ``one_at_a_time`` drops one per step there too, Wild et
al.'s procedure, at seven times the cost).  ``weights[d - 1]`` and ``loss[d - 1]`` are the
weights and the DII after the optimisation with d features.
With several configurations (the honest protocol's training folds) the loss is the mean of
the per-configuration DIIs, each with its own ranks and lambdas - like the greedy's mean Delta.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((150, 5))
>>> y = X[:, 3] + 0.5 * X[:, 1] + 0.1 * rng.standard_normal(150)
>>> result = backward_elimination([X], [y], d_max=2, settings=DiiSettings(epochs=40))
>>> result.selected[:2]                 # the feature kept longest first
[[3], [3, 1]]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..mapper import SerialMapper
from .dii import LAMBDA_RULES, DiiTarget, dii_value_and_grad

__all__ = ["DiiSettings", "DiiResult", "OPTIMIZERS", "optimise_weights",
           "backward_elimination", "initial_weights"]

OPTIMIZERS = ("adam", "gd")
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
#: Stream key of the initial-weight jitter (its own SeedSequence branch).
_INIT_STREAM = 19


@dataclass(frozen=True)
class DiiSettings:
    """Every parameter of a DII optimisation (the ``[dii]`` config section maps onto it)."""
    lambda_rule: str = "adaptive"
    lambda_factor: float = 0.1
    lambda_k: int = 1
    optimizer: str = "adam"
    learning_rate: float = 0.1
    epochs: int = 100
    refit_epochs: int = 20
    l1: float = 0.0
    seed: int = 0
    one_at_a_time: bool = False

    def check(self, where="dii"):
        """One-line InputErrors naming the bad key."""
        if self.lambda_rule not in LAMBDA_RULES:
            raise InputError(f"{where}.lambda_rule: must be one of {', '.join(LAMBDA_RULES)}, "
                             f"got {self.lambda_rule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"{where}.optimizer: must be one of {', '.join(OPTIMIZERS)}, got "
                             f"{self.optimizer!r}")
        for key, low in (("lambda_factor", 0.0), ("learning_rate", 0.0)):
            if not getattr(self, key) > low:
                raise InputError(f"{where}.{key}: must be > 0, got {getattr(self, key)!r}")
        for key in ("epochs", "refit_epochs", "lambda_k"):
            if getattr(self, key) < 1:
                raise InputError(f"{where}.{key}: must be >= 1, got {getattr(self, key)!r}")
        if self.l1 < 0:
            raise InputError(f"{where}.l1: must be >= 0, got {self.l1!r}")
        return self


@dataclass
class DiiResult:
    """Backward elimination: ``weights`` (d_max, M) |w| after the optimisation with d
    features (0 for the dropped), ``loss`` (d_max,) the DII there, ``order`` the M features
    in the order they survive (the last dropped first: ``order[:d]`` is the set of size d)
    and ``selected[d - 1]`` = ``order[:d]``."""
    weights: np.ndarray
    loss: np.ndarray
    order: list

    @property
    def selected(self):
        return [list(self.order[:d]) for d in range(1, len(self.loss) + 1)]


def initial_weights(m, seed):
    """1 + 1e-3 u per feature, u uniform in [-1, 1) from ``seed``.

    Examples
    --------
    >>> w = initial_weights(3, 0)
    >>> bool(np.all(np.abs(w - 1) < 1e-3)), bool(np.array_equal(w, initial_weights(3, 0)))
    (True, True)
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _INIT_STREAM]))
    return 1.0 + 1e-3 * rng.uniform(-1.0, 1.0, m)


class _Problem:
    """The configurations of one optimisation: transposed features and prepared targets."""

    def __init__(self, Xs, targets, settings, mapper):
        self.Xts = [np.ascontiguousarray(np.asarray(X, dtype=np.float64).T) for X in Xs]
        self.targets = [target if isinstance(target, DiiTarget) else DiiTarget(target)
                        for target in targets]
        self.settings, self.mapper = settings, mapper

    def value_and_grad(self, w):
        """Mean over configurations of DII and gradient (configurations added in order)."""
        s = self.settings
        value, grad = 0.0, np.zeros(len(w))
        for Xt, target in zip(self.Xts, self.targets):
            v, g = dii_value_and_grad(None, target, w, k=s.lambda_k, factor=s.lambda_factor,
                                      rule=s.lambda_rule, mapper=self.mapper, Xt=Xt)
            value += v
            grad += g
        return value / len(self.Xts), grad / len(self.Xts)


class _Optimiser:
    """Adam or gradient descent on w with the norm held at ``norm``; moments persist
    between calls (warm starts)."""

    def __init__(self, settings, m, norm):
        self.s, self.norm = settings, norm
        self.m1, self.m2, self.t = np.zeros(m), np.zeros(m), 0

    def run(self, problem, w, active, epochs):
        s = self.s
        history = np.empty(epochs)
        for epoch in range(epochs):
            lr = s.learning_rate * 0.5 * (1.0 + np.cos(np.pi * epoch / epochs))
            history[epoch], grad = problem.value_and_grad(w)
            grad[~active] = 0.0
            if s.optimizer == "adam":
                self.t += 1
                self.m1 = _BETA1 * self.m1 + (1 - _BETA1) * grad
                self.m2 = _BETA2 * self.m2 + (1 - _BETA2) * grad * grad
                m_hat = self.m1 / (1 - _BETA1 ** self.t)
                v_hat = self.m2 / (1 - _BETA2 ** self.t)
                w = w - lr * m_hat / (np.sqrt(v_hat) + _EPS)
            else:
                w = w - lr * grad
            w[~active] = 0.0
            w = self._renormed(w)
            if s.l1 > 0:
                w = self._renormed(np.sign(w) * np.maximum(np.abs(w) - lr * s.l1, 0.0))
        return w, history

    def _renormed(self, w):
        size = np.sqrt(np.sum(w * w))
        if size == 0.0:
            raise InputError("dii.l1: the L1 term set every weight to 0; lower dii.l1")
        return w * (self.norm / size)


def optimise_weights(Xs, targets, settings=None, w0=None, epochs=None, mapper=None):
    """Minimise the mean DII over configurations from ``w0`` (default ``initial_weights``).

    Parameters
    ----------
    Xs : list of (N_c, M) arrays
        Standardised features per configuration.
    targets : list of (N_c,) / (N_c, K) arrays or DiiTarget
    settings : DiiSettings
    w0 : (M,) array, optional; zero entries stay 0 (inactive features).
    epochs : int, default settings.epochs
    mapper : row blocks over ranks (``dii.dii_value_and_grad``)

    Returns
    -------
    (w, history, final loss): the weights, the DII before each step, the DII at w.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> X = rng.standard_normal((120, 3))
    >>> w, history, loss = optimise_weights([X], [X[:, 0]], DiiSettings(epochs=30))
    >>> bool(loss < history[0]), int(np.argmax(np.abs(w)))
    (True, 0)
    """
    settings = (settings or DiiSettings()).check()
    problem = _Problem(Xs, targets, settings, mapper or SerialMapper())
    m = problem.Xts[0].shape[0]
    w = initial_weights(m, settings.seed) if w0 is None else np.array(w0, dtype=np.float64)
    optimiser = _Optimiser(settings, m, float(np.sqrt(np.sum(w * w))))
    w, history = optimiser.run(problem, w, w != 0.0, epochs or settings.epochs)
    return np.abs(w), history, problem.value_and_grad(w)[0]


def backward_elimination(Xs, targets, d_max, settings=None, mapper=None):
    """Nested feature sets d = d_max ... 1 by backward elimination (module docstring).

    Returns
    -------
    DiiResult
    """
    settings = (settings or DiiSettings()).check()
    problem = _Problem(Xs, targets, settings, mapper or SerialMapper())
    m = problem.Xts[0].shape[0]
    if not 1 <= d_max <= m:
        raise InputError(f"select.d_max: {d_max} must be between 1 and the {m} features")
    w = initial_weights(m, settings.seed)
    optimiser = _Optimiser(settings, m, float(np.sqrt(np.sum(w * w))))
    active = np.ones(m, bool)
    weights, loss, dropped = np.zeros((d_max, m)), np.zeros(d_max), []
    epochs = settings.epochs
    while True:
        d = int(active.sum())
        if d > 1:
            w, _ = optimiser.run(problem, w, active, epochs)
        epochs = settings.refit_epochs
        if d <= d_max:
            weights[d - 1] = np.abs(w)
            loss[d - 1] = problem.value_and_grad(w)[0]
        if d == 1:
            break
        candidates = np.flatnonzero(active)
        n_drop = 1 if d <= d_max or settings.one_at_a_time else (d - d_max + 1) // 2
        # Smallest |w| first; ties by index (a stable sort).  Dropped later = kept longer.
        drop = candidates[np.argsort(np.abs(w[candidates]), kind="stable")[:n_drop]]
        active[drop] = False
        w[drop] = 0.0
        w = optimiser._renormed(w)
        dropped += [int(j) for j in drop]          # smallest |w| leaves first
    order = [int(np.flatnonzero(active)[0])] + dropped[::-1]
    return DiiResult(weights=weights, loss=loss, order=order)
