"""TOML configuration, validated once into frozen dataclasses.

Every key has a type, a range and a documented default (the README's config table is
generated from the same ``doc`` strings by ``config_table_markdown``).  The defaults are the
embedded laptop preset (``presets/laptop.toml``, the run without ``--config``), so a key left
out of a config means what the default run does; a test keeps the two equal.  Unknown keys are
errors with a "did you mean" suggestion; every problem is one line naming the file and key.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .errors import InputError
from .model import (DEFAULT_MODEL, FORMS, MODEL_NAMES, PAPER_DENSITY, PAPER_FRACTIONS, PairModel,
                    box_side, composition_counts, named)

PRESET_NAMES = ("laptop", "paper", "ci", "ka2d", "beta")
DEFAULT_PRESET = "laptop"


def _key(doc, default=dataclasses.MISSING, *, low=None, high=None, low_open=False,
         choices=None, number_ok=False, strings=False, pair_ok=False):
    """A config field with its documentation and allowed range.

    ``number_ok`` lets a string-valued key also take a number (kept as its string form);
    ``strings`` makes a list-valued key a list of strings instead of numbers; ``pair_ok`` lets
    a number-valued key also take a list of two numbers (kept as a tuple of floats).
    """
    meta = dict(doc=doc, low=low, high=high, low_open=low_open, choices=choices,
                number_ok=number_ok, strings=strings, pair_ok=pair_ok)
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SystemConfig:
    n: int = _key("number of particles N", 1000, low=3)
    composition: tuple = _key("one number per species of the model (the paper's: S, M, L), "
                              "counts summing to N or fractions summing to 1", PAPER_FRACTIONS)
    density: float = _key("number density N / L^2", PAPER_DENSITY, low=0.0, low_open=True)
    temperature: float = _key("temperature T (eps_LS / k_B)", 0.50, low=0.0, low_open=True)


@dataclass(frozen=True)
class MCConfig:
    delta_max: float = _key("side of the square of trial displacements (sigma_LS)", 0.12,
                            low=0.0, low_open=True, high=1.0)


@dataclass(frozen=True)
class EquilibrationConfig:
    sweeps: int = _key("MC sweeps to equilibrate each configuration; with until = "
                       "'certified' the budget", 204800, low=0)
    swap_probability: float = _key("fraction of trials that are species swaps S<->M, M<->L "
                                   "(equilibration only)", 0.2, low=0.0, high=1.0)
    sample_every: int = _key("sweeps between samples of U/N and the overlap q (certificate)",
                             100, low=1)
    until: str = _key("'certified': stop each chain once certified, at most `sweeps`; "
                      "'sweeps' or a number: exactly that many sweeps, certificate only "
                      "reported", "certified", number_ok=True)
    require_certificate: bool = _key("with until = 'certified', stop simulate if a "
                                     "configuration is not certified; false: keep it, "
                                     "flagged", True)
    certificate_threshold: float = _key("certified when q(middle, end) < this, in (0, 1)",
                                        0.1)
    certificate_sigmas: float = _key("stationary when the last two quarter means of U/N "
                                     "agree within this many standard errors (> 0)", 2.5)
    certificate_min_effective: float = _key("the energy test judges only a second half with "
                                            "at least this many effective samples (>= 2); "
                                            "fewer: 'too short', the chain goes on", 16.0)


@dataclass(frozen=True)
class DynamicsConfig:
    configurations: int = _key("C: independent equilibrium configurations", 4, low=1)
    replicas: int = _key("R: iso-configurational trajectories per configuration", 8, low=1)
    t_max: int = _key("last recorded time (MC sweeps)", 12000, low=1)
    per_decade: int = _key("log-spaced recording times per decade", 8, low=1)
    extra_times: tuple = _key("explicit extra recording times (sweeps), increasing, at most "
                              "t_max", ())


@dataclass(frozen=True)
class CheckpointConfig:
    every_sweeps: int = _key("checkpoint at least every this many sweeps of a work item", 2000,
                             low=1)
    every_minutes: float = _key("and at least every this many wall minutes", 5.0,
                                low=0.0, low_open=True)


@dataclass(frozen=True)
class RelaxationScanConfig:
    temperatures: tuple = _key("temperatures of the F_s^CR scan (paper Fig. 1); empty: no scan",
                               (0.8, 0.6))
    configurations: int = _key("configurations per temperature", 1, low=1)
    replicas: int = _key("trajectories per configuration", 2, low=1)
    t_max: int = _key("last recorded time of the scan (sweeps)", 12000, low=1)


@dataclass(frozen=True)
class SelectConfig:
    d_max: int = _key("largest number of selected features d", 15, low=1)
    k: int = _key("neighbours k in the information imbalance", 1, low=1)
    protocol: str = _key("'honest' (every selection on the training configurations only), "
                         "'paper' (the authors': II selections on the predicted configuration, "
                         "Lasso on the training ones) or 'both' side by side",
                         "both", choices=("honest", "paper", "both"))
    time: str = _key("propensity time: 'tau_alpha', a fraction of it ('0.5 tau_alpha') or a "
                     "number in the sim file's time unit (MC sweeps, or [import] time_unit); "
                     "p interpolated in log t between recorded times",
                     "tau_alpha", number_ok=True)
    second_time: str = _key("second propensity time (paper Fig. 10): a time or a fraction of "
                            "tau_alpha ('0.0125 tau_alpha' is the paper's); 0: none",
                            "0", number_ok=True)
    random_draws: int = _key("random feature selections per d (baseline)", 1000, low=1)
    lengths: tuple = _key("coarse-graining lengths l (sigma_LS)",
                          (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0))
    noise_seed: int = _key("seed of the Gaussian-noise control feature", 0, low=0)
    methods: tuple = _key("methods of the regression study (``mpi_glass.methods``): any of "
                          "supervised_ii, unsupervised_ii, lasso, random, dii, dii_unsupervised",
                          ("supervised_ii", "unsupervised_ii", "lasso", "random"))


@dataclass(frozen=True)
class DiiConfig:
    """The ``dii`` method (``select.methods``): DII optimisation and backward elimination."""
    lambda_rule: str = _key("'adaptive': lambda_i = factor x squared distance to i's k-th "
                            "neighbour in the weighted space (DADApy's default); 'global': "
                            "factor x its mean over i", "adaptive",
                            choices=("adaptive", "global"))
    lambda_factor: float = _key("lambda factor", 0.1, low=0.0, low_open=True)
    lambda_k: int = _key("neighbour k of lambda", 1, low=1)
    optimizer: str = _key("'adam' or 'gd' (full batch)", "adam", choices=("adam", "gd"))
    learning_rate: float = _key("initial learning rate (cosine decay to 0 in each "
                                "optimisation; weights start at 1)", 0.1, low=0.0,
                                low_open=True)
    epochs: int = _key("epochs of the first optimisation, all M features", 100, low=1)
    refit_epochs: int = _key("epochs after each backward-elimination step (warm start)", 20,
                             low=1)
    l1: float = _key("L1 strength (0: none)", 0.0, low=0.0)
    seed: int = _key("seed of the initial-weight jitter", 0, low=0)
    one_at_a_time: bool = _key("drop one feature per step above d_max too (Wild et al.; "
                               "false: half the excess per step, see README)", False)


IMPORT_FORMATS = ("lammps-dump", "gsd", "npz")


@dataclass(frozen=True)
class ImportConfig:
    """``[import]``: another engine's data as sim.h5 (``mpi_glass import``)."""
    format: str = _key("source format: 'lammps-dump' (text dump), 'gsd' (HOOMD-blue), one "
                       "file per replica, or 'npz' (per-configuration NPZ/HDF5 with "
                       "propensities)", "lammps-dump", choices=IMPORT_FORMATS)
    path: str = _key("source path pattern, relative to the config file: {c} configuration, "
                     "{r} replica (npz: {c} only), both counted from 0", "")
    configurations: int = _key("C: configurations imported", 1, low=1)
    replicas: int = _key("R: replicas (iso-configurational trajectories) per configuration",
                         1, low=1)
    time_unit: str = _key("unit of time of the sources, e.g. 'tau_LJ' or 'MC sweeps'",
                          "tau_LJ")
    time_per_step: float = _key("one timestep of the sources, in time_unit", 1.0, low=0.0,
                                low_open=True)
    types: tuple = _key("model species named by LAMMPS types 1, 2, ... (npz: integer types "
                        "from first_type); empty: the model's species in order (GSD and "
                        "named types map by name)", (), strings=True)
    temperature: float = _key("temperature of the imported data, for the report (0: not "
                              "given)", 0.0, low=0.0)
    start_tolerance: float = _key("the replicas of a configuration must start within this "
                                  "distance (sigma_LS) of each other", 1e-4, low=0.0)
    propensity_keys: tuple = _key("npz: the keys of the propensity arrays, one per time",
                                  (), strings=True)
    propensity_times: tuple = _key("npz: their times in time_unit, increasing multiples of "
                                   "time_per_step", ())
    tau_alpha: float = _key("npz: tau_alpha of the data in time_unit (0: unknown; then give "
                            "select.time as a time)", 0.0, low=0.0)
    box: float = _key("npz: box side, or [L_x, L_y], when the files hold no 'box' array "
                      "(0: from the files)", 0.0, low=0.0, pair_ok=True)
    first_type: int = _key("npz: the integer type code of the model's first species", 1,
                           low=0)


