"""The equilibrium certificate of one equilibration chain (kernels on plain arrays).

A configuration is certified as an equilibrium sample when the run itself shows two things
(DESIGN.md, "Equilibrium, certified"):

* **stationarity** -- <U>/N over the last two quarters of the run agree within
  ``STATIONARITY_SIGMAS`` = 2 combined standard errors, each error from a blocking analysis
  (Flyvbjerg & Petersen 1989; the naive error of correlated samples is 2-3x too small here);
* **decorrelation** -- the structure has forgotten its state from the middle of the run: the
  normalised collective overlap q between the configuration at the middle and at the end is
  below ``DEFAULT_THRESHOLD``.  A frozen glass is stationary too; only this second test
  tells it from an equilibrium liquid.

Limits of the energy test.  Blocking only finds the error once blocks outlast the energy's
correlation time; U/N has slow, small modes beyond tau_eq (long-wavelength density and
composition fluctuations relax diffusively), so in short runs of small systems (N ~ 150)
the error is underestimated and an equilibrium liquid fails the 2-sigma test at a good
fraction of check points.  In the certified mode a failed check only costs one doubling;
the ci preset, at N = 150, sets ``require_certificate = false``.

Collective overlap.  With the species-resolved overlap

    Q(A, B) = (1/N) #{ i : some particle of i's species lies within a of r_i^A in B },

a = 0.3 sigma_LS, particles are counted by *place*, not identity, so swap moves (which change
species at fixed positions) decorrelate it exactly as they should.  The centre-of-mass drift
of the MC walk (~0.6 sigma_LS after 10^6 sweeps of N = 1000) is removed first, else a frozen
glass would look decorrelated.  For two unrelated structures Q equals the area fraction
covered by discs of radius a around the reference's particles of each species,

    Q_0 = pi a^2 sum_a N_a^2 / (N L^2)        (about 0.105 at the paper's composition),

exact while like particles stay more than 2 a = 0.6 apart (the S-S diameter is 0.62), and

    q = (Q - Q_0) / (1 - Q_0)

is 1 for identical and 0 (+- sqrt(Q_0 / N)) for unrelated structures.  Q streams a cell list
of the reference (``neighbours.cell_grid``): O(N) time and memory, no N x N matrix.

Threshold.  ``DEFAULT_THRESHOLD`` = 0.1: for an exponential q(t) the second half of the run
then lasts >= 2.3 tau_eq, so the whole run lasts >= 4.6 tau_eq and the memory of the start is
below 1 %; 0.1 is still >= 3 standard deviations of the noise of unrelated structures for
N >= 150 (0.03 at N = 150, 0.011 at N = 1000), so a decorrelated liquid is not refused by
chance.  It also demands that the *positions* rearrange, not only the species: swap moves
alone, shuffling species over fixed sites (S<->M<->L via M), can lower Q at most to
sum_a x_a^2 = 0.363, i.e. q = 0.29 at the paper's composition -- above 0.1 but below 1/e.
1/e (one tau_eq per half) would therefore certify a structure whose sites never moved.

tau_eq.  The relaxation time of the equilibration dynamics: the lag at which q(t) against a
reference configuration falls to 1/e (``dynamics.tau_alpha``: interpolated in log t).  During
a run the reference is the previous check point (``check_points``), so tau_eq is read from
the lags of the last interval.

Check points.  With ``until = "certified"`` a chain is examined at t_k = t_0 2^k sweeps,
t_0 = ``MIN_CHECK_SAMPLES`` samples (16 ``sample_every``), whatever the budget L: the
certificate at t_k compares the configuration with the one kept at t_(k-1), the middle of
the run so far, and the chain stops at the first certified check point or when L is spent.
Because the check points do not depend on L, a chain run under a larger budget is the same
chain, and a raised budget continues it bit-identically (``simulate``, ``continuation``);
sweeps beyond the last t_k <= L are examined only once the budget reaches t_(k+1), so a
budget of t_0 2^k (e.g. 2 048 000 at sample_every = 2000) wastes none.  A fixed length L
(``until = "sweeps"`` or a number) is examined at its end instead: t_k ~ L / 2^(K - k),
whole samples, the first with at least ``MIN_CHECK_SAMPLES`` samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from . import dynamics, mc, neighbours
from .model import DEFAULT_MODEL
from .neighbours import minimum_image

__all__ = ["OVERLAP_RADIUS", "DEFAULT_THRESHOLD", "STATIONARITY_SIGMAS", "MIN_BLOCKS",
           "MIN_CHECK_SAMPLES", "TAU_MEASURED", "TAU_BELOW", "TAU_ABOVE", "blocking_error",
           "stationarity", "collective_overlap", "unrelated_overlap", "normalised_overlap",
           "drift_corrected_overlap", "relaxation_time", "check_points", "next_check_point",
           "Certificate", "certify", "new_chain_records", "EquilibrationChain",
           "chain_certificate", "certificate_of"]

#: Overlap radius a (sigma_LS).
OVERLAP_RADIUS = 0.3
#: Certified when q(middle, end) is below this (see the module docstring).
DEFAULT_THRESHOLD = 0.1
#: Stationary when the two quarter means agree within this many combined standard errors.
STATIONARITY_SIGMAS = 2.0
#: Blocking levels are used while at least this many blocks remain.
MIN_BLOCKS = 16
#: The first check point has at least this many energy samples (a quarter holds >= 4).
MIN_CHECK_SAMPLES = 16
#: tau_eq_kind values: measured, or only bounded by the recorded lags.
TAU_MEASURED, TAU_BELOW, TAU_ABOVE = 0, -1, 1


# --- blocking ----------------------------------------------------------------------------

def blocking_error(series, min_blocks=MIN_BLOCKS):
    """Standard error of the mean of a correlated series by blocking (Flyvbjerg-Petersen).

    The series is halved repeatedly by averaging neighbouring pairs; at each level with at
    least ``min_blocks`` blocks (the raw series always counts) the naive error
    std(blocks) / sqrt(n_blocks) is computed, and the largest is returned: the naive error
    grows with the block length until blocks are longer than the correlation time, then
    stays on a plateau.  NaN for fewer than two samples.

    Examples
    --------
    Anticorrelated samples: pairs average out, so the raw level's naive error is the largest:

    >>> round(blocking_error([1.0, -1.0] * 32), 4)
    0.126
    """
    x = np.asarray(series, dtype=float)
    best = math.nan
    level = 0
    while x.size >= 2 and (level == 0 or x.size >= min_blocks):
        error = float(np.std(x, ddof=1) / math.sqrt(x.size))
        best = error if math.isnan(best) else max(best, error)
        x = 0.5 * (x[0:x.size // 2 * 2:2] + x[1:x.size // 2 * 2:2])
        level += 1
    return best


def stationarity(series, sigmas=STATIONARITY_SIGMAS):
    """Drift of <U>/N between the last two quarters of ``series`` and its blocking error.

    Returns (drift, error, passed): drift = mean(4th quarter) - mean(3rd quarter), error the
    two blocking errors combined in quadrature, passed when |drift| <= sigmas * error.
    Fewer than 8 samples cannot be judged: (nan, nan, False).

    Examples
    --------
    >>> stationarity([0.0, 1.0] * 8)                      # no drift between the quarters
    (0.0, 0.408248290463863, True)
    >>> stationarity([0.0] * 12 + [1.0] * 4)[2]            # a step in the last quarter
    False
    """
    x = np.asarray(series, dtype=float)
    if x.size < 8 or not np.all(np.isfinite(x)):
        return math.nan, math.nan, False
    third, fourth = np.array_split(x[x.size // 2:], 2)
    drift = float(fourth.mean() - third.mean())
    error = float(math.hypot(blocking_error(third), blocking_error(fourth)))
    return drift, error, bool(abs(drift) <= sigmas * error)


# --- collective overlap ------------------------------------------------------------------

@njit(cache=True)
def _overlap_count(pos, species, ref, ref_species, box, radius):
    """#{i : a particle of i's species lies within ``radius`` of pos[i] in ``ref``}."""
    n, half, r2 = pos.shape[0], 0.5 * box, radius * radius
    m = max(1, int(box / radius))           # cells at least the radius wide
    start, members, _ = neighbours.cell_grid(ref, np.array([box, box]), np.array([m, m]))
    width = box / m
    offsets = np.arange(-1, 2) if m >= 3 else np.arange(m)   # a 3 x 3 block, or every cell
    hits = 0
    for i in range(n):
        x, y, a = pos[i, 0], pos[i, 1], species[i]
        cx, cy = min(int(x // width), m - 1), min(int(y // width), m - 1)
        found = False
        for oy in offsets:
            for ox in offsets:
                c = ((cy + oy) % m) * m + (cx + ox) % m if m >= 3 else oy * m + ox
                for k in range(start[c], start[c + 1]):
                    j = members[k]
                    if ref_species[j] == a:
                        dx = minimum_image(ref[j, 0] - x, box, half)
                        dy = minimum_image(ref[j, 1] - y, box, half)
                        found = found or dx * dx + dy * dy < r2
        hits += found
    return hits


def collective_overlap(positions, species, ref_positions, ref_species, box,
                       radius=OVERLAP_RADIUS):
    """Raw species-resolved collective overlap Q in [0, 1] of two wrapped configurations.

    No drift is removed here (``drift_corrected_overlap`` does that).  ``box`` is the side of
    the square box; positions lie in [0, box).

    Examples
    --------
    >>> pos, species = np.array([[1.0, 1.0], [3.0, 3.0]]), [0, 1]
    >>> collective_overlap(pos, species, pos + [0.1, 0.0], species, 10.0)   # within 0.3
    1.0
    >>> collective_overlap(pos, species, pos + [0.5, 0.0], species, 10.0)
    0.0
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    ref_positions = np.ascontiguousarray(ref_positions, dtype=np.float64)
    n = positions.shape[0]
    hits = _overlap_count(positions, np.asarray(species, np.int64), ref_positions,
                          np.asarray(ref_species, np.int64), float(box), float(radius))
    return hits / n


def unrelated_overlap(species, box, radius=OVERLAP_RADIUS):
    """Q_0 = pi a^2 sum_a N_a^2 / (N L^2): the overlap of two unrelated structures.

    Examples
    --------
    >>> round(unrelated_overlap([0, 1], 10.0), 6)      # pi 0.3^2 (1 + 1) / (2 * 100)
    0.002827
    """
    counts = np.bincount(np.asarray(species, np.int64)).astype(float)    # any K species
    return float(math.pi * radius**2 * np.sum(counts**2) / (counts.sum() * box**2))


def normalised_overlap(raw, species, box, radius=OVERLAP_RADIUS):
    """q = (Q - Q_0) / (1 - Q_0): 1 for identical, ~0 for unrelated structures.

    Examples
    --------
    >>> normalised_overlap(1.0, [0, 1], 10.0), round(normalised_overlap(0.0, [0, 1], 10.0), 6)
    (1.0, -0.002835)
    """
    q0 = unrelated_overlap(species, box, radius)
    return (raw - q0) / (1.0 - q0)


def drift_corrected_overlap(unwrapped, species, ref_unwrapped, ref_species, box,
                            radius=OVERLAP_RADIUS):
    """Normalised overlap q of two configurations of one chain, centre-of-mass drift removed.

    ``unwrapped`` and ``ref_unwrapped`` are continuous (N, 2) coordinates of the same
    particles (positions + images * box); species may differ (swap moves).

    Examples
    --------
    A rigid translation is drift, not relaxation:

    >>> ref = np.array([[1.0, 1.0], [3.0, 3.0]])
    >>> drift_corrected_overlap(ref + [2.0, 0.0], [0, 1], ref, [0, 1], 10.0)
    1.0
    """
    shift = np.mean(np.asarray(ref_unwrapped) - np.asarray(unwrapped), axis=0)
    now = np.mod(np.asarray(unwrapped) + shift, box)
    now[now >= box] = 0.0          # a tiny negative coordinate can round up to box
    ref = np.mod(np.asarray(ref_unwrapped), box)
    ref[ref >= box] = 0.0
    return normalised_overlap(collective_overlap(now, species, ref, ref_species, box, radius),
                              species, box, radius)


# --- relaxation time, check points and the certificate -----------------------------------

def relaxation_time(lags, q):
    """tau_eq: the lag at which q falls to 1/e, and how it is known.

    Returns (tau, kind): kind ``TAU_MEASURED`` (interpolated in log t), ``TAU_BELOW`` (q is
    already below 1/e at the first lag: tau <= lags[0]) or ``TAU_ABOVE`` (never below 1/e:
    tau >= lags[-1]); NaN and ``TAU_ABOVE`` without lags.

    Examples
    --------
    >>> relaxation_time([1, 10, 100], [0.9, 0.5, 0.1])      # crosses 1/e between 10 and 100
    (21.394463339192743, 0)
    >>> relaxation_time([1, 10], [0.9, 0.8])                # not yet: tau >= 10
    (10.0, 1)
    """
    lags, q = np.asarray(lags, float), np.asarray(q, float)
    keep = np.isfinite(q) & (lags > 0)
    lags, q = lags[keep], q[keep]
    if lags.size == 0:
        return math.nan, TAU_ABOVE
    if q[0] <= 1.0 / math.e:
        return float(lags[0]), TAU_BELOW
    tau = dynamics.tau_alpha(lags, q)
    if math.isnan(tau):
        return float(lags[-1]), TAU_ABOVE
    return float(tau), TAU_MEASURED


def check_points(n_samples, min_samples=MIN_CHECK_SAMPLES, extendable=False):
    """Sample counts at which an equilibration of ``n_samples`` energy samples is examined.

    ``extendable`` (the certified mode, where ``n_samples`` is only a budget):
    min_samples * 2^k for k = 0, 1, ... up to n_samples.  The points do not depend on the
    budget, so a chain run under a larger budget passes the same check points and a raised
    budget continues a chain bit-identically.  Otherwise (a fixed length, examined at its
    end): n_samples, ceil(n_samples / 2), ceil(n_samples / 4), ... down to the first with at
    least ``min_samples``.  Ascending, without repeats; the first is only a reference point,
    the certificate is evaluated at the following ones.  A fixed length with fewer than two
    points: just [n].

    Examples
    --------
    >>> check_points(100), check_points(100, extendable=True)
    ([25, 50, 100], [16, 32, 64])
    """
    if extendable:
        points = []
        while min_samples * 2 ** len(points) <= n_samples:
            points.append(min_samples * 2 ** len(points))
        return points
    points = [int(n_samples)]
    while math.ceil(points[-1] / 2) >= min_samples and math.ceil(points[-1] / 2) < points[-1]:
        points.append(math.ceil(points[-1] / 2))
    return sorted(points)


def next_check_point(sweeps, sample_every, min_samples=MIN_CHECK_SAMPLES):
    """The first check point of the extendable schedule beyond ``sweeps`` (in sweeps).

    Examples
    --------
    >>> next_check_point(2_000_000, sample_every=2000)     # 16 * 2000 * 2^6
    2048000
    """
    point = min_samples * int(sample_every)
    while point <= sweeps:
        point *= 2
    return point


@dataclass(frozen=True)
class Certificate:
    """The equilibrium certificate of one chain at a check point (see the module docstring)."""
    sweeps: int                 #: sweeps of the run when examined
    reference_sweeps: int       #: sweeps at the reference (middle) configuration
    drift: float                #: <U>/N (4th quarter) - <U>/N (3rd quarter)
    drift_error: float          #: its blocking error
    stationary: bool
    overlap: float              #: q(reference, end)
    threshold: float
    decorrelated: bool
    tau_eq: float               #: sweeps; see tau_eq_kind
    tau_eq_kind: int            #: TAU_MEASURED, TAU_BELOW (tau <= value) or TAU_ABOVE

    @property
    def certified(self):
        return self.stationary and self.decorrelated

    def summary(self):
        """One line for the log."""
        tau = {TAU_MEASURED: "", TAU_BELOW: "<= ", TAU_ABOVE: ">= "}[self.tau_eq_kind]
        verdict = "CERTIFIED" if self.certified else "NOT certified"
        return (f"{verdict} after {self.sweeps} sweeps: <U>/N drift {self.drift:+.1e} "
                f"(2 sigma = {STATIONARITY_SIGMAS * self.drift_error:.1e}, "
                f"{'ok' if self.stationary else 'FAILED'}); overlap with sweep "
                f"{self.reference_sweeps} q = {self.overlap:.3f} "
                f"({'<' if self.decorrelated else '>='} {self.threshold:g}); "
                f"tau_eq {tau}{self.tau_eq:.3g} sweeps")


def certify(energy, overlap, sample_every, reference_sample, threshold=DEFAULT_THRESHOLD):
    """The certificate of a chain from its records up to now.

    ``energy`` holds U/N at samples 1..n (every ``sample_every`` sweeps; n = len(energy)),
    ``overlap`` q at the same samples against the configuration at sample
    ``reference_sample`` (used for the samples after it).  The run is examined at sample n.

    Examples
    --------
    A flat energy and an overlap that decays from the reference (sample 8) to 0.05:

    >>> overlap = np.r_[np.ones(8), np.linspace(0.5, 0.05, 8)]
    >>> cert = certify(np.zeros(16), overlap, sample_every=10, reference_sample=8)
    >>> cert.certified, cert.sweeps, cert.reference_sweeps, round(cert.tau_eq, 1)
    (True, 160, 80, 30.5)
    """
    energy, overlap = np.asarray(energy, float), np.asarray(overlap, float)
    n = energy.size
    drift, error, stationary = stationarity(energy)
    q_end = float(overlap[n - 1])
    lags = (np.arange(reference_sample + 1, n + 1) - reference_sample) * sample_every
    tau, kind = relaxation_time(lags, overlap[reference_sample:n])
    return Certificate(n * sample_every, reference_sample * sample_every, drift, error,
                       stationary, q_end, float(threshold), bool(q_end < threshold), tau, kind)


# --- a chain that records and examines itself --------------------------------------------

def new_chain_records(positions, species, n_samples, model=DEFAULT_MODEL):
    """The fields an equilibration chain keeps beside its MC state, for ``schema.ChainState``.

    energy and overlap (n_samples,) are NaN until recorded; the reference starts as the
    initial configuration (sample 0); pair_swaps (2, P) counts accepted / attempted swaps
    per species pair of ``model`` (``PairModel.swap_pairs``; the paper's: 3).

    Examples
    --------
    >>> records = new_chain_records(np.zeros((3, 2)), np.zeros(3, np.int8), n_samples=4)
    >>> records["energy"].shape, records["ref_sample"], records["pair_swaps"].shape
    ((4,), 0, (2, 3))
    """
    return dict(energy=np.full(n_samples, np.nan), overlap=np.full(n_samples, np.nan),
                ref_unwrapped=np.array(positions, dtype=np.float64), ref_species=species.copy(),
                ref_sample=0, checked_sample=0, checked_reference=0, certified=False,
                pair_swaps=np.zeros((2, len(model.swap_pairs)), dtype=np.int64))


class EquilibrationChain:
    """Advance one equilibration chain, recording U/N and q and examining it at check points.

    ``state`` is a ``schema.ChainState`` with the fields of ``new_chain_records``, changed in
    place, so the caller checkpoints it whenever it likes and a resumed chain continues
    bit-identically.  With ``stop_when_certified`` the chain is done at the first certified
    check point, else after ``sweeps``.

    Examples
    --------
    >>> from mpi_glass.model import species_array
    >>> from mpi_glass.schema import ChainState
    >>> species, rng = species_array((4, 2, 3)), mc.new_rng_state(1)
    >>> positions = mc.initial_configuration((4, 2, 3), 8.0, rng)
    >>> state = ChainState(positions, np.zeros((9, 2), np.int64), species, rng,
    ...                    **new_chain_records(positions, species, n_samples=4))
    >>> chain = EquilibrationChain(state, box=8.0, temperature=1.0, delta_max=0.3,
    ...                            swap_probability=0.2, sweeps=40, sample_every=10)
    >>> while not chain.done:
    ...     _ = chain.advance(max_sweeps=15)
    >>> state.sweeps_done, state.n_recorded, bool(np.isfinite(state.energy).all())
    (40, 4, True)
    """

    def __init__(self, state, *, box, temperature, delta_max, swap_probability, sweeps,
                 sample_every, threshold=DEFAULT_THRESHOLD, stop_when_certified=False,
                 model=DEFAULT_MODEL):
        self.state, self.box, self.sweeps, self.model = state, float(box), int(sweeps), model
        self.mc_args = (float(temperature), float(delta_max), float(swap_probability))
        self.sample_every, self.threshold = int(sample_every), float(threshold)
        self.stop_when_certified = bool(stop_when_certified)
        self.n_samples = state.energy.size
        self.checks = (set(check_points(self.n_samples, extendable=self.stop_when_certified))
                       if self.n_samples else set())

    @property
    def done(self):
        return bool(self.state.done)

    def advance(self, max_sweeps):
        """Run up to ``max_sweeps`` sweeps (stopping at the next sample); returns sweeps run."""
        st = self.state
        done, k = st.sweeps_done, st.n_recorded
        next_sample = (k + 1) * self.sample_every if k < self.n_samples else self.sweeps
        target = min(self.sweeps, done + int(max_sweeps), next_sample)
        stats = mc.run_sweeps(st.positions, st.images, st.species, self.box, st.rng,
                              target - done, *self.mc_args, model=self.model)
        st.mc_counts += np.array(stats[:4], dtype=np.int64)
        st.pair_swaps += np.stack([stats.pair_swaps_accepted, stats.pair_swaps_attempted])
        st.sweeps_done = target
        if k < self.n_samples and target == next_sample:
            self._record(k)
            st.n_recorded = k + 1
            if k + 1 in self.checks:
                self._examine(k + 1)
        if target >= self.sweeps:
            st.done = True
        return target - done

    def _unwrapped(self):
        return self.state.positions + self.state.images * self.box

    def _record(self, k):
        st = self.state
        st.energy[k] = (mc.total_energy(st.positions, st.species, self.box, self.model)
                        / st.species.size)
        st.overlap[k] = drift_corrected_overlap(self._unwrapped(), st.species, st.ref_unwrapped,
                                                st.ref_species, self.box)

    def _examine(self, n):
        """At check point n (samples): certify against the reference, then make the current
        configuration the reference of the next interval."""
        st = self.state
        if n > min(self.checks):
            st.checked_sample, st.checked_reference = n, st.ref_sample
            st.certified = self.certificate().certified
            if st.certified and self.stop_when_certified:
                st.done = True
        st.ref_unwrapped = self._unwrapped()
        st.ref_species = st.species.copy()
        st.ref_sample = n

    def certificate(self):
        """The certificate at the last check point (None before the second one)."""
        return certificate_of(self.state, self.sample_every, self.threshold)


def chain_certificate(state, equilibration):
    """``certificate_of`` with the settings of a config's [equilibration] section.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> settings = SimpleNamespace(sample_every=10, certificate_threshold=0.1)
    >>> print(chain_certificate(SimpleNamespace(checked_sample=0), settings))  # not examined yet
    None
    """
    return certificate_of(state, equilibration.sample_every,
                          equilibration.certificate_threshold)


def certificate_of(state, sample_every, threshold=DEFAULT_THRESHOLD):
    """The certificate a chain's records hold at its last check point (None if none yet).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> state = SimpleNamespace(checked_sample=16, checked_reference=8, energy=np.zeros(16),
    ...                         overlap=np.r_[np.ones(8), np.linspace(0.5, 0.05, 8)])
    >>> certificate_of(state, sample_every=10).certified
    True
    """
    n = state.checked_sample or 0
    if n == 0:
        return None
    return certify(state.energy[:n], state.overlap[:n], sample_every, state.checked_reference,
                   threshold)
