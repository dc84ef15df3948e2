"""Two-dimensional pair models as data: ``PairModel`` and the named models shipped here.

A model is K species with names, symmetric K x K tables sigma_ab and eps_ab, and a pair form
with its cutoff x_c = r_c / sigma_ab: one reduced cutoff for every pair (the absolute cutoff
r_c,ab = x_c sigma_ab still differs per pair), or a symmetric K x K table of them (likewise
lj/smooth's inner radius).  With x = r / sigma_ab and V in units of eps_ab:

* ``"lj/smooth"`` (the paper's; LAMMPS ``lj/smooth``-like): V = 4 (x^-12 - x^-6) + C below
  x_in, a quartic sum_k a_k (x - x_in)^k between x_in and x_c matching V, V', V'' at x_in and
  vanishing with V' and V'' at x_c;
* ``"lj/poly"`` (GlassBench KA2D): V = 4 (x^-12 - x^-6) + c0 + c2 x^2 + c4 x^4 below x_c, the
  even polynomial chosen so that V, V', V'' vanish at x_c;
* ``"lj/cut"``: V = 4 (x^-12 - x^-6) - 4 (x_c^-12 - x_c^-6) below x_c (truncated and shifted).

All three are one formula (``reduced_pair_energy_x2``) with an 11-number parameter vector
[x_in^2, x_c^2, x_in, c0, c2, c4, a0 ... a4], where lj/poly and lj/cut have an empty shell
(x_in = x_c) and lj/smooth has c0 = C, c2 = c4 = 0.  The coefficients are exact rationals of
x_in and x_c (``fractions``), rounded once to double.  Kernels take ``PairModel.pair_forms``
and the flat pair t = K a + b, and read parameter k as ``form_parameter(forms, t, k)``: with
one cutoff for every pair ``pair_forms`` is that single vector (1-D), ``forms[k]``, loop
invariant, and numba compiles the kernel as if the vector had been passed alone (no per-pair
gather in the hot loop, the same bits); with per-pair cutoffs it is a (K^2, 11) table,
``forms[t, k]``, a separate specialisation.

Kernels never read module globals for the model (numba's cache freezes them): they take the
tables a ``PairModel`` derives (``inv_sigma2_flat``, ``pair_forms``, ``energy_cut2`` ...) as
arguments.  Named models: ``named("sharma2024")`` (Sharma, Liu & Ozawa 2024, the default) and
``named("ka2d")`` (the 2-D ternary Kob-Andersen mixture of GlassBench).

Units: lengths in the model's unit sigma (sigma_LS for the paper's), energies in its eps.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from itertools import combinations

import numpy as np
from numba import njit
from numba.extending import overload

from .errors import InputError

__all__ = ["PairModel", "named", "MODEL_NAMES", "FORMS", "DEFAULT_MODEL", "SHARMA2024",
           "SIGMA", "EPSILON", "SPECIES_NAMES", "N_SPECIES", "X_INNER", "X_CUT", "MAX_CUTOFF",
           "PAPER_COUNTS", "PAPER_FRACTIONS", "PAPER_DENSITY", "pair_potential",
           "pair_potential_derivative", "pair_energy_x2", "reduced_pair_energy_x2",
           "form_parameter", "composition_counts", "box_side", "species_array"]

FORMS = ("lj/smooth", "lj/poly", "lj/cut")


# --- the pair formula ---------------------------------------------------------------------

def form_parameter(forms, t, k):
    """Parameter k of the form of flat pair t = K a + b in ``PairModel.pair_forms``: entry k
    of the one vector (every pair's), or of row t of the (K^2, 11) table.

    Examples
    --------
    >>> m = named("sharma2024")
    >>> float(form_parameter(m.pair_forms, 5, 1))      # x_c^2 of every pair
    6.25
    """
    return forms[k] if forms.ndim == 1 else forms[t, k]


@overload(form_parameter, inline="always")
def _form_parameter_compiled(forms, t, k):
    # Chosen by type at compile time: with a 1-D ``forms`` the pair index is not even read.
    if forms.ndim == 1:
        return lambda forms, t, k: forms[k]
    return lambda forms, t, k: forms[t, k]


@njit(cache=True, inline="always", error_model="numpy")
def reduced_pair_energy_x2(x2, forms, pair):
    """V / eps_ab for x2 = (r / sigma_ab)^2 and flat pair ``pair`` of ``PairModel.pair_forms``
    (or any one form vector, ``pair`` then unused); branch-free (both branches evaluated, the
    right one selected), so loops over many pairs vectorise.

    The LJ branch adds c0 + x2 (c2 + x2 c4), which is exactly c0 when c2 = c4 = 0: the paper's
    model keeps the bits of ``4 x^-6 (x^-6 - 1) + C``.
    """
    x_in2, x_c2, x_in = (form_parameter(forms, pair, 0), form_parameter(forms, pair, 1),
                         form_parameter(forms, pair, 2))
    c0, c2, c4 = (form_parameter(forms, pair, 3), form_parameter(forms, pair, 4),
                  form_parameter(forms, pair, 5))
    a0, a1, a2, a3, a4 = (form_parameter(forms, pair, 6), form_parameter(forms, pair, 7),
                          form_parameter(forms, pair, 8), form_parameter(forms, pair, 9),
                          form_parameter(forms, pair, 10))
    inv6 = 1.0 / (x2 * x2 * x2)
    lj = 4.0 * inv6 * (inv6 - 1.0) + (c0 + x2 * (c2 + x2 * c4))
    t = math.sqrt(x2) - x_in
    poly = a0 + t * (a1 + t * (a2 + t * (a3 + t * a4)))
    v = poly if x2 < x_c2 else 0.0
    return lj if x2 < x_in2 else v


@njit(cache=True, inline="always", error_model="numpy")
def pair_energy_x2(x2, epsilon, forms, pair):
    """eps V for x2 = (r / sigma_ab)^2 and flat pair ``pair`` (as
    ``reduced_pair_energy_x2``): the scalar kernel of descriptors and energies."""
    return epsilon * reduced_pair_energy_x2(x2, forms, pair)


@njit(cache=True, inline="always")
def _reduced_derivative(x, form):
    """dV/dx / eps_ab at x = r / sigma_ab."""
    if x * x >= form[1]:
        return 0.0
    if x * x < form[0]:
        return 4.0 * (-12.0 * x**-13 + 6.0 * x**-7) + x * (2.0 * form[4] + 4.0 * form[5] * x * x)
    t = x - form[2]
    return form[7] + t * (2.0 * form[8] + t * (3.0 * form[9] + t * 4.0 * form[10]))


@njit(cache=True)
def _energies(x2, eps, form):
    out = np.empty(x2.size)
    for k in range(x2.size):
        out[k] = pair_energy_x2(x2[k], eps[k], form, 0)
    return out


@njit(cache=True)
def _derivatives(x, form):
    out = np.empty(x.size)
    for k in range(x.size):
        out[k] = _reduced_derivative(x[k], form)
    return out


def _form(model, pair):
    model = DEFAULT_MODEL if model is None else model
    if pair is not None:
        return model.form_of(*pair)
    return model.form_vector


def pair_potential(r, sigma, epsilon, model=None, pair=None):
    """V(r) for arrays of distances and matching (broadcastable) sigma, epsilon.

    ``model`` gives the pair form (default: the paper's model); sigma and epsilon the pair.
    A model with per-pair cutoffs needs ``pair=(a, b)``, the species whose form to use.

    Examples
    --------
    >>> round(float(pair_potential(2**(1 / 6), 1.0, 1.0)), 6)       # -1 + C
    -0.971008
    """
    r, sigma, epsilon = np.broadcast_arrays(np.asarray(r, float), np.asarray(sigma, float),
                                            np.asarray(epsilon, float))
    x2 = np.ravel((r / sigma)**2)
    out = _energies(x2, np.ravel(epsilon).copy(), _form(model, pair)).reshape(r.shape)
    return out if r.ndim else float(out)


def pair_potential_derivative(r, sigma, epsilon, model=None, pair=None):
    """dV/dr, the negative of the radial force (tests and analysis); arguments as
    ``pair_potential``."""
    r, sigma, epsilon = np.broadcast_arrays(np.asarray(r, float), np.asarray(sigma, float),
                                            np.asarray(epsilon, float))
    out = (epsilon * _derivatives(np.ravel(r / sigma), _form(model, pair)).reshape(r.shape)
           / sigma)
    return out if r.ndim else float(out)


# --- coefficients of the forms, exact in rationals ------------------------------------------

def _lj_terms(x):
    """4 (x^-12 - x^-6) and its first two derivatives in x, exact for a Fraction x."""
    return (4 * (x**-12 - x**-6), 4 * (-12 * x**-13 + 6 * x**-7),
            4 * (156 * x**-14 - 42 * x**-8))


def _solve3(rows, rhs):
    """Exact solution of a 3 x 3 linear system in Fractions (Cramer's rule)."""
    def det(m):
        return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    d = det(rows)
    return [det([[rhs[i] if j == k else rows[i][j] for j in range(3)] for i in range(3)]) / d
            for k in range(3)]


def form_coefficients(form, cutoff, inner=None):
    """(c0, c2, c4, a0, a1, a2, a3, a4) of a pair form, exact rationals rounded once.

    Examples
    --------
    >>> c0, c2, c4, *a = form_coefficients("lj/smooth", 2.5, 2.0)
    >>> c0 == 475 / 16384, a[0] == -533 / 16384
    (True, True)
    """
    xc = Fraction(cutoff)
    if form == "lj/cut":
        return tuple(float(v) for v in (-_lj_terms(xc)[0], 0, 0, 0, 0, 0, 0, 0))
    if form == "lj/poly":
        v, d1, d2 = _lj_terms(xc)
        c0, c2, c4 = _solve3([[1, xc**2, xc**4], [0, 2 * xc, 4 * xc**3], [0, 2, 12 * xc**2]],
                             [-v, -d1, -d2])
        return tuple(float(v) for v in (c0, c2, c4, 0, 0, 0, 0, 0))
    xi = Fraction(inner)
    v, d1, d2 = _lj_terms(xi)
    a1, a2, dt = d1, d2 / 2, xc - xi
    # P(dt) = P'(dt) = P''(dt) = 0 for P(t) = a0 + a1 t + a2 t^2 + a3 t^3 + a4 t^4.
    a0, a3, a4 = _solve3([[1, dt**3, dt**4], [0, 3 * dt**2, 4 * dt**3], [0, 6 * dt, 12 * dt**2]],
                         [-a1 * dt - a2 * dt**2, -a1 - 2 * a2 * dt, -2 * a2])
    shift = a0 - v
    return tuple(float(v) for v in (shift, 0, 0, a0, a1, a2, a3, a4))


# --- the model object -----------------------------------------------------------------------

def _readonly(array):
    array = np.array(array, dtype=np.float64)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class PairModel:
    """A 2-D pair model: species, sigma and eps tables, pair form and reduced cutoffs.

    Frozen; every table a kernel needs is derived once (cached properties) from these fields.

    Parameters
    ----------
    name : str
        Its name (``"sharma2024"``, ``"ka2d"`` or a user's).
    species_names : tuple of str
        K distinct names; species index a is the position in this tuple.
    sigma, epsilon : array_like, shape (K, K)
        Symmetric, sigma > 0, eps >= 0.
    form : str
        One of ``FORMS``.
    cutoff : float or array_like, shape (K, K)
        x_c = r_c / sigma_ab, one for every pair or a symmetric table (a constant table is
        stored as its one number: same physics, same digest).
    inner : float, array_like (K, K) or None
        x_in of ``"lj/smooth"`` (0.5 < x_in < x_c, pair by pair); ignored (set to x_c) for
        the other forms.

    Examples
    --------
    >>> m = named("ka2d")
    >>> m.species_names, m.n_species, round(m.max_cutoff, 3)
    (('A', 'B', 'C'), 3, 2.5)
    >>> m.swap_partners.tolist()    # size order B (0.88) < C (0.94) < A (1.0)
    [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    >>> wca = PairModel("wca-ish", ("A", "B"), [[1.0, 0.8], [0.8, 0.88]],
    ...                 [[1.0, 1.5], [1.5, 0.5]], form="lj/cut",
    ...                 cutoff=[[2.5, 2**(1 / 6)], [2**(1 / 6), 2**(1 / 6)]])
    >>> wca.pair_forms.shape, round(wca.max_cutoff, 3)
    ((4, 11), 2.5)
    """
    name: str
    species_names: tuple
    sigma: np.ndarray
    epsilon: np.ndarray
    form: str = "lj/smooth"
    cutoff: float = 2.5
    inner: float | None = 2.0

    def __post_init__(self):
        names = tuple(str(s) for s in self.species_names)
        k = len(names)
        if k < 1 or len(set(names)) != k or any(not s for s in names):
            raise InputError(f"model.species: expected distinct non-empty names, got {names!r}")
        for key in ("sigma", "epsilon"):
            value = np.asarray(getattr(self, key), dtype=float)
            if value.shape != (k, k):
                raise InputError(f"model.{key}: expected a square {k} x {k} table (one row per "
                                 f"species), got shape {value.shape}")
            if not np.all(np.isfinite(value)) or not np.array_equal(value, value.T):
                raise InputError(f"model.{key}: must be finite and symmetric ({key}[a][b] == "
                                 f"{key}[b][a])")
            object.__setattr__(self, key, _readonly(value))
        if np.any(self.sigma <= 0):
            raise InputError("model.sigma: every sigma_ab must be > 0")
        if np.any(self.epsilon < 0):
            raise InputError("model.epsilon: every eps_ab must be >= 0")
        if self.form not in FORMS:
            raise InputError(f"model.form: must be one of {', '.join(FORMS)}, got {self.form!r}")
        cutoff = _reduced_radius("cutoff", self.cutoff, k)
        if np.any(cutoff <= 2.0**(1 / 6) * 0.5):
            raise InputError(f"model.cutoff: expected r_c / sigma_ab > 0.56, got "
                             f"{_shown(self.cutoff)}")
        inner = cutoff
        if self.form == "lj/smooth":
            if self.inner is None:
                raise InputError("model.inner: lj/smooth needs its inner radius (> 0.5)")
            inner = _reduced_radius("inner", self.inner, k)
            if np.any(inner <= 0.5) or np.any(inner >= cutoff):
                raise InputError(f"model.cutoff: the cutoff {_shown(self.cutoff)} must exceed "
                                 f"the inner radius {_shown(self.inner)} of lj/smooth "
                                 f"(model.inner, > 0.5), pair by pair")
        object.__setattr__(self, "species_names", names)
        object.__setattr__(self, "cutoff", _stored_radius(cutoff))
        object.__setattr__(self, "inner", _stored_radius(inner))

    # -- identity ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, doc):
        """The model of ``to_dict`` (from a config table or a sim.h5 attribute)."""
        return cls(name=doc["name"], species_names=tuple(doc["species"]), sigma=doc["sigma"],
                   epsilon=doc["epsilon"], form=doc.get("form", "lj/smooth"),
                   cutoff=doc.get("cutoff", 2.5), inner=doc.get("inner", 2.0))

    def to_dict(self):
        """JSON-able fields; ``from_dict(to_dict())`` is the same model."""
        return {"name": self.name, "species": list(self.species_names),
                "sigma": self.sigma.tolist(), "epsilon": self.epsilon.tolist(),
                "form": self.form, "cutoff": _listed(self.cutoff),
                "inner": _listed(self.inner)}

    def digest(self):
        """SHA-256 of the physics (everything but the name): equal digests, equal energies."""
        doc = self.to_dict()
        del doc["name"]
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def same_physics(self, other):
        return self.digest() == other.digest()

    @property
    def n_species(self):
        return len(self.species_names)

    # -- pair tables -----------------------------------------------------------------------

    @cached_property
    def cutoff_ratio(self):
        """x_c of every pair, (K, K)."""
        return _readonly(np.broadcast_to(self.cutoff, self.sigma.shape))

    @cached_property
    def inner_ratio(self):
        """x_in of every pair, (K, K) (x_c for the forms without a shell)."""
        return _readonly(np.broadcast_to(self.inner, self.sigma.shape))

    @property
    def uniform_cutoff(self):
        """True when one reduced cutoff (and inner radius) serves every pair."""
        return np.ndim(self.cutoff) == 0 and np.ndim(self.inner) == 0

    @cached_property
    def form_table(self):
        """(K, K, 11): the form vector [x_in^2, x_c^2, x_in, c0, c2, c4, a0 ... a4] of every
        pair, solved once per distinct pair of radii."""
        k, solved = self.n_species, {}
        table = np.empty((k, k, 11))
        for a in range(k):
            for b in range(k):
                radii = (float(self.cutoff_ratio[a, b]), float(self.inner_ratio[a, b]))
                if radii not in solved:
                    solved[radii] = _form_vector(self.form, *radii)
                table[a, b] = solved[radii]
        return _readonly(table)

    def form_of(self, a, b):
        """The form vector of the pair of species a and b (a row of ``form_table``)."""
        return self.form_table[a, b]

    @cached_property
    def form_vector(self):
        """The one form vector of a model with a uniform cutoff (``uniform_cutoff``)."""
        if not self.uniform_cutoff:
            raise ValueError(f"model {self.name!r} has per-pair cutoffs: use form_of(a, b) "
                             f"or pair_forms")
        return self.form_table[0, 0]

    @cached_property
    def pair_forms(self):
        """What the kernels take (``form_parameter``): ``form_vector`` with a uniform cutoff,
        else the (K^2, 11) table whose row K a + b is ``form_of(a, b)``."""
        if self.uniform_cutoff:
            return self.form_vector
        return self.form_table.reshape(self.n_species**2, 11)

    @cached_property
    def sigma2(self):
        return _readonly(self.sigma**2)

    @cached_property
    def inv_sigma2_flat(self):
        """1 / sigma_ab^2, flat (K a + b)."""
        return _readonly((1.0 / self.sigma**2).ravel())

    @cached_property
    def cutoff_table(self):
        """r_c,ab = x_c,ab sigma_ab."""
        return _readonly(self.cutoff_ratio * self.sigma)

    @cached_property
    def max_cutoff(self):
        """The largest interaction range."""
        return float(self.cutoff_table.max())

    @cached_property
    def energy_cut2(self):
        """Squared list radius of interactions alone: a hair over r_c so that rounding can
        never drop an interacting pair."""
        return _readonly((self.cutoff_ratio * self.sigma * (1.0 + 1e-9))**2)

    @cached_property
    def theta_reference(self):
        """theta_ref[a, b, c]: angle at a disc of species a touching b and c that touch."""
        sab = self.sigma[:, :, None]
        sac = self.sigma[:, None, :]
        sbc = self.sigma[None, :, :]
        cos = (sab**2 + sac**2 - sbc**2) / (2.0 * sab * sac)
        return _readonly(np.arccos(np.clip(cos, -1.0, 1.0)))   # no NaN if impossible

    @cached_property
    def disc_diameters(self):
        """sigma_aa per species: the drawn disc sizes."""
        return tuple(float(x) for x in np.diag(self.sigma))

    # -- swaps and bands -------------------------------------------------------------------

    @cached_property
    def size_rank(self):
        """rank[a]: position of species a when ordered by sigma_aa (ties by index)."""
        order = np.argsort(np.diag(self.sigma), kind="stable")
        rank = np.empty(self.n_species, np.int64)
        rank[order] = np.arange(self.n_species)
        rank.setflags(write=False)
        return rank

    @cached_property
    def swap_partners(self):
        """(K, K) uint8: 1 where species a and b are adjacent in size (swap partners)."""
        rank = self.size_rank
        adjacent = np.abs(rank[:, None] - rank[None, :]) == 1
        out = adjacent.astype(np.uint8)
        out.setflags(write=False)
        return out

    @cached_property
    def swap_pairs(self):
        """Every unordered species pair (a < b), the order of the swap counters."""
        return tuple(combinations(range(self.n_species), 2))

    @cached_property
    def swap_pair_names(self):
        return tuple(f"{self.species_names[a]}-{self.species_names[b]}"
                     for a, b in self.swap_pairs)

    @cached_property
    def pair_slot(self):
        """Flat (K a + b) counter slot of the unordered pair {a, b}; -1 on the diagonal."""
        k = self.n_species
        slot = np.full(k * k, -1, np.int64)
        for s, (a, b) in enumerate(self.swap_pairs):
            slot[k * a + b] = slot[k * b + a] = s
        slot.setflags(write=False)
        return slot

    @cached_property
    def growth_floor_units(self):
        """Flat (K a + b): a lower bound, in ``fixedpoint.UNIT``, on the change of one pair's
        energy when a particle of species a becomes b, over every distance and partner
        species (``mc``'s early rejection of swaps)."""
        from .fixedpoint import growth_floor_units
        return growth_floor_units(self)


def _reduced_radius(key, value, k):
    """A reduced radius (cutoff or inner) as a (K, K) float table, checked."""
    try:
        table = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"model.{key}: expected a number or a {k} x {k} table of numbers, "
                         f"got {value!r}") from None
    if table.ndim == 0:
        table = np.full((k, k), float(table))
    if table.shape != (k, k):
        raise InputError(f"model.{key}: expected one number or a {k} x {k} table, got shape "
                         f"{table.shape}")
    if not np.all(np.isfinite(table)) or not np.array_equal(table, table.T):
        raise InputError(f"model.{key}: must be finite and symmetric")
    return table


def _stored_radius(table):
    """One float when every pair shares it (the digest of a constant table is the number's)."""
    return float(table[0, 0]) if np.all(table == table[0, 0]) else _readonly(table)


def _listed(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def _shown(value):
    return f"{value:g}" if np.ndim(value) == 0 else str(np.asarray(value, float).tolist())


def _form_vector(form, cutoff, inner):
    """[x_in^2, x_c^2, x_in, c0, c2, c4, a0 ... a4] of one pair's radii."""
    c0, c2, c4, *poly = form_coefficients(form, cutoff, inner)
    return [inner**2, cutoff**2, inner, c0, c2, c4, *poly]


def named(name):
    """A model shipped in the package, by name (``MODEL_NAMES``).

    Examples
    --------
    >>> named("sharma2024").species_names
    ('S', 'M', 'L')
    """
    try:
        return _NAMED[name]
    except KeyError:
        raise InputError(f"model.name: unknown model {name!r} (shipped: "
                         f"{', '.join(MODEL_NAMES)}; or give species, sigma and epsilon)") from None


# --- the paper's model ------------------------------------------------------------------------

_S_SS = 2.0 * math.sin(math.pi / 10.0)
_S_LL = 2.0 * math.sin(math.pi / 5.0)
_S_LS = 1.0
_E_SS, _E_LL, _E_LS = 0.5, 0.5, 1.0

SHARMA2024 = PairModel(
    name="sharma2024", species_names=("S", "M", "L"),
    sigma=[[_S_SS, (_S_LS + _S_SS) / 2, _S_LS],
           [(_S_LS + _S_SS) / 2, (_S_LL + _S_SS) / 2, (_S_LL + _S_LS) / 2],
           [_S_LS, (_S_LL + _S_LS) / 2, _S_LL]],
    epsilon=[[_E_SS, (_E_LS + _E_SS) / 2, _E_LS],
             [(_E_LS + _E_SS) / 2, (_E_LL + _E_SS) / 2, (_E_LL + _E_LS) / 2],
             [_E_LS, (_E_LL + _E_LS) / 2, _E_LL]],
    form="lj/smooth", cutoff=2.5, inner=2.0)

#: GlassBench's 2-D ternary Kob-Andersen mixture (Jung et al., Zenodo 10118191).
KA2D = PairModel(
    name="ka2d", species_names=("A", "B", "C"),
    sigma=[[1.0, 0.8, 0.9], [0.8, 0.88, 0.8], [0.9, 0.8, 0.94]],
    epsilon=[[1.0, 1.5, 0.75], [1.5, 0.5, 1.5], [0.75, 1.5, 0.75]],
    form="lj/poly", cutoff=2.5, inner=None)

_NAMED = {m.name: m for m in (SHARMA2024, KA2D)}
MODEL_NAMES = tuple(_NAMED)
DEFAULT_MODEL = SHARMA2024

#: KA2D's composition (600/330/360 of N = 1290) and density 1290 / 32.8962^2.
KA2D_COUNTS = (600, 330, 360)
KA2D_DENSITY = 1290 / 32.8962**2

# The paper's tables under their historical names (tests, examples, analysis scripts);
# modules take a PairModel instead.
SIGMA = SHARMA2024.sigma
EPSILON = SHARMA2024.epsilon
SPECIES_NAMES = SHARMA2024.species_names
N_SPECIES = SHARMA2024.n_species
X_INNER = SHARMA2024.inner
X_CUT = SHARMA2024.cutoff
LJ_SHIFT = float(SHARMA2024.form_vector[3])
POLY = tuple(float(v) for v in SHARMA2024.form_vector[6:])
MAX_CUTOFF = SHARMA2024.max_cutoff

#: The paper's system: 1760 S, 800 M and 1440 L particles of N = 4000 ...
PAPER_COUNTS = (1760, 800, 1440)
#: ... as fractions (0.44, 0.20, 0.36), which any N can use ...
PAPER_FRACTIONS = tuple(count / sum(PAPER_COUNTS) for count in PAPER_COUNTS)
#: ... at number density N / L^2 = 1.024.
PAPER_DENSITY = 1.024


def composition_counts(n, composition, n_species=None):
    """Particle counts per species from counts or fractions summing to 1.

    Fractions are turned into counts by largest-remainder rounding so the counts always sum
    to n; counts must sum to n exactly.  ``n_species`` (default: the paper's 3) is the
    number of entries expected.

    Examples
    --------
    >>> composition_counts(1000, PAPER_FRACTIONS).tolist()
    [440, 200, 360]
    """
    k = N_SPECIES if n_species is None else n_species
    comp = np.asarray(composition, dtype=float)
    if comp.shape != (k,) or np.any(comp < 0) or not np.all(np.isfinite(comp)):
        raise ValueError(f"composition must be {k} non-negative numbers (one per species)")
    if np.all(comp == np.round(comp)) and comp.sum() > 1.0 + 1e-12:
        counts = comp.astype(np.int64)
        if counts.sum() != n:
            raise ValueError(f"composition counts sum to {counts.sum()}, not n = {n}")
        return counts
    if abs(comp.sum() - 1.0) > 1e-9:
        raise ValueError(f"composition fractions sum to {comp.sum():g}, not 1")
    exact = comp * n
    counts = np.floor(exact).astype(np.int64)
    remainder = n - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def box_side(n, density):
    """Side L of the square box holding n particles at number density n / L^2.

    Examples
    --------
    >>> box_side(1000, 1.024)
    31.25
    """
    return math.sqrt(n / density)


def species_array(counts):
    """Species labels (int8) laid out 0..., 1..., 2... for the given counts."""
    return np.repeat(np.arange(len(counts), dtype=np.int8), counts)