#: Sections of a simulate config that mean nothing for imported data (refused there).
_SIMULATION_ONLY = ("system", "mc", "equilibration", "dynamics", "checkpoint",
                    "relaxation_scan")

_SECTIONS = {
    "system": SystemConfig,
    "mc": MCConfig,
    "equilibration": EquilibrationConfig,
    "dynamics": DynamicsConfig,
    "checkpoint": CheckpointConfig,
    "relaxation_scan": RelaxationScanConfig,
    "select": SelectConfig,
    "dii": DiiConfig,
}


@dataclass(frozen=True)
class Config:
    name: str
    seed: int
    system: SystemConfig
    mc: MCConfig
    equilibration: EquilibrationConfig
    dynamics: DynamicsConfig
    checkpoint: CheckpointConfig
    relaxation_scan: RelaxationScanConfig
    select: SelectConfig
    dii: DiiConfig
    source: str = ""   #: the TOML text this config was read from (provenance)
    model: PairModel = DEFAULT_MODEL    #: the pair model (``[model]``)
    imported: ImportConfig | None = None   #: ``[import]``: a config for ``mpi_glass import``

    @property
    def counts(self):
        return composition_counts(self.system.n, self.system.composition,
                                  self.model.n_species)

    @property
    def equilibration_sweeps(self):
        """Sweeps of every equilibration chain: the budget, the fixed length or `until`."""
        until = self.equilibration.until
        return self.equilibration.sweeps if until in ("certified", "sweeps") else int(float(until))

    @property
    def certified_mode(self):
        return self.equilibration.until == "certified"

    @property
    def box(self):
        return box_side(self.system.n, self.system.density)

    def physics_dict(self):
        """Everything that changes the simulated data (used to refuse foreign checkpoints);
        of imported data: the seed, the model and the [import] table."""
        if self.imported is not None:
            return {"seed": self.seed, "model": self.model.to_dict(),
                    "import": dataclasses.asdict(self.imported)}
        return {"seed": self.seed, "model": self.model.to_dict(), **{
            name: dataclasses.asdict(getattr(self, name))
            for name in ("system", "mc", "equilibration", "dynamics", "relaxation_scan")}}


