"""The equilibrium certificate of one equilibration chain (kernels on plain arrays).

A configuration is certified as an equilibrium sample when the run itself shows two things
(DESIGN.md, "Equilibrium, certified"):

* **stationarity** -- <U>/N over the last two quarters of the run agree within
  ``STATIONARITY_SIGMAS`` = 2.5 combined standard errors, each from the integrated
  autocorrelation time tau_int of U/N over the second half (``integrated_time``: FFT,
  Sokal's automatic window, at least tau_eq), provided that half holds at least
  ``MIN_EFFECTIVE_SAMPLES`` = 16 effective samples; fewer: **too short** (neither a pass nor
  a failure; a certified-mode chain goes on);
* **decorrelation** -- the structure has forgotten its state from the middle of the run: the
  normalised collective overlap q between the configuration at the middle and at the end is
  below ``DEFAULT_THRESHOLD``.  A frozen glass is stationary too; only this second test
  tells it from an equilibrium liquid.

The chains of one ensemble are independent samples of one process: ``certify_ensemble``
pools their tau_int and adds a between-chain test (rank-normalised split-R-hat, Vehtari et
al. 2021), so one chain stuck in another state fails them all.

Why not blocking (issue 16).  Blocking only finds the error once blocks outlast the
energy's correlation time; U/N has slow, small modes, so on chains a few tau_int long the
error came out 3-4x too small and the 2-sigma test failed equilibrium chains more often the
longer they ran (43 of 82 plateau segments at T = 0.30).  Calibration of the present test:
``mpi_glass bench certificate`` and the README, "Equilibrium, certified".

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
the run so far.  The chains of an ensemble stop together, at the first check point where
they are all certified together (``certify_together``), or when L is spent.
Because the check points do not depend on L, a chain run under a larger budget is the same
chain, and a raised budget continues it bit-identically (``simulate``, ``continuation``);
sweeps beyond the last t_k <= L are examined only once the budget reaches t_(k+1), so a
budget of t_0 2^k (e.g. 2 048 000 at sample_every = 2000) wastes none.  A fixed length L
(``until = "sweeps"`` or a number) is examined at its end instead: t_k ~ L / 2^(K - k),
whole samples, the first with at least ``MIN_CHECK_SAMPLES`` samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numba import njit

from . import dynamics, mc, neighbours
from .model import DEFAULT_MODEL
from .neighbours import minimum_image

__all__ = ["OVERLAP_RADIUS", "DEFAULT_THRESHOLD", "STATIONARITY_SIGMAS",
           "MIN_EFFECTIVE_SAMPLES", "SOKAL_WINDOW", "RHAT_ALPHA", "CERTIFIED", "NOT_CERTIFIED",
           "TOO_SHORT", "VERDICT_NAMES", "MIN_CHECK_SAMPLES", "TAU_MEASURED", "TAU_BELOW",
           "TAU_ABOVE", "autocorrelation", "integrated_time", "stationarity", "split_rhat",
           "rhat_limit", "certify_ensemble", "collective_overlap", "unrelated_overlap",
           "normalised_overlap", "drift_corrected_overlap", "relaxation_time", "check_points",
           "next_check_point", "Certificate", "certify", "new_chain_records",
           "EquilibrationChain", "chain_certificate", "ensemble_certificates", "certify_together",
           "certificate_of"]

#: Overlap radius a (sigma_LS).
OVERLAP_RADIUS = 0.3
#: Certified when q(middle, end) is below this (see the module docstring).
DEFAULT_THRESHOLD = 0.1
#: Stationary when the two quarter means agree within this many combined standard errors
#: (calibrated: ``mpi_glass bench certificate``; README "Equilibrium, certified").
STATIONARITY_SIGMAS = 2.5
#: The energy test judges only a second half with at least this many effective samples.
MIN_EFFECTIVE_SAMPLES = 16.0
#: Sokal's window: the smallest M with M >= SOKAL_WINDOW tau_int(M).
SOKAL_WINDOW = 5.0
#: Chains disagree when R-hat exceeds the (1 - RHAT_ALPHA) point of its equilibrium spread.
RHAT_ALPHA = 0.01
#: Certificate verdicts.
CERTIFIED, NOT_CERTIFIED, TOO_SHORT = 1, 0, -1
VERDICT_NAMES = {CERTIFIED: "CERTIFIED", NOT_CERTIFIED: "NOT certified",
                 TOO_SHORT: "too short to certify"}
#: The first check point has at least this many energy samples (a quarter holds >= 4).
MIN_CHECK_SAMPLES = 16
#: tau_eq_kind values: measured, or only bounded by the recorded lags.
TAU_MEASURED, TAU_BELOW, TAU_ABOVE = 0, -1, 1


# --- autocorrelation time and the energy test --------------------------------------------

def autocorrelation(series):
    """Normalised autocorrelation rho(k), k = 0..n-1, of a series (FFT, O(n log n)).

    The mean is removed and every lag is divided by the same n (the biased estimator, whose
    sums are what the windowed tau_int needs).  A constant series gives rho = [1, 0, ...].

    Examples
    --------
    >>> autocorrelation([1.0, -1.0, 1.0, -1.0]).round(2).tolist()
    [1.0, -0.75, 0.5, -0.25]
    """
    return _pooled_autocorrelation([np.asarray(series, dtype=float)])


def _pooled_autocorrelation(chains):
    """rho(k) of several chains of one process: their autocovariances (each about its own
    mean, zero beyond its length) summed, over the summed lag-0 variances."""
    longest = max(x.size for x in chains)
    total = np.zeros(longest)
    for x in chains:
        y = x - x.mean()
        spectrum = np.fft.rfft(y, 2 * x.size)
        total[:x.size] += np.fft.irfft(spectrum * np.conj(spectrum), 2 * x.size)[:x.size]
    if not total[0] > 0.0:
        rho = np.zeros(longest)
        rho[0] = 1.0
        return rho
    return total / total[0]


def integrated_time(series, window=SOKAL_WINDOW, full_output=False):
    """Integrated autocorrelation time tau_int (in samples) with Sokal's automatic window.

    tau(M) = 1 + 2 sum_{k=1..M} rho(k), with the smallest window M >= ``window`` * tau(M)
    (Sokal 1997; as emcee): long enough to hold the correlation, short enough that the noise
    of rho at large lags stays small.  Removing each chain's own mean biases tau(M) low by
    the factor 1 - (2M + 1) / n (Madras & Sokal 1988): a third at n = 20 tau, the regime
    certificates are decided in, so the factor is divided out (n: the mean chain length).
    Windows are sought up to 2M + 1 = n / 2; a series too short to hold one (tau > n / 20)
    gets the value at that end, a lower bound, and ``found`` False.  ``series`` is one 1-D
    series or a list of series of the same process (independent chains), whose
    autocovariances are pooled.  The result is at least 1 (anticorrelated series are not
    credited with more samples than they have, as in pymbar).  NaN for fewer than 2 samples.
    With ``full_output``: (tau, found).

    Examples
    --------
    >>> integrated_time([0.0, 1.0] * 32)          # anticorrelated: floored at 1
    1.0
    >>> rng = np.random.default_rng(0)
    >>> x = np.repeat(rng.normal(size=4000), 10)   # blocks of 10 equal samples
    >>> round(integrated_time(x))
    10
    >>> integrated_time(x[:150], full_output=True)[1]     # 15 blocks: no window fits
    False
    """
    chains = ([np.asarray(series, dtype=float)] if np.ndim(series[0]) == 0
              else [np.asarray(x, dtype=float) for x in series])
    if sum(x.size for x in chains) < 2 or min(x.size for x in chains) < 1:
        return (math.nan, False) if full_output else math.nan
    n = float(np.mean([x.size for x in chains]))
    m = np.arange(max(1, int((n / 2 - 1) / 2) + 1))        # windows with 2M + 1 <= n / 2
    rho = _pooled_autocorrelation(chains)
    taus = (2.0 * np.cumsum(rho[:m.size]) - 1.0) / (1.0 - (2 * m + 1) / n)
    short = m < window * taus
    found = not short.all()
    tau = max(float(taus[int(np.argmin(short)) if found else m.size - 1]), 1.0)
    return (tau, found) if full_output else tau


def stationarity(series, sigmas=STATIONARITY_SIGMAS, tau=None):
    """The energy test over the second half of ``series`` (U/N samples of a run so far).

    drift = mean(4th quarter) - mean(3rd quarter); each quarter mean's error is
    sqrt(var tau_int / n_quarter), with the variance and tau_int (``integrated_time``) of the
    whole second half (``tau`` in samples overrides the estimate: an ensemble's pooled one),
    the two combined in quadrature; ``ess`` = n_half / tau_int effective samples, 0 when the
    half is too short to hold Sokal's window (tau_int > n_half / 20, only bounded).  Returns
    (drift, error, passed, tau, ess), passed when |drift| <= ``sigmas`` * error.  Fewer than
    8 samples, or non-finite ones, cannot be judged: (nan, nan, False, nan, 0.0).

    Why the whole half: estimated from the quarters about their own means, tau_int is so
    noisy at 10-40 tau_int per half that 3-8 % of equilibrium series fail at 2.5 sigma
    (AR(1), ``mpi_glass bench certificate``); from the whole half the test stays below 1 %.
    The price: a drift large against the noise also lengthens tau_int, so it shows as too
    few effective samples (``certify``: "too short", never a pass) rather than as a
    failed test.

    Examples
    --------
    >>> drift, error, passed, tau, ess = stationarity([0.0, 1.0] * 8)   # no drift
    >>> drift, round(error, 3), passed, tau, ess
    (0.0, 0.378, True, 1.0, 8.0)

    A step in the last quarter reads as one long correlation, longer than the half can
    measure: no effective samples to judge by:

    >>> stationarity([0.0] * 12 + [1.0] * 4)[4]
    0.0
    """
    x = np.asarray(series, dtype=float)
    if x.size < 8 or not np.all(np.isfinite(x)):
        return math.nan, math.nan, False, math.nan, 0.0
    half = x[x.size // 2:]
    third, fourth = np.array_split(half, 2)
    tau, found = (integrated_time(half, full_output=True) if tau is None
                  else (max(float(tau), 1.0), True))
    variance = float(np.var(half, ddof=1)) * tau
    drift = float(fourth.mean() - third.mean())
    error = math.sqrt(variance / third.size + variance / fourth.size)
    return (drift, error, bool(abs(drift) <= sigmas * error), tau,
            half.size / tau if found else 0.0)


# --- between chains: rank-normalised split-R-hat -------------------------------------------

def _rhat_of(chains):
    """Classic R-hat of (M, n) draws: sqrt(((n-1)/n W + B/n) / W)."""
    n = chains.shape[1]
    within = float(np.mean(np.var(chains, axis=1, ddof=1)))
    between_over_n = float(np.var(chains.mean(axis=1), ddof=1))
    if not within > 0.0:
        return math.nan
    return math.sqrt(((n - 1) / n * within + between_over_n) / within)


def _rank_normalise(draws):
    """z = Phi^-1((r - 3/8) / (S + 1/4)) of the pooled ranks r (ties averaged)."""
    from scipy.special import ndtri
    from scipy.stats import rankdata
    ranks = rankdata(draws, method="average").reshape(draws.shape)
    return ndtri((ranks - 0.375) / (draws.size + 0.25))


def split_rhat(chains):
    """Rank-normalised split-R-hat of equal-length chains (Vehtari et al. 2021, eq. 4-5).

    Each chain (row) is split into halves; the draws of all halves are replaced by the
    normal scores of their pooled ranks, and R-hat is computed for them (bulk) and for the
    folded draws |x - median| (tails); the larger is returned.  ~1 when all chains sample one
    distribution; larger when one sits elsewhere.  NaN for fewer than 2 chains or 4 draws.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> round(split_rhat(rng.normal(size=(4, 1000))), 2)
    1.0
    >>> stuck = rng.normal(size=(4, 1000)); stuck[0] += 3.0
    >>> round(split_rhat(stuck), 2)
    1.48
    """
    x = np.asarray(chains, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 4:
        return math.nan
    half = x.shape[1] // 2
    split = np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])
    bulk = _rhat_of(_rank_normalise(split))
    tail = _rhat_of(_rank_normalise(np.abs(split - np.median(split))))
    return max(bulk, tail)


def rhat_limit(n_chains, split_length, tau, alpha=RHAT_ALPHA):
    """The R-hat that equilibrium chains exceed with probability ~ ``alpha``.

    For 2K split chains of n draws with tau_int ``tau`` (samples), the variance of their
    means is var tau / n, so B/n ~ (var tau / n) F and R-hat^2 ~ (n-1)/n + (tau / n) F, F an
    F(2K - 1, nu) variable: the between-chain variance has 2K - 1 degrees of freedom and the
    within-chain one (with tau estimated) about nu = 2K n / tau, the effective samples of all
    the draws.  ``split_rhat`` is the larger of two such statistics (bulk and tails), so each
    gets alpha / 2.  Measured on AR(1) ensembles of 2-8 chains, 10-40 tau_int per half:
    0.5-2.7 % false alarms for alpha = 1 % (``mpi_glass bench certificate``).  With hundreds
    of effective samples per chain the limit is Vehtari et al.'s fixed 1.01; with tens,
    where real certificates are decided, well above it.

    Examples
    --------
    >>> round(rhat_limit(4, split_length=10000, tau=100.0), 3)     # ESS 100 per split chain
    1.014
    """
    from scipy.stats import f
    m = 2 * int(n_chains) - 1
    n, tau = float(split_length), max(float(tau), 1.0)
    nu = max(2.0 * int(n_chains) * n / tau, 1.0)
    return math.sqrt((n - 1) / n + tau / n * f.ppf(1.0 - alpha / 2.0, m, nu))


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
    """The equilibrium certificate of one chain at a check point (see the module docstring).

    ``verdict``: ``CERTIFIED``; ``TOO_SHORT`` when the second half holds fewer than
    ``min_effective`` effective energy samples (the energy test cannot judge yet: neither a
    pass nor a failure; a certified-mode chain goes on); else ``NOT_CERTIFIED``.  A chain
    whose structure has not decorrelated is NOT certified whatever its length.  The
    ``rhat`` fields are the ensemble's (``certify_ensemble``); NaN for a lone chain.
    """
    sweeps: int                 #: sweeps of the run when examined
    reference_sweeps: int       #: sweeps at the reference (middle) configuration
    drift: float                #: <U>/N (4th quarter) - <U>/N (3rd quarter)
    drift_error: float          #: its standard error, from tau_int
    stationary: bool            #: |drift| <= sigmas * drift_error
    overlap: float              #: q(reference, end)
    threshold: float
    decorrelated: bool
    tau_eq: float               #: sweeps; see tau_eq_kind
    tau_eq_kind: int            #: TAU_MEASURED, TAU_BELOW (tau <= value) or TAU_ABOVE
    tau_int: float = math.nan   #: integrated autocorrelation time of U/N (sweeps), >= tau_eq
    effective_samples: float = 0.0   #: second-half samples / tau_int
    sigmas: float = STATIONARITY_SIGMAS
    min_effective: float = MIN_EFFECTIVE_SAMPLES
    rhat: float = math.nan      #: rank-normalised split-R-hat of U/N over the ensemble
    rhat_limit: float = math.nan
    pooled: bool = False        #: tau_int pooled over the ensemble's chains

    @property
    def chains_agree(self):
        return not self.rhat > self.rhat_limit       # NaN (a lone chain) agrees

    @property
    def verdict(self):
        if not self.decorrelated:
            return NOT_CERTIFIED
        if not self.effective_samples >= self.min_effective:
            return TOO_SHORT
        return CERTIFIED if self.stationary and self.chains_agree else NOT_CERTIFIED

    @property
    def certified(self):
        return self.verdict == CERTIFIED

    def summary(self):
        """One line for the log."""
        tau = {TAU_MEASURED: "", TAU_BELOW: "<= ", TAU_ABOVE: ">= "}[self.tau_eq_kind]
        verdict = VERDICT_NAMES[self.verdict]
        rhat = ("" if math.isnan(self.rhat) else
                f"; R-hat {self.rhat:.3f} ({'<=' if self.chains_agree else '>'} "
                f"{self.rhat_limit:.3f})")
        return (f"{verdict} after {self.sweeps} sweeps: <U>/N drift {self.drift:+.1e} "
                f"({self.sigmas:g} sigma = {self.sigmas * self.drift_error:.1e}, "
                f"{'ok' if self.stationary else 'FAILED'}); tau_int "
                f"{self.tau_int:.3g} sweeps{' (pooled)' if self.pooled else ''}, "
                f"{self.effective_samples:.1f} effective samples (min {self.min_effective:g})"
                f"{rhat}; overlap with sweep {self.reference_sweeps} q = {self.overlap:.3f} "
                f"({'<' if self.decorrelated else '>='} {self.threshold:g}); "
                f"tau_eq {tau}{self.tau_eq:.3g} sweeps")


def certify(energy, overlap, sample_every, reference_sample, threshold=DEFAULT_THRESHOLD,
            sigmas=STATIONARITY_SIGMAS, min_effective=MIN_EFFECTIVE_SAMPLES, tau=None):
    """The certificate of a chain from its records up to now.

    ``energy`` holds U/N at samples 1..n (every ``sample_every`` sweeps; n = len(energy)),
    ``overlap`` q at the same samples against the configuration at sample
    ``reference_sample`` (used for the samples after it).  The run is examined at sample n.
    ``tau`` (samples) replaces the chain's own tau_int estimate (``certify_ensemble``).

    tau_int is at least tau_eq (the overlap's relaxation time of the last interval): a
    half only a few tau_eq long shows U/N's fast decorrelation but not its slow tail, tied
    to the structure.  Without the floor, three of four N = 1000 chains at T = 0.30
    certified after 2.5e5 sweeps (6 tau_eq) with tau_int(U) estimated at 2.6-4.8e3 sweeps,
    where 2e6-sweep runs measure 2.3-5.6e4 (issue 16): 2-5 effective samples per half, not
    the 26-48 claimed.  With it a half must span >= 16 tau_eq.

    Examples
    --------
    A flat energy (white noise) and an overlap that decays from the reference (sample 128)
    as exp(-lag / 40 sweeps): tau_int is floored at tau_eq = 4 samples, 128 / 4 = 32
    effective samples:

    >>> energy = np.random.default_rng(0).normal(-2.0, 0.01, 256)
    >>> overlap = np.r_[np.ones(128), np.exp(-np.arange(1, 129) / 4.0)]
    >>> cert = certify(energy, overlap, sample_every=10, reference_sample=128)
    >>> cert.certified, cert.sweeps, cert.reference_sweeps, round(cert.effective_samples, 1)
    (True, 2560, 1280, 32.0)

    Shorter, the second half holds fewer than 16 effective samples (at most its 12 samples):

    >>> certify(energy[:24], np.r_[np.ones(12), np.full(12, 0.05)], 10, 12).verdict
    -1
    """
    energy, overlap = np.asarray(energy, float), np.asarray(overlap, float)
    n = energy.size
    q_end = float(overlap[n - 1])
    lags = (np.arange(reference_sample + 1, n + 1) - reference_sample) * sample_every
    tau_eq, kind = relaxation_time(lags, overlap[reference_sample:n])
    drift, error, stationary, tau_samples, ess = stationarity(energy, sigmas, tau)
    floor = tau_eq / sample_every if kind != TAU_BELOW and math.isfinite(tau_eq) else 1.0
    if ess > 0 and floor > tau_samples:      # the structure's tau_eq bounds tau_int below
        drift, error, stationary, tau_samples, ess = stationarity(energy, sigmas, floor)
    tau_samples = max(tau_samples, floor)
    return Certificate(n * sample_every, reference_sample * sample_every, drift, error,
                       stationary, q_end, float(threshold), bool(q_end < threshold), tau_eq,
                       kind, tau_int=tau_samples * sample_every, effective_samples=float(ess),
                       sigmas=float(sigmas), min_effective=float(min_effective),
                       pooled=tau is not None)


def certify_ensemble(energies, overlaps, references, sample_every, threshold=DEFAULT_THRESHOLD,
                     sigmas=STATIONARITY_SIGMAS, min_effective=MIN_EFFECTIVE_SAMPLES,
                     alpha=RHAT_ALPHA):
    """Certificates of the independent chains of one ensemble, judged together.

    Chain i's records up to its last check point are ``energies[i]``, ``overlaps[i]`` (same
    length) and its reference sample ``references[i]``.  The chains sample one process, so
    (1) tau_int is estimated once from all their second halves (pooled autocovariance) and
    every chain's error bar and effective sample count use it, and (2) the rank-normalised
    split-R-hat of U/N over the second halves (the last n samples of each, n that of the
    shortest) must not exceed ``rhat_limit``: a chain stuck in another state fails all.
    A lone chain is judged alone (R-hat NaN).

    Examples
    --------
    Four white-noise chains; then one of them sits 0.05 lower:

    >>> rng = np.random.default_rng(2)
    >>> energy = [rng.normal(-2.0, 0.01, 256) for _ in range(4)]
    >>> decayed = [np.r_[np.ones(128), np.full(128, 0.05)]] * 4
    >>> [c.certified for c in certify_ensemble(energy, decayed, [128] * 4, 10)]
    [True, True, True, True]
    >>> energy[3] = energy[3] - 0.05
    >>> [c.verdict for c in certify_ensemble(energy, decayed, [128] * 4, 10)]
    [0, 0, 0, 0]
    """
    halves = [np.asarray(e, float)[len(e) // 2:] for e in energies]
    usable = [h for h in halves if h.size >= 4 and np.all(np.isfinite(h))]
    tau = integrated_time(usable) if len(usable) >= 2 else None
    certs = [certify(e, q, sample_every, ref, threshold, sigmas, min_effective, tau)
             for e, q, ref in zip(energies, overlaps, references)]
    if len(usable) < 2 or len(usable) < len(halves):
        return certs
    n = min(h.size for h in usable)
    rhat = split_rhat(np.stack([h[h.size - n:] for h in usable]))
    limit = rhat_limit(len(usable), n // 2, tau)
    return [replace(c, rhat=rhat, rhat_limit=limit) for c in certs]


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
    check point, else after ``sweeps``.  Its check points are the budget-free schedule
    (``check_points(extendable=True)``) when it stops when certified or when ``extendable``
    says so (chains that an ensemble stops together, ``certify_together``), else its length's.

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
                 sigmas=STATIONARITY_SIGMAS, min_effective=MIN_EFFECTIVE_SAMPLES,
                 model=DEFAULT_MODEL, extendable=None):
        self.state, self.box, self.sweeps, self.model = state, float(box), int(sweeps), model
        self.mc_args = (float(temperature), float(delta_max), float(swap_probability))
        self.sample_every, self.threshold = int(sample_every), float(threshold)
        self.sigmas, self.min_effective = float(sigmas), float(min_effective)
        self.stop_when_certified = bool(stop_when_certified)
        self.n_samples = state.energy.size
        extendable = self.stop_when_certified if extendable is None else bool(extendable)
        self.checks = (set(check_points(self.n_samples, extendable=extendable))
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
        return certificate_of(self.state, self.sample_every, self.threshold, self.sigmas,
                              self.min_effective)


def chain_certificate(state, equilibration):
    """``certificate_of`` with the settings of a config's [equilibration] section.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> settings = SimpleNamespace(sample_every=10, certificate_threshold=0.1,
    ...                            certificate_sigmas=2.5, certificate_min_effective=16)
    >>> print(chain_certificate(SimpleNamespace(checked_sample=0), settings))  # not examined yet
    None
    """
    return certificate_of(state, equilibration.sample_every,
                          equilibration.certificate_threshold, equilibration.certificate_sigmas,
                          equilibration.certificate_min_effective)


def ensemble_certificates(states, equilibration):
    """``certify_ensemble`` over the chains (``ChainState``) of one ensemble, with the
    settings of a config's [equilibration] section; None for a chain never examined.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> settings = SimpleNamespace(sample_every=10, certificate_threshold=0.1,
    ...                            certificate_sigmas=2.5, certificate_min_effective=16)
    >>> ensemble_certificates([SimpleNamespace(checked_sample=0)], settings)
    [None]
    """
    examined = [i for i, st in enumerate(states) if st.checked_sample]
    n = [states[i].checked_sample for i in examined]
    certs = certify_ensemble([states[i].energy[:k] for i, k in zip(examined, n)],
                             [states[i].overlap[:k] for i, k in zip(examined, n)],
                             [states[i].checked_reference for i in examined],
                             equilibration.sample_every, equilibration.certificate_threshold,
                             equilibration.certificate_sigmas,
                             equilibration.certificate_min_effective) if examined else []
    found = dict(zip(examined, certs))
    return [found.get(i) for i in range(len(states))]


def certify_together(records, n, equilibration):
    """The certificates of an ensemble's chains judged together at check point ``n``
    (samples) from their records alone: ``records`` holds each chain's (energy, overlap)
    arrays of at least ``n`` recorded samples; the reference of the interval ending at ``n``
    is the previous check point, n / 2.  A pure function of the records, so a resumed or
    continued run takes the same decision at the same check point (the certified mode's
    stop, ``simulate.Simulation``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> settings = SimpleNamespace(sample_every=10, certificate_threshold=0.1,
    ...                            certificate_sigmas=2.5, certificate_min_effective=16)
    >>> rng = np.random.default_rng(0)
    >>> q = np.r_[np.ones(128), np.exp(-np.arange(1, 129) / 4.0), np.ones(256)]
    >>> chains = [(rng.normal(-2.0, 0.01, 512), q) for _ in range(3)]
    >>> [c.certified for c in certify_together(chains, 256, settings)]
    [True, True, True]
    """
    n = int(n)
    return certify_ensemble([np.asarray(e)[:n] for e, _ in records],
                            [np.asarray(q)[:n] for _, q in records], [n // 2] * len(records),
                            equilibration.sample_every, equilibration.certificate_threshold,
                            equilibration.certificate_sigmas,
                            equilibration.certificate_min_effective)


def certificate_of(state, sample_every, threshold=DEFAULT_THRESHOLD,
                   sigmas=STATIONARITY_SIGMAS, min_effective=MIN_EFFECTIVE_SAMPLES):
    """The certificate a chain's records hold at its last check point (None if none yet).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> energy = np.random.default_rng(0).normal(-2.0, 0.01, 256)
    >>> state = SimpleNamespace(checked_sample=256, checked_reference=128, energy=energy,
    ...                         overlap=np.r_[np.ones(128), np.exp(-np.arange(1, 129) / 4.0)])
    >>> certificate_of(state, sample_every=10).certified
    True
    """
    n = state.checked_sample or 0
    if n == 0:
        return None
    return certify(state.energy[:n], state.overlap[:n], sample_every, state.checked_reference,
                   threshold, sigmas, min_effective)