def _check_type(where, value, default, number_ok=False, strings=False, pair_ok=False):
    expected = type(default)
    if number_ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = repr(value)
    if pair_ok and isinstance(value, list):
        ok = len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not ok or not all(math.isfinite(v) for v in value):
            raise InputError(f"{where}: expected a number or a list of two numbers, got "
                             f"{value!r}")
        return tuple(float(v) for v in value)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is tuple and (strings or _strings(default)):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif expected is tuple:
        ok = isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, expected)
    if not ok:
        kind = ("a list of strings" if expected is tuple and (strings or _strings(default))
                else {tuple: "a list of numbers"}.get(expected, expected.__name__))
        raise InputError(f"{where}: expected {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    return value


def _strings(default):
    """Whether a key's default is a list of strings (its values must be too)."""
    return isinstance(default, tuple) and bool(default) and isinstance(default[0], str)


def _check_range(where, value, meta):
    values = value if isinstance(value, tuple) else (value,)
    low, high = meta["low"], meta["high"]
    for v in values:
        if isinstance(v, str):
            break
        if low is not None and (v < low or (meta["low_open"] and v == low)):
            bound = "> " if meta["low_open"] else ">= "
            raise InputError(f"{where}: must be {bound}{low:g}, got {v!r}")
        if high is not None and v > high:
            raise InputError(f"{where}: must be <= {high:g}, got {v!r}")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise InputError(f"{where}: must be one of {', '.join(meta['choices'])}, got {value!r}")


def _unknown_key_error(where, key, allowed):
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
    return InputError(f"{where}: unknown key '{key}'{hint}")


def _build_section(origin, section, cls, table):
    if not isinstance(table, dict):
        raise InputError(f"{origin}: [{section}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in fields:
            raise _unknown_key_error(f"{origin}: [{section}]", key, list(fields))
        f = fields[key]
        where = f"{origin}: {section}.{key}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value = _check_type(where, value, default, f.metadata["number_ok"],
                            f.metadata["strings"], f.metadata.get("pair_ok", False))
        _check_range(where, value, f.metadata)
        values[key] = value
    return cls(**values)


def _cross_checks(origin, cfg):
    """Checks that involve several keys."""
    try:
        cfg.counts
    except ValueError as exc:
        raise InputError(f"{origin}: system.composition: {exc}") from None
    if cfg.box < 2.0 * cfg.model.max_cutoff:
        raise InputError(f"{origin}: system.n: box side {cfg.box:.3g} is smaller than twice the "
                         f"largest cutoff {cfg.model.max_cutoff:.3g}; use more particles")
    extra = cfg.dynamics.extra_times
    if any(b <= a for a, b in zip(extra, extra[1:])) or any(t <= 0 for t in extra):
        raise InputError(f"{origin}: dynamics.extra_times: times must be positive and increasing")
    if any(t != int(t) for t in extra):
        raise InputError(f"{origin}: dynamics.extra_times: times are whole MC sweeps")
    _check_equilibration(origin, cfg.equilibration)
    temps = cfg.relaxation_scan.temperatures
    if any(t <= 0 for t in temps):
        raise InputError(f"{origin}: relaxation_scan.temperatures: must be > 0")
    if any(length <= 0 for length in cfg.select.lengths) or not cfg.select.lengths:
        raise InputError(f"{origin}: select.lengths: need positive lengths")
    if extra and extra[-1] > cfg.dynamics.t_max:
        raise InputError(f"{origin}: dynamics.extra_times: {extra[-1]:g} lies beyond "
                         f"dynamics.t_max = {cfg.dynamics.t_max} (the last recorded time); "
                         f"raise t_max or drop that time")
    _check_methods(origin, cfg.select.methods)
    time_spec(cfg.select.time, f"{origin}: select.time")
    time_spec(cfg.select.second_time, f"{origin}: select.second_time", zero_ok=True)


def check_what_select_needs(cfg, origin=None):
    """What ``select`` will need and the config already decides, checked by ``simulate``
    so that it never runs for hours to make a file select must refuse.  (Not checked when
    the config is read: select also reads imported trajectories, whose N and times are the
    data's.)"""
    origin = origin or cfg.name
    sel, dyn = cfg.select, cfg.dynamics
    if dyn.configurations < 2:
        raise InputError(f"{origin}: dynamics.configurations: select's leave-one-configuration-"
                         f"out regression needs at least 2, got {dyn.configurations}")
    pool = 6 * len(sel.lengths)
    if sel.d_max > pool:
        raise InputError(f"{origin}: select.d_max: {sel.d_max} exceeds the {pool} features "
                         f"of select.lengths (6 per length); lower d_max or add lengths")
    if sel.k >= cfg.system.n:
        raise InputError(f"{origin}: select.k: must be below the {cfg.system.n} particles "
                         f"(system.n), got {sel.k}")
    for key, zero_ok in (("time", False), ("second_time", True)):
        value, relative = time_spec(getattr(sel, key), f"{origin}: select.{key}", zero_ok)
        if not relative and value > 0 and not 1 <= value <= dyn.t_max:
            raise InputError(f"{origin}: select.{key}: {value:g} sweeps lies outside the "
                             f"recorded times 1 ... {dyn.t_max} (dynamics.t_max)")


def _check_methods(origin, methods):
    from .methods import REGISTRY
    unknown = [name for name in methods if name not in REGISTRY]
    if unknown or not methods or len(set(methods)) != len(methods):
        raise InputError(f"{origin}: select.methods: expected distinct names among "
                         f"{', '.join(REGISTRY)}, got {list(methods)!r}")


def time_spec(text, where="select.time", zero_ok=False):
    """A propensity-time key as (value, relative): 'tau_alpha' -> (1.0, True), '0.5 tau_alpha'
    -> (0.5, True), '1000' -> (1000.0, False) in the sim file's time unit.  The value must be > 0 (or 0, meaning
    "none", where ``zero_ok``); anything else is a one-line InputError naming ``where``."""
    words = str(text).split()
    relative = bool(words) and words[-1] == "tau_alpha"
    number = words[:-1] if relative else words
    try:
        value = float(number[0]) if number else (1.0 if relative else math.nan)
        if len(number) > 1 or not math.isfinite(value) or value < 0 or \
                (value == 0 and not (zero_ok and not relative)):
            raise ValueError
    except ValueError:
        allowed = ("'tau_alpha', a fraction like '0.5 tau_alpha' or a positive time (in the sim "
                   "file's time unit)")
        raise InputError(f"{where}: expected {allowed}{' (0: none)' if zero_ok else ''}, "
                         f"got {text!r}") from None
    return value, relative


def _check_name(origin, name):
    """``name`` names the output folder: a plain folder name, never a path out of it."""
    if (not isinstance(name, str) or name.strip() != name or name in ("", ".", "..")
            or any(c in name for c in "/\\\0")):
        raise InputError(f"{origin}: name: must be a plain folder name (no '/', '\\', '..' "
                         f"or surrounding spaces), got {name!r}")
    return name


def _check_equilibration(origin, eq):
    if not 0.0 < eq.certificate_threshold < 1.0:
        raise InputError(f"{origin}: equilibration.certificate_threshold: must be in (0, 1), "
                         f"got {eq.certificate_threshold!r}")
    if not eq.certificate_sigmas > 0.0:
        raise InputError(f"{origin}: equilibration.certificate_sigmas: must be > 0, "
                         f"got {eq.certificate_sigmas!r}")
    if not eq.certificate_min_effective >= 2.0:
        raise InputError(f"{origin}: equilibration.certificate_min_effective: must be >= 2 "
                         f"(effective samples), got {eq.certificate_min_effective!r}")
    if eq.until in ("certified", "sweeps"):
        return
    try:
        number = float(eq.until)
    except ValueError:
        number = -1.0
    if not (number >= 1 and number == int(number)):
        raise InputError(f"{origin}: equilibration.until: expected \"certified\", \"sweeps\" "
                         f"or a whole number of sweeps >= 1, got {eq.until!r}")


def parse_config(text, origin="<config>", name=None):
    """Validate TOML text into a Config; every problem raises a one-line InputError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{origin}: not valid TOML ({exc})") from None
    top = {"name": str, "seed": int, "model": dict}
    for key in data:
        if key not in top and key not in _SECTIONS and key != "import":
            raise _unknown_key_error(origin, key, list(top) + list(_SECTIONS) + ["import"])
    model = model_from_table(data.get("model", {}), origin)
    seed = data.get("seed", 2024)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"{origin}: seed: expected a non-negative integer, got {seed!r}")
    cfg_name = _check_name(origin, data.get("name", name or Path(origin).stem))
    sections = {s: _build_section(origin, s, cls, data.get(s, {})) for s, cls in _SECTIONS.items()}
    imported = None
    if "import" in data:
        imported = _import_section(origin, data)
    cfg = Config(name=cfg_name, seed=seed, source=text, model=model, imported=imported,
                 **sections)
    _cross_checks(origin, cfg)
    return cfg


def _import_section(origin, data):
    """[import], checked; the simulation-only sections are refused beside it."""
    for section in _SIMULATION_ONLY:
        if section in data:
            raise InputError(f"{origin}: [{section}] does not apply to imported data (they "
                             f"come from [import]); remove it")
    imp = _build_section(origin, "import", ImportConfig, data["import"])
    if not imp.path:
        raise InputError(f"{origin}: import.path: required, a path pattern such as "
                         f"\"runs/c{{c}}/r{{r}}.dump\"")
    if isinstance(imp.box, tuple) and min(imp.box) <= 0:
        raise InputError(f"{origin}: import.box: the sides [L_x, L_y] must both be > 0, got "
                         f"{list(imp.box)}; or give one side (0: from the files)")
    if imp.format == "npz":
        if not imp.propensity_keys or len(imp.propensity_keys) != len(imp.propensity_times):
            raise InputError(f"{origin}: import.propensity_keys, import.propensity_times: the "
                             f"npz format needs one time per propensity key")
        times = imp.propensity_times
        if any(t <= 0 for t in times) or any(b <= a for a, b in zip(times, times[1:])):
            raise InputError(f"{origin}: import.propensity_times: must be positive and "
                             f"increasing")
    return imp


#: The keys of ``[model]``: (meaning, default shown in the README).
MODEL_KEYS = {
    "name": ("a shipped model (" + ", ".join(f"'{n}'" for n in MODEL_NAMES) + "), or the name "
             "of the model that the keys below define", "sharma2024"),
    "species": ("species names, in the order of composition and of the sigma/epsilon rows "
                "(defines a new model with sigma and epsilon)", "['S', 'M', 'L']"),
    "sigma": ("sigma_ab, a symmetric K x K list of rows, > 0", "the paper's"),
    "epsilon": ("eps_ab, a symmetric K x K list of rows, >= 0", "the paper's"),
    "form": ("pair form: " + ", ".join(f"'{f}'" for f in FORMS) + " (see Model)",
             "lj/smooth"),
    "cutoff": ("r_c / sigma_ab: one number for every pair, or a symmetric K x K table of "
               "per-pair cutoffs", "2.5"),
    "inner": ("r_in / sigma_ab where lj/smooth's quartic begins, < cutoff (a number or a "
              "K x K table)", "2.0"),
}


def model_from_table(table, origin="<config>"):
    """The ``PairModel`` of a ``[model]`` table: ``name`` alone picks a shipped model;
    ``species``, ``sigma`` and ``epsilon`` (with ``form``, ``cutoff``, ``inner``) define one.

    Examples
    --------
    >>> model_from_table({"name": "ka2d"}).form
    'lj/poly'
    >>> model_from_table({"species": ["A"], "sigma": [[1.0]], "epsilon": [[1.0]],
    ...                   "form": "lj/cut"}).name
    'custom'
    """
    if not isinstance(table, dict):
        raise InputError(f"{origin}: [model] must be a table")
    for key in table:
        if key not in MODEL_KEYS:
            raise _unknown_key_error(f"{origin}: [model]", key, list(MODEL_KEYS))
    defining = [k for k in table if k != "name"]
    name = table.get("name", "sharma2024" if not defining else "custom")
    if not isinstance(name, str) or not name:
        raise InputError(f"{origin}: model.name: expected a non-empty string, got {name!r}")
    try:
        if not defining:
            return named(name)
        if name in MODEL_NAMES:
            raise InputError(f"model.name: '{name}' is a shipped model; give the model you "
                             f"define another name, or drop its other keys")
        missing = [k for k in ("species", "sigma", "epsilon") if k not in table]
        if missing:
            raise InputError(f"model.{missing[0]}: required to define a model (or give only "
                             f"model.name, one of {', '.join(MODEL_NAMES)})")
        _check_model_types(table)
        return PairModel(name=name, species_names=tuple(table["species"]),
                         sigma=table["sigma"], epsilon=table["epsilon"],
                         form=table.get("form", "lj/smooth"),
                         cutoff=table.get("cutoff", 2.5), inner=table.get("inner", 2.0))
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None


def _check_model_types(table):
    species = table["species"]
    if not (isinstance(species, list) and species and all(isinstance(s, str) for s in species)):
        raise InputError(f"model.species: expected a list of names, got {species!r}")
    for key in ("sigma", "epsilon"):
        rows = table[key]
        if not _is_rows_of_numbers(rows):
            raise InputError(f"model.{key}: expected a list of rows of numbers (a K x K "
                             f"table), got {rows!r}")
        if any(len(row) != len(rows) for row in rows) or len(rows) != len(species):
            raise InputError(f"model.{key}: expected a square {len(species)} x "
                             f"{len(species)} table (one row per species)")
    for key in ("cutoff", "inner"):     # the shape of a table is PairModel's to judge
        value = table.get(key, 1.0)
        if not (_is_number(value) or _is_rows_of_numbers(value)
                or (isinstance(value, list) and all(_is_number(v) for v in value))):
            raise InputError(f"model.{key}: expected a number or a K x K table of numbers, "
                             f"got {value!r}")
    if not isinstance(table.get("form", "lj/smooth"), str):
        raise InputError(f"model.form: expected one of {', '.join(FORMS)}")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_rows_of_numbers(rows):
    return isinstance(rows, list) and all(
        isinstance(row, list) and all(_is_number(v) for v in row) for row in rows)


def preset_text(name):
    """The TOML text of a packaged preset (laptop, paper, ci, ka2d, beta)."""
    if name not in PRESET_NAMES:
        raise InputError(f"unknown preset '{name}' ({_preset_hint(name)})")
    return resources.files("mpi_glass").joinpath("presets", f"{name}.toml").read_text()


def load_config(path=None):
    """Read a config file, or the embedded laptop default when path is None.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A TOML file, or the name of a packaged preset ('laptop', 'paper', 'ci').

    Returns
    -------
    Config
        Validated, frozen; every problem raises a one-line ``InputError`` naming the key.

    Examples
    --------
    >>> cfg = load_config("ci")
    >>> cfg.system.n, cfg.dynamics.configurations, round(cfg.box, 3)
    (150, 3, 12.103)
    """
    if path is None or (str(path) in PRESET_NAMES and not Path(path).exists()):
        name = DEFAULT_PRESET if path is None else str(path)
        return parse_config(preset_text(name), origin=f"preset {name}", name=name)
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such config file, and not a preset name "
                         f"({_preset_hint(str(path))})")
    from .safefs import check_regular_input
    check_regular_input(path, "TOML config")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a TOML text file (byte {exc.start} is not UTF-8); "
                         f"pass a TOML config or a preset name") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read config ({exc.strerror})") from None
    if not text.strip():
        raise InputError(f"{path}: empty config; pass no --config for the defaults (the "
                         f"{DEFAULT_PRESET} preset)")
    return parse_config(text, origin=str(path))


def _preset_hint(wanted):
    close = difflib.get_close_matches(wanted, PRESET_NAMES, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}presets: {', '.join(PRESET_NAMES)}"


def config_table_markdown():
    """The README's table of every key, its default and meaning."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |",
            "| `name` | file stem | run name, names the output folder (a plain folder name: "
            "no `/`, `\\`, `..`) |",
            "| `seed` | 2024 | root of every random stream |"]
    for section, cls in [*_SECTIONS.items(), ("import", ImportConfig)]:
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            shown = list(default) if isinstance(default, tuple) else default
            rows.append(f"| `{section}.{f.name}` | `{shown!r}` | {f.metadata['doc']} |")
    for key, (doc, default) in MODEL_KEYS.items():
        rows.append(f"| `model.{key}` | `{default}` | {doc} |")
    return "\n".join(rows)
