"""The file schema: every dataset and attribute of sim.h5, select.h5 and the chain checkpoints.

Each array is declared once here - path, dtype, shape in named dimensions, units and
description - and everything else is derived from the declarations: the typed readers and
writers (``SimData``, ``SelectData``, ``ChainState``), the HDF5 attributes ``units`` and
``description`` of every dataset, the dimension scales that attach times, configurations and
features to the arrays, and the README's file tables (``markdown_tables``).

A user without mpi_glass reads any array with its axes through plain h5py::

    with h5py.File("sim.h5") as f:
        p = f["propensity/p"]                      # (C, T, N), units p.attrs["units"]
        [dim.label for dim in p.dims]              # ['configuration', 'time', 'particle']
        times = p.dims[1][0][()]                   # the recording times, MC sweeps

No MPI here: a writer writes what its rank is handed; ``simfile`` decides, through the
distributor, whether every rank writes its slices collectively or the root writes all.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import __version__
from .dynamics import K_DEFAULT
from .errors import InputError
from .methods import REGISTRY, set_methods
from .safefs import check_regular_input
from .store import load_npz, save_npz_atomic

__all__ = ["SCHEMA_VERSION", "OLD_SIM_VERSIONS", "MC_TIME_UNIT", "MC_TIME_PER_STEP", "UNITS",
           "DIMS", "Dim", "Field", "Attr", "SIM_FIELDS", "SIM_SCALES", "SELECT_FIELDS", "SELECT_SCALES", "CHAIN_FIELDS", "CERTIFICATE_FIELDS",
           "FEATURE_UNITS", "PREDICTION_PROTOCOLS", "PREDICTION_METHODS", "PROVENANCE_ATTRS",
           "SIM_ATTRS", "SELECT_ATTRS", "SELECT_GROUP_ATTRS", "SimData", "SelectData",
           "ChainState", "EQUILIBRATE",
           "TRAJECTORY", "selection_array", "checkpoint_name", "provenance_attrs", "write_sim",
           "write_select", "open_file", "read_sim", "read_select", "markdown_tables",
           "readme_block", "update_readme", "README_BEGIN", "README_END"]

#: Version of the layout below; readers refuse files of another version with one line,
#: except the sim files of ``OLD_SIM_VERSIONS``, which are read as MC runs (their times were
#: MC sweeps; version 4 made the time unit a root attribute and opened sim.h5 to imports).
SCHEMA_VERSION = 4
OLD_SIM_VERSIONS = (3,)

UNITS = {
    "length": "sigma_LS",
    "energy": "epsilon_LS",
    "temperature": "epsilon_LS / k_B",
    "time": "MC sweeps (N trial moves)",
}
SWEEPS = "MC sweeps"
ONE = "1"   # dimensionless
#: The time of the dynamics: sim.h5's root attributes say its unit (``time_unit``: "MC
#: sweeps" for simulate, e.g. "tau_LJ" for imported MD) and the length of one recorded step.
STEPS = "steps: time = steps x time_per_step (root attributes)"
TIME = "time_unit (root attribute)"
MC_TIME_UNIT, MC_TIME_PER_STEP = SWEEPS, 1.0


@dataclass(frozen=True)
class Dim:
    """A named array dimension: its symbol in shapes and what one index along it is."""
    symbol: str
    meaning: str


DIMS = {
    "configuration": Dim("C", "equilibrium configuration c"),
    "replica": Dim("R", "iso-configurational trajectory r"),
    "time": Dim("T", "recording time (scale: /dynamics/times)"),
    "particle": Dim("N", "particle i"),
    "xy": Dim("2", "Cartesian component x, y"),
    "sample": Dim("S", "energy sample during equilibration (scale: energy_times)"),
    "feature": Dim("M", "structural feature (scale: /features/names)"),
    "step": Dim("d", "greedy step: number of selected features (scale: step)"),
    "slot": Dim("d", "place in a set of d features (-1 past the d-th)"),
    "scan_temperature": Dim("K", "relaxation-scan temperature"),
    "scan_configuration": Dim("C'", "configuration of one scan temperature"),
    "scan_time": Dim("T'", "recording time of the scan"),
    "pair": Dim("P", "species pair of a swap: S-M, S-L, M-L"),
    "word": Dim("4", "word of the xoshiro256** state"),
    "counter": Dim("4", "MC counter"),
    "counter_pair": Dim("2", "accepted, attempted"),
    "source": Dim("F", "imported source file"),
}


@dataclass(frozen=True)
class Field:
    """One array: where it lives, its type, its named dimensions, units and meaning.

    ``scale`` makes the dataset the HDF5 dimension scale of its (single) dimension; ``attrs``
    are constant attributes written beside ``units`` and ``description``.
    """
    path: str
    dtype: str
    dims: tuple
    units: str
    description: str
    scale: bool = False
    optional: bool = False
    attrs: dict = field(default_factory=dict)

    @property
    def shape_text(self):
        """The shape in symbols, as Python writes tuples: (C, T, N), (T,), ()."""
        symbols = [DIMS[d].symbol for d in self.dims]
        return "(" + ", ".join(symbols) + ("," if len(symbols) == 1 else "") + ")"

    def h5_dtype(self):
        return h5py.string_dtype() if self.dtype == "str" else np.dtype(self.dtype)


@dataclass(frozen=True)
class Attr:
    """One root attribute of a file."""
    name: str
    dtype: str
    units: str
    description: str


# ---------------------------------------------------------------------------------------
# The declarations
# ---------------------------------------------------------------------------------------

PER_PARTICLE_ENERGY = "epsilon_LS per particle"


def _certificate_field(name, dtype, dims, units, description, **extra):
    return Field(f"/configurations/certificate/{name}", dtype, dims, units, description,
                 **extra)


#: The equilibrium certificate of each configuration (``mpi_glass.equilibrium``); simulate
#: always writes it, "optional" lets files of other tools omit it.
CERTIFICATE_FIELDS = {
    "certificate_" + name: _certificate_field(name, *spec, optional=True) for name, spec in {
        "certified": ("bool", ("configuration",), ONE,
                      "stationary and decorrelated at the last check point: an equilibrium "
                      "sample"),
        "verdict": ("int8", ("configuration",), ONE,
                    "1 certified, 0 NOT certified, -1 too short: fewer than min_effective "
                    "effective U/N samples in the second half (neither pass nor failure)"),
        "stationary": ("bool", ("configuration",), ONE, "|drift| <= sigmas drift_error"),
        "drift": ("float64", ("configuration",), PER_PARTICLE_ENERGY,
                  "<U>/N over the last quarter minus over the third quarter of the run"),
        "drift_error": ("float64", ("configuration",), PER_PARTICLE_ENERGY,
                        "standard error of drift: variance and tau_int of the second half"),
        "sigmas": ("float64", (), ONE, "stationary when |drift| <= sigmas drift_error"),
        "tau_int": ("float64", ("configuration",), SWEEPS,
                    "integrated autocorrelation time of U/N over the second half (Sokal "
                    "window), pooled over the configurations when there are several; at "
                    "least tau_eq"),
        "effective_samples": ("float64", ("configuration",), ONE,
                              "second-half U/N samples / tau_int (0: too short to hold "
                              "Sokal's window)"),
        "min_effective": ("float64", (), ONE, "fewer effective samples: too short"),
        "rhat": ("float64", (), ONE,
                 "rank-normalised split-R-hat of U/N over the configurations' second halves "
                 "(Vehtari et al. 2021); NaN for one configuration"),
        "rhat_limit": ("float64", (), ONE,
                       "the chains disagree (none certified) when rhat exceeds this 99 % "
                       "point of its spread for equilibrium chains"),
        "decorrelated": ("bool", ("configuration",), ONE, "overlap < threshold"),
        "overlap": ("float64", ("configuration",), ONE,
                    "normalised species-resolved collective overlap q (radius a = 0.3 "
                    "sigma_LS, drift removed) between reference_sweeps and sweeps_examined: "
                    "1 identical, 0 unrelated"),
        "threshold": ("float64", (), ONE, "certified when overlap < threshold"),
        "tau_eq": ("float64", ("configuration",), SWEEPS,
                   "lag at which q falls to 1/e in the last interval (see tau_eq_kind)"),
        "tau_eq_kind": ("int8", ("configuration",), ONE,
                        "0 measured, -1 tau_eq is an upper bound, +1 a lower bound"),
        "sweeps": ("int64", ("configuration",), SWEEPS, "equilibration sweeps run"),
        "sweeps_examined": ("int64", ("configuration",), SWEEPS,
                            "length of the run at its last check point (0: never examined)"),
        "reference_sweeps": ("int64", ("configuration",), SWEEPS,
                             "time of the reference (middle) configuration of that check"),
        "overlap_series": ("float64", ("configuration", "sample"), ONE,
                           "q at energy_times against the previous check point's "
                           "configuration (NaN after the chain stopped)"),
        "swap_accepted": ("int64", ("configuration", "pair"), ONE,
                          "accepted swaps per species pair S-M, S-L, M-L"),
        "swap_attempted": ("int64", ("configuration", "pair"), ONE,
                           "attempted swaps per species pair S-M, S-L, M-L"),
    }.items()}

SIM_FIELDS = {
    "configuration_index": Field("/configurations/index", "int64", ("configuration",), ONE,
                                 "configuration number c (dimension scale)", scale=True),
    "positions": Field("/configurations/positions", "float64",
                       ("configuration", "particle", "xy"), UNITS["length"],
                       "equilibrated configurations, wrapped into [0, L)"),
    "species": Field("/configurations/species", "int8", ("configuration", "particle"), ONE,
                     "species code of each particle: 0 S, 1 M, 2 L",
                     attrs={"labels": "0 S, 1 M, 2 L"}),
    "energy_times": Field("/configurations/energy_times", "int64", ("sample",), SWEEPS,
                          "equilibration sweeps at which U/N was sampled (dimension scale)",
                          scale=True, optional=True),
    "energy_series": Field("/configurations/energy_series", "float64",
                           ("configuration", "sample"), PER_PARTICLE_ENERGY,
                           "potential energy U/N during equilibration (absent: imported)",
                           optional=True),
    **CERTIFICATE_FIELDS,
    "times": Field("/dynamics/times", "int64", ("time",), STEPS,
                   "recording times of the trajectories since t = 0, whole steps (MC "
                   "sweeps, or the source's time steps; dimension scale)", scale=True),
    "displacements": Field("/dynamics/displacements", "float32",
                           ("configuration", "replica", "time", "particle", "xy"),
                           UNITS["length"],
                           "raw unwrapped displacements r_i(t) - r_i(0) per replica (absent: "
                           "imported propensities)", optional=True),
    "fs_cr": Field("/dynamics/fs_cr", "float64", ("configuration", "time"), ONE,
                   "cage-relative F_s^CR(k, t), averaged over replicas",
                   optional=True, attrs={"k": K_DEFAULT, "k_units": "1 / sigma_LS"}),
    "tau_alpha": Field("/dynamics/tau_alpha", "float64", (), TIME,
                       "tau_alpha: F_s^CR averaged over configurations crosses 1/e "
                       "(interpolated in log t; NaN if never or unknown)"),
    "tau_alpha_per_configuration": Field("/dynamics/tau_alpha_per_configuration", "float64",
                                         ("configuration",), TIME,
                                         "tau_alpha of each configuration's F_s^CR",
                                         optional=True),
    "p": Field("/propensity/p", "float64", ("configuration", "time", "particle"),
               UNITS["length"], "propensity: iso-configurational mean |cage-relative "
               "displacement|"),
    "q": Field("/propensity/q", "float64", ("configuration", "time", "particle"), ONE,
               "bond-breaking propensity: iso-configurational mean n_i(t) / n_i(0)",
               optional=True),
    "scan_temperatures": Field("/relaxation_scan/temperatures", "float64",
                               ("scan_temperature",), UNITS["temperature"],
                               "temperatures of the F_s^CR scan (dimension scale)",
                               scale=True, optional=True),
    "scan_times": Field("/relaxation_scan/times", "int64", ("scan_time",), SWEEPS,
                        "recording times of the scan (dimension scale)", scale=True,
                        optional=True),
    "scan_fs_cr": Field("/relaxation_scan/fs_cr", "float64",
                        ("scan_temperature", "scan_configuration", "scan_time"), ONE,
                        "F_s^CR(k, t) per scan temperature and configuration", optional=True),
    "scan_tau_alpha": Field("/relaxation_scan/tau_alpha", "float64", ("scan_temperature",),
                            SWEEPS, "tau_alpha of each scan temperature", optional=True),
    "scan_certified": Field("/relaxation_scan/certified", "bool",
                            ("scan_temperature", "scan_configuration"), ONE,
                            "equilibrium certificate of each scan configuration", optional=True),
    "import_files": Field("/provenance/import/files", "str", ("source",), ONE,
                          "imported source files, as the [import] path pattern resolved them",
                          optional=True),
    "import_sizes": Field("/provenance/import/sizes", "int64", ("source",), "bytes",
                          "their sizes", optional=True),
    "import_sha256": Field("/provenance/import/sha256", "str", ("source",), ONE,
                           "their SHA-256 (hex)", optional=True),
}

#: Which dataset is the dimension scale of a dimension, per file.
SIM_SCALES = {"configuration": "configuration_index", "sample": "energy_times",
              "time": "times", "scan_temperature": "scan_temperatures",
              "scan_time": "scan_times"}

FEATURE_UNITS = "per feature: rho, z 1; phi sigma_LS^2; u epsilon_LS; psi6, theta 1"


def _selection_fields(method, what, symmetric):
    group = f"/{method}"
    fields = {
        f"{method}_selected": Field(f"{group}/selected", "int64", ("configuration", "step"), ONE,
                                    f"index into /features/names of the feature added at each "
                                    f"step of the {what} greedy selection", optional=True),
        f"{method}_names": Field(f"{group}/names", "str", ("configuration", "step"), ONE,
                                 "name of that feature", optional=True),
        f"{method}_delta_forward": Field(f"{group}/delta_forward", "float64",
                                         ("configuration", "step"), ONE,
                                         "Delta(X_d -> p)" if not symmetric
                                         else "Delta(X_full -> X_d)", optional=True),
        f"{method}_delta_backward": Field(f"{group}/delta_backward", "float64",
                                          ("configuration", "step"), ONE,
                                          "Delta(p -> X_d)" if not symmetric
                                          else "Delta(X_d -> X_full)", optional=True),
    }
    if symmetric:
        fields[f"{method}_delta_symmetric"] = Field(
            f"{group}/delta_symmetric", "float64", ("configuration", "step"), ONE,
            "(Delta(X_full -> X_d) + Delta(X_d -> X_full)) / sqrt 2", optional=True)
    return fields


SELECT_FIELDS = {
    "configuration_index": Field("/features/configuration", "int64", ("configuration",), ONE,
                                 "configuration number c (dimension scale)", scale=True),
    "feature_names": Field("/features/names", "str", ("feature",), ONE,
                           "feature names, e.g. theta_l2.0 (dimension scale)", scale=True),
    "feature_values": Field("/features/values", "float64",
                            ("configuration", "particle", "feature"), FEATURE_UNITS,
                            "raw (not standardised) structural features"),
    "step": Field("/selection/step", "int64", ("step",), ONE,
                  "number of selected features d = 1, 2, ... (dimension scale)", scale=True,
                  optional=True),
    **_selection_fields("supervised", "supervised", symmetric=False),
    **_selection_fields("unsupervised", "unsupervised", symmetric=True),
}
#: The regression study's feature sets: per protocol run, per method whose sets are recorded
#: (``methods.REGISTRY``), and each method's own fields.
PREDICTION_PROTOCOLS = ("honest", "paper")
PREDICTION_METHODS = set_methods()
SELECT_FIELDS.update({name: Field(*spec, optional=True) for method in REGISTRY.values()
                      for name, spec in method.fields.items()})
#: Attributes of the method groups (e.g. /dii): the parameters that made their arrays.
SELECT_GROUP_ATTRS = {group: tuple(Attr(*spec) for spec in specs)
                      for method in REGISTRY.values()
                      for group, specs in method.group_attrs.items()}
SELECT_FIELDS.update({
    f"prediction_{protocol}_{method}": Field(
        f"/prediction/{protocol}/{method}/features", "int16", ("configuration", "step", "slot"),
        ONE, f"{method} feature sets of the {protocol} protocol: row [c, d-1, :d] indexes "
        "(into /features/names) the d features that predicted configuration c; -1 pads",
        optional=True, attrs={"protocol": protocol, "method": method})
    for protocol in PREDICTION_PROTOCOLS for method in PREDICTION_METHODS})
SELECT_SCALES = {"configuration": "configuration_index", "feature": "feature_names",
                 "step": "step"}

#: The chain checkpoints: one .npz per chain (keys are the field paths).
CHAIN_FIELDS = {
    "positions": Field("positions", "float64", ("particle", "xy"), UNITS["length"],
                       "current positions, wrapped into [0, L)"),
    "images": Field("images", "int64", ("particle", "xy"), ONE,
                    "periodic image counters (unwrapped = positions + images L)"),
    "species": Field("species", "int8", ("particle",), ONE, "species codes (swaps change them)"),
    "rng": Field("rng", "uint64", ("word",), ONE, "xoshiro256** state"),
    "sweeps_done": Field("sweeps_done", "int64", (), SWEEPS, "sweeps completed"),
    "n_recorded": Field("n_recorded", "int64", (), ONE, "records taken so far"),
    "mc_counts": Field("mc_counts", "int64", ("counter",), ONE,
                       "accepted moves, trial moves, accepted swaps, trial swaps"),
    "done": Field("done", "bool", (), ONE, "the chain is finished"),
    "energy": Field("energy", "float64", ("sample",), PER_PARTICLE_ENERGY,
                    "equilibration only: U/N samples (NaN until taken)", optional=True),
    "overlap": Field("overlap", "float64", ("sample",), ONE,
                     "equilibration only: q against the reference at each sample",
                     optional=True),
    "ref_unwrapped": Field("ref_unwrapped", "float64", ("particle", "xy"), UNITS["length"],
                           "equilibration only: unwrapped positions of the reference "
                           "(the last check point)", optional=True),
    "ref_species": Field("ref_species", "int8", ("particle",), ONE,
                         "equilibration only: species of the reference", optional=True),
    "ref_sample": Field("ref_sample", "int64", (), ONE,
                        "equilibration only: sample count at the reference", optional=True),
    "checked_sample": Field("checked_sample", "int64", (), ONE,
                            "equilibration only: sample count of the last certificate "
                            "(0: none yet)", optional=True),
    "checked_reference": Field("checked_reference", "int64", (), ONE,
                               "equilibration only: its reference's sample count",
                               optional=True),
    "certified": Field("certified", "bool", (), ONE,
                       "equilibration only: the last certificate passed", optional=True),
    "pair_swaps": Field("pair_swaps", "int64", ("counter_pair", "pair"), ONE,
                        "equilibration only: accepted, attempted swaps per species pair",
                        optional=True),
    "start": Field("start", "float64", ("particle", "xy"), UNITS["length"],
                   "trajectory only: unwrapped positions at t = 0", optional=True),
    "records": Field("records", "float32", ("time", "particle", "xy"), UNITS["length"],
                     "trajectory only: displacements at the recording times", optional=True),
    "record_times": Field("record_times", "int64", ("time",), SWEEPS,
                          "trajectory only: the recording times of records", optional=True),
    "physics_json": Field("physics_json", "str", (), ONE,
                          "the keys that determine this chain (``continuation``); a "
                          "checkpoint of other physics is refused", optional=True),
}

PROVENANCE_ATTRS = (
    Attr("schema_version", "int", ONE, f"layout version of this file ({SCHEMA_VERSION})"),
    Attr("mpi_glass_version", "str", ONE, "package version that wrote the file"),
    Attr("mpi_glass_file", "str", ONE, "'sim' or 'select'"),
    Attr("config_toml", "str", ONE, "the full config the run used"),
    Attr("config_name", "str", ONE, "run name"),
    Attr("physics_json", "str", ONE, "the keys that change results (resume/overwrite checks)"),
    Attr("seed", "int", ONE, "root of every random stream"),
    Attr("temperature", "float", UNITS["temperature"], "temperature of the main ensemble"),
    Attr("n", "int", ONE, "number of particles N"),
    Attr("box", "float (2,)", UNITS["length"], "box sides L_x, L_y"),
    Attr("density", "float", "1 / sigma_LS^2", "number density N / (L_x L_y)"),
    Attr("sigma", "float (K, K)", UNITS["length"], "sigma_ab of the model (the paper's: S, M, L)"),
    Attr("epsilon", "float (K, K)", UNITS["energy"], "epsilon_ab of the model"),
    Attr("species_names", "str", ONE, "the model's species, comma-separated (S,M,L)"),
    Attr("model_json", "str", ONE, "the pair model (``model.PairModel.to_dict``: name, species, "
         "sigma, epsilon, form, cutoff, inner)"),
    Attr("model_digest", "str", ONE, "SHA-256 of the model's physics (``PairModel.digest``)"),
    Attr("units_json", "str", ONE, "units of length, energy, temperature, time"),
)
SIM_ATTRS = PROVENANCE_ATTRS + (
    Attr("time_unit", "str", ONE, "unit of every time of the dynamics: 'MC sweeps' "
         "(simulate) or [import] time_unit, e.g. 'tau_LJ'"),
    Attr("time_per_step", "float", "time_unit", "length of one step of /dynamics/times "
         "(1 for MC sweeps)"),
    Attr("imported_format", "str", ONE, "import only: [import] format of the sources "
         "(lammps-dump, gsd, npz); equilibrium certificates are then external"),
    Attr("io_path", "str", ONE, "'mpio' (collective parallel HDF5) or 'root-gather'"),
    Attr("ranks", "int", ONE, "MPI ranks of the run"),
    Attr("timings_json", "str", "s", "wall time of each stage"),
)
SELECT_ATTRS = PROVENANCE_ATTRS + (
    Attr("sim_file", "str", ONE, "the sim.h5 read"),
    Attr("sim_sha256", "str", ONE, "its SHA-256"),
    Attr("features_only", "bool", ONE, "written by select --features-only: features, no "
                                        "selections (a full select completes it)"),
    Attr("protocol", "str", ONE, "select.protocol of the regression study: honest, paper or "
         "both (absent with --features-only)"),
    Attr("propensity_time", "float", "time_unit", "the main propensity time (tau_alpha unless "
         "select.time says otherwise); p interpolated in log t (absent with --features-only)"),
    Attr("time_unit", "str", ONE, "unit of propensity_time, the sim file's time_unit"),
)


# ---------------------------------------------------------------------------------------
# Typed data
# ---------------------------------------------------------------------------------------

@dataclass
class SimData:
    """Contents of sim.h5 (see ``SIM_FIELDS``); ``displacements`` only when asked for."""
    positions: np.ndarray
    species: np.ndarray
    times: np.ndarray
    tau_alpha: float
    p: np.ndarray
    energy_times: np.ndarray | None = None
    energy_series: np.ndarray | None = None
    fs_cr: np.ndarray | None = None
    tau_alpha_per_configuration: np.ndarray | None = None
    q: np.ndarray | None = None
    displacements: np.ndarray | None = None
    scan_temperatures: np.ndarray | None = None
    scan_times: np.ndarray | None = None
    scan_fs_cr: np.ndarray | None = None
    scan_tau_alpha: np.ndarray | None = None
    scan_certified: np.ndarray | None = None
    certificate_certified: np.ndarray | None = None
    certificate_verdict: np.ndarray | None = None
    certificate_stationary: np.ndarray | None = None
    certificate_drift: np.ndarray | None = None
    certificate_drift_error: np.ndarray | None = None
    certificate_sigmas: float | None = None
    certificate_tau_int: np.ndarray | None = None
    certificate_effective_samples: np.ndarray | None = None
    certificate_min_effective: float | None = None
    certificate_rhat: float | None = None
    certificate_rhat_limit: float | None = None
    certificate_decorrelated: np.ndarray | None = None
    certificate_overlap: np.ndarray | None = None
    certificate_threshold: float | None = None
    certificate_tau_eq: np.ndarray | None = None
    certificate_tau_eq_kind: np.ndarray | None = None
    certificate_sweeps: np.ndarray | None = None
    certificate_sweeps_examined: np.ndarray | None = None
    certificate_reference_sweeps: np.ndarray | None = None
    certificate_overlap_series: np.ndarray | None = None
    certificate_swap_accepted: np.ndarray | None = None
    certificate_swap_attempted: np.ndarray | None = None
    import_files: np.ndarray | None = None
    import_sizes: np.ndarray | None = None
    import_sha256: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def configuration_index(self):
        return np.arange(len(self.positions), dtype=np.int64)

    @property
    def time_unit(self):
        """Unit of every time of the dynamics ("MC sweeps" in files before schema 4)."""
        return str(self.attrs.get("time_unit", MC_TIME_UNIT))

    @property
    def time_per_step(self):
        return float(self.attrs.get("time_per_step", MC_TIME_PER_STEP))

    @property
    def physical_times(self):
        """The recording times in ``time_unit`` (float64): steps x time_per_step."""
        return np.asarray(self.times, dtype=np.float64) * self.time_per_step

    @property
    def imported(self):
        """Whether the dynamics came from another engine (``mpi_glass import``)."""
        return "imported_format" in self.attrs

    @property
    def box(self):
        """The box sides (L_x, L_y), float64 (2,): equal for simulate's square box and for
        files of any schema before rectangles (which stored (L, L) or one L)."""
        sides = np.asarray(self.attrs["box"], dtype=np.float64).ravel()
        return np.broadcast_to(sides[:2] if sides.size > 1 else sides, (2,)).copy()

    @property
    def temperature(self):
        return float(self.attrs["temperature"]) if "temperature" in self.attrs else None

    @property
    def has_scan(self):
        return self.scan_fs_cr is not None


#: SelectData's own attributes; every other SELECT_FIELDS entry (the registry methods'
#: feature sets and fields) lives in ``SelectData.arrays``.
_SELECT_CORE = ("feature_values", "feature_names", "supervised_selected", "supervised_names",
                "supervised_delta_forward", "supervised_delta_backward",
                "unsupervised_selected", "unsupervised_names", "unsupervised_delta_forward",
                "unsupervised_delta_backward", "unsupervised_delta_symmetric")


@dataclass
class SelectData:
    """Contents of select.h5 (see ``SELECT_FIELDS``); selections are None with
    ``--features-only``.  Row c of every (C, d) array is configuration c.  The methods'
    arrays (``prediction_<protocol>_<method>``, ``dii_weights``, ...) are in ``arrays`` and
    read as attributes too; ``group_attrs`` holds the attributes of method groups (/dii)."""
    feature_values: np.ndarray
    feature_names: np.ndarray
    supervised_selected: np.ndarray | None = None
    supervised_names: np.ndarray | None = None
    supervised_delta_forward: np.ndarray | None = None
    supervised_delta_backward: np.ndarray | None = None
    unsupervised_selected: np.ndarray | None = None
    unsupervised_names: np.ndarray | None = None
    unsupervised_delta_forward: np.ndarray | None = None
    unsupervised_delta_backward: np.ndarray | None = None
    unsupervised_delta_symmetric: np.ndarray | None = None
    arrays: dict = field(default_factory=dict)
    group_attrs: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def __getattr__(self, name):        # only called for names that are not attributes
        if name in SELECT_FIELDS and name not in _SELECT_CORE:
            return self.__dict__.get("arrays", {}).get(name)
        raise AttributeError(name)

    @property
    def configuration_index(self):
        return np.arange(len(self.feature_values), dtype=np.int64)

    @property
    def step(self):
        if self.supervised_selected is None:
            return None
        return np.arange(1, self.supervised_selected.shape[1] + 1, dtype=np.int64)

    @classmethod
    def from_results(cls, values, names, results=None, attrs=None):
        """From the study's per-configuration lists (``study.run_study``) to (C, d) arrays."""
        data = cls(np.asarray(values), np.asarray(names, dtype=str), attrs=dict(attrs or {}))
        for name in SELECT_FIELDS if results is not None else ():
            method, _, key = name.partition("_")    # e.g. supervised, delta_forward
            if method in ("supervised", "unsupervised"):
                setattr(data, name, np.array([entry[key] for entry in results[method]]))
        by_protocol = (results or {}).get("regression_by_protocol", {})
        for protocol, study in by_protocol.items():
            for method in PREDICTION_METHODS:
                if method in study:
                    data.arrays[f"prediction_{protocol}_{method}"] = \
                        selection_array(study[method]["selected"])
        targets = {"dii": "p", "dii_unsupervised": "X_full"}
        for name, target in targets.items() if results is not None else ():
            entries = results.get(name)
            if not entries:
                continue
            for key in ("weights", "loss", "order"):
                data.arrays[f"{name}_{key}"] = np.array([e[key] for e in entries])
            data.group_attrs[f"/{name}"] = dict(results["dii_settings"], target=target,
                                                standardise="per configuration",
                                                ranks="mid-ranks")
        if by_protocol:
            data.attrs.update(protocol=results["protocol"],
                              propensity_time=float(results["propensity_time"]["main"]))
        return data


def selection_array(selections):
    """Per-fold feature sets ``selected[c][d - 1]`` (d indices each) as a (C, D, D) int16
    array padded with -1: row [c, d - 1, :d] holds the features that predicted c with d.

    Examples
    --------
    >>> selection_array([[[2], [2, 0]]]).tolist()            # one fold, d = 1 and 2
    [[[2, -1], [2, 0]]]
    """
    C, D = len(selections), len(selections[0])
    out = np.full((C, D, D), -1, dtype=np.int16)
    for c, sets in enumerate(selections):
        for d, chosen in enumerate(sets, start=1):
            out[c, d - 1, :d] = chosen
    return out


@dataclass
class ChainState:
    """The state of one Markov chain, as checkpointed (see ``CHAIN_FIELDS``)."""
    positions: np.ndarray
    images: np.ndarray
    species: np.ndarray
    rng: np.ndarray
    sweeps_done: int = 0
    n_recorded: int = 0
    mc_counts: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))
    done: bool = False
    energy: np.ndarray | None = None
    overlap: np.ndarray | None = None
    ref_unwrapped: np.ndarray | None = None
    ref_species: np.ndarray | None = None
    ref_sample: int | None = None
    checked_sample: int | None = None
    checked_reference: int | None = None
    certified: bool | None = None
    pair_swaps: np.ndarray | None = None
    start: np.ndarray | None = None
    records: np.ndarray | None = None
    record_times: np.ndarray | None = None
    physics_json: str | None = None

    def save(self, path):
        """Write atomically (temporary name, fsync, rename) with the schema version."""
        arrays = {name: np.asarray(getattr(self, name))
                  for name in CHAIN_FIELDS if getattr(self, name) is not None}
        save_npz_atomic(path, schema_version=np.int64(SCHEMA_VERSION), **arrays)

    @classmethod
    def load(cls, path):
        """Read a checkpoint; one-line InputError for one of another schema version."""
        arrays = load_npz(path)
        version = int(arrays.pop("schema_version", 1))
        if version != SCHEMA_VERSION and version not in OLD_SIM_VERSIONS:   # same layout
            raise InputError(_version_message(path, version, "simulate"))
        scalars = {"sweeps_done": int, "n_recorded": int, "done": bool, "ref_sample": int,
                   "checked_sample": int, "checked_reference": int, "certified": bool,
                   "physics_json": str}
        return cls(**{name: scalars[name](value) if name in scalars else value
                      for name, value in arrays.items()})


#: The two kinds of chain: equilibration of a configuration, trajectory of a replica.
EQUILIBRATE, TRAJECTORY = 0, 1


def checkpoint_name(stage, ensemble, c, r=-1):
    """File name of a chain's checkpoint: equilibration of configuration c of an ensemble,
    or its trajectory r.

    Examples
    --------
    >>> checkpoint_name(EQUILIBRATE, 0, 3), checkpoint_name(TRAJECTORY, 0, 3, r=1)
    ('eq_e0_c3.npz', 'tr_e0_c3_r1.npz')
    """
    if stage == EQUILIBRATE:
        return f"eq_e{ensemble}_c{c}.npz"
    return f"tr_e{ensemble}_c{c}_r{r}.npz"


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

def provenance_attrs(cfg, kind, extra=None):
    """Root attributes shared by every file the package writes (``PROVENANCE_ATTRS``);
    ``extra`` adds the file's own (a ``time_unit`` there also goes into ``units_json``)."""
    time_unit = (extra or {}).get("time_unit", MC_TIME_UNIT)
    units = UNITS if time_unit == MC_TIME_UNIT else dict(UNITS, time=time_unit)
    attrs = {
        "schema_version": SCHEMA_VERSION,
        "mpi_glass_version": __version__,
        "mpi_glass_file": kind,
        "config_toml": cfg.source,
        "config_name": cfg.name,
        "physics_json": json.dumps(cfg.physics_dict(), sort_keys=True),
        "seed": cfg.seed,
        "temperature": cfg.system.temperature,
        "n": cfg.system.n,
        "box": np.array([cfg.box, cfg.box]),
        "density": cfg.system.density,
        "sigma": np.asarray(cfg.model.sigma),
        "epsilon": np.asarray(cfg.model.epsilon),
        "species_names": ",".join(cfg.model.species_names),
        "model_json": json.dumps(cfg.model.to_dict(), sort_keys=True),
        "model_digest": cfg.model.digest(),
        "units_json": json.dumps(units),
    }
    attrs.update(extra or {})
    return attrs


def _write(f, fields, scales, data, empty=None, fixed_strings=False):
    """Create every field present in ``data`` (or shaped in ``empty``), then attach scales.

    ``empty`` maps field names to shapes of datasets created without values, for slices
    written later (``f[path][c] = ...``).  Every rank of a collective (mpio) write calls
    this with identical arguments: all of it is metadata plus the small arrays.
    ``fixed_strings`` stores text as fixed-length UTF-8: parallel HDF5 cannot write
    variable-length strings, and one layout for both write paths keeps their files equal.
    """
    empty = empty or {}
    for key, value in data.attrs.items():
        f.attrs[key] = value
    written = {}
    group_attrs = getattr(data, "group_attrs", {})
    for name, spec in fields.items():
        value = getattr(data, name, None)     # scales like the configuration index
        if value is None and name not in empty:  # are properties of the data classes
            continue
        if value is None:
            dset = f.create_dataset(spec.path, shape=empty[name], dtype=spec.h5_dtype())
        else:
            dtype = _fixed_string_dtype(value) if fixed_strings and spec.dtype == "str" \
                else spec.h5_dtype()
            dset = f.create_dataset(spec.path, data=np.asarray(value, dtype=dtype))
        dset.attrs["units"] = spec.units
        dset.attrs["description"] = spec.description
        for key, attr in spec.attrs.items():
            dset.attrs[key] = attr
        written[name] = dset
    for group, attrs in group_attrs.items():
        for key, value in attrs.items():
            f.require_group(group).attrs[key] = value
    _attach_scales(fields, scales, written)


def _fixed_string_dtype(values):
    """A fixed-length UTF-8 dtype wide enough for every string in ``values``."""
    width = max((len(str(v).encode()) for v in np.asarray(values, dtype=object).flat),
                default=1)
    return h5py.string_dtype("utf-8", length=max(width, 1))


def _attach_scales(fields, scales, written):
    for name, dset in written.items():
        if fields[name].scale:
            dset.make_scale(fields[name].dims[0])
    for name, dset in written.items():
        for axis, dim in enumerate(fields[name].dims):
            dset.dims[axis].label = dim
            scale = scales.get(dim)
            if scale in written and scale != name:
                dset.dims[axis].attach_scale(written[scale])


def write_sim(f, data, displacement_shape=None):
    """Write a ``SimData`` into an open, empty HDF5 file.

    Parameters
    ----------
    f : h5py.File
        Opened for writing; under the collective (mpio) path every rank calls this with
        identical arguments.
    data : SimData
        The contents; ``data.attrs`` become the root attributes.
    displacement_shape : tuple, optional
        (C, R, T, N, 2): with ``data.displacements`` None, /dynamics/displacements is created
        empty for the owners of each configuration to fill (``f[path][c] = block``).

    Examples
    --------
    >>> with h5py.File("sim.h5", "w") as f:                    # doctest: +SKIP
    ...     write_sim(f, data)
    """
    empty = {"displacements": displacement_shape} if displacement_shape else {}
    _write(f, SIM_FIELDS, SIM_SCALES, data, empty, fixed_strings=True)


def write_select(f, data):
    """Write a ``SelectData`` into the open file ``f``.

    Parameters
    ----------
    f : h5py.File
        Opened for writing, empty.
    data : SelectData
        The contents; ``data.attrs`` become the root attributes.

    Examples
    --------
    A round trip through a temporary file (features only, no selections):

    >>> import os, tempfile
    >>> data = SelectData(np.zeros((2, 5, 3)), np.array(["a", "b", "c"]),
    ...                   attrs={"mpi_glass_file": "select", "schema_version": SCHEMA_VERSION})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "select.h5")
    ...     with h5py.File(path, "w") as f:
    ...         write_select(f, data)
    ...     back = read_select(path)
    >>> back.feature_names.tolist(), back.feature_values.shape
    (['a', 'b', 'c'], (2, 5, 3))
    """
    _write(f, SELECT_FIELDS, SELECT_SCALES, data)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------

def _version_message(path, version, command):
    return (f"{path}: written with file schema {version}, this mpi_glass reads schema "
            f"{SCHEMA_VERSION}; rerun 'mpi_glass {command} --force' to rewrite it")


def open_file(path, kind):
    """Open an mpi_glass file for reading; one-line InputErrors for foreign or old files.

    Parameters
    ----------
    path : str or Path
        The file.
    kind : {"sim", "select"}
        The kind it must be (root attribute ``mpi_glass_file``).

    Returns
    -------
    h5py.File
        Open read-only; the caller closes it.

    Examples
    --------
    >>> open_file("no/such/sim.h5", "sim")
    Traceback (most recent call last):
    ...
    mpi_glass.errors.InputError: no/such/sim.h5: no such file (run 'mpi_glass simulate' first?)
    """
    path = Path(path)
    hint = "simulate" if kind == "sim" else "select"
    if not path.exists():
        raise InputError(f"{path}: no such file (run 'mpi_glass {hint}' first?)")
    check_regular_input(path, f"{kind}.h5")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not a readable HDF5 file (truncated or foreign); rerun "
                         f"'mpi_glass {hint} --force' to write it again") from None
    if _text(f.attrs.get("mpi_glass_file")) != kind:
        f.close()
        raise InputError(f"{path}: not an mpi_glass {kind} file")
    version = int(f.attrs.get("schema_version", 1))
    if version != SCHEMA_VERSION and not (kind == "sim" and version in OLD_SIM_VERSIONS):
        f.close()
        raise InputError(_version_message(path, version, hint))
    return f


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _read(f, path, cls, fields, skip=()):
    """{field: array} of the dataclass ``cls`` from an open file, plus its root ``attrs``."""
    wanted = {fd.name for fd in dataclasses.fields(cls)} - set(skip)
    into_arrays = "arrays" in wanted
    values = {"arrays": {}} if into_arrays else {}
    for name, spec in fields.items():
        if name not in wanted and not (into_arrays and not spec.scale and
                                       name not in _SELECT_CORE and name in SELECT_FIELDS):
            continue               # derived scales (configuration index, step)
        if spec.path not in f:
            if spec.optional:
                continue
            f.close()
            raise InputError(f"{path}: missing dataset {spec.path}")
        dset = f[spec.path]
        value = dset.asstr()[()] if spec.dtype == "str" else dset[()]
        value = np.asarray(value, dtype=str) if spec.dtype == "str" else value
        if name in wanted:
            values[name] = value
        else:
            values["arrays"][name] = value
    if "group_attrs" in wanted:
        values["group_attrs"] = {group: {key: _text(v) for key, v in f[group].attrs.items()}
                                 for group in SELECT_GROUP_ATTRS if group in f}
    values["attrs"] = {key: _text(value) for key, value in f.attrs.items()}
    return values


def read_sim(path, displacements=False):
    """sim.h5 as a ``SimData``.

    Parameters
    ----------
    path : str or Path
        A sim.h5 written by ``mpi_glass simulate``.
    displacements : bool
        Also load /dynamics/displacements, (C, R, T, N, 2) float32 - the largest array.

    Returns
    -------
    SimData

    Raises
    ------
    InputError
        One line naming the file: missing, not HDF5, not a sim file, another schema version,
        or a dataset missing.

    Examples
    --------
    >>> data = read_sim("mpi_glass_out/laptop/sim.h5")         # doctest: +SKIP
    >>> data.p.shape, data.times[-1], data.tau_alpha             # doctest: +SKIP
    """
    with open_file(path, "sim") as f:
        values = _read(f, path, SimData, SIM_FIELDS,
                       skip=() if displacements else ("displacements",))
    values["tau_alpha"] = float(values["tau_alpha"])
    return SimData(**values)


def read_select(path):
    """select.h5 as a ``SelectData`` (names as ``str``, selections as (C, d) arrays).

    Raises
    ------
    InputError
        As ``read_sim``.

    Examples
    --------
    >>> sel = read_select("mpi_glass_out/laptop/select.h5")    # doctest: +SKIP
    >>> # sel.supervised_names[c]: the features selected for configuration c, in order
    >>> sel.supervised_names[0]              # doctest: +SKIP

    A round trip is shown in ``write_select``.  A missing file is one line:

    >>> read_select("no/such/select.h5")
    Traceback (most recent call last):
    ...
    mpi_glass.errors.InputError: no/such/select.h5: no such file (run 'mpi_glass select' first?)
    """
    with open_file(path, "select") as f:
        return SelectData(**_read(f, path, SelectData, SELECT_FIELDS))


# ---------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------

def _field_table(fields):
    rows = ["| dataset | shape | dtype | units | meaning |", "| --- | --- | --- | --- | --- |"]
    for spec in fields.values():
        note = " (optional)" if spec.optional else ""
        meaning = spec.description.replace("|", "\\|")
        rows.append(f"| `{spec.path}` | {spec.shape_text} | {spec.dtype} | {spec.units} | "
                    f"{meaning}{note} |")
    return rows


def _attr_table():
    rows = ["| root attribute | file | type | units | meaning |", "| --- | --- | --- | --- | --- |"]
    for attr in SIM_ATTRS + SELECT_ATTRS[len(PROVENANCE_ATTRS):]:
        where = ("both" if attr in PROVENANCE_ATTRS
                 else "sim.h5" if attr in SIM_ATTRS else "select.h5")
        rows.append(f"| `{attr.name}` | {where} | {attr.dtype} | {attr.units} | "
                    f"{attr.description} |")
    return rows


def _group_attr_table():
    rows = ["| group attribute | type | units | meaning |", "| --- | --- | --- | --- |"]
    for group, attrs in SELECT_GROUP_ATTRS.items():
        rows += [f"| `{group}` `{attr.name}` | {attr.dtype} | {attr.units} | "
                 f"{attr.description} |" for attr in attrs]
    return rows


def markdown_tables():
    """The README's file tables, generated from the declarations above.

    Examples
    --------
    >>> "| `/dynamics/times` |" in markdown_tables()
    True
    """
    dims = ", ".join(f"{d.symbol} {name}" for name, d in DIMS.items())
    lines = [
        f"Every dataset carries the attributes `units` and `description`, and its dimensions "
        f"are labelled ({dims}); times, configurations, features and greedy steps are "
        f"attached as HDF5 dimension scales. Root attribute `schema_version` = "
        f"{SCHEMA_VERSION}: other versions are refused with a one-line message, except sim "
        f"files of schema {', '.join(map(str, OLD_SIM_VERSIONS))}, read as MC runs (times in "
        f"MC sweeps). Times of the dynamics are whole steps (`/dynamics/times`); the root "
        f"attributes `time_unit` and `time_per_step` give their unit and length.",
        "",
        "`sim.h5` (written by `simulate`):", "", *_field_table(SIM_FIELDS), "",
        "`select.h5` (written by `select`; row c of every (C, d) array is configuration c):",
        "", *_field_table(SELECT_FIELDS), "",
        "Attributes of method groups in `select.h5` (the parameters that made their arrays):",
        "", *_group_attr_table(), "",
        "Root attributes of both files:", "", *_attr_table(), "",
        "Chain checkpoints (`sim.h5.checkpoint/eq_e{e}_c{c}.npz` and "
        "`tr_e{e}_c{c}_r{r}.npz`, one per chain, plus `schema_version`):",
        "", *_field_table(CHAIN_FIELDS),
    ]
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- schema tables: generated by `python -m mpi_glass.schema --update README.md` -->"
README_END = "<!-- end of schema tables -->"


def readme_block(text):
    r"""The generated part of a README (between the markers), or None.

    Examples
    --------
    >>> readme_block(f"intro\n{README_BEGIN}\n| table |\n{README_END}\n")
    '| table |\n'
    >>> print(readme_block("no markers"))
    None
    """
    match = re.search(re.escape(README_BEGIN) + r"\n(.*?)" + re.escape(README_END), text,
                      re.S)
    return match.group(1) if match else None


def update_readme(path):
    """Rewrite the generated tables of the README at ``path`` in place."""
    path = Path(path)
    text = path.read_text()
    old = readme_block(text)
    if old is None:
        raise InputError(f"{path}: no schema-table markers ({README_BEGIN})")
    path.write_text(text.replace(README_BEGIN + "\n" + old, README_BEGIN + "\n"
                                 + markdown_tables(), 1))


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["--update"]:
        update_readme(sys.argv[2])
    else:
        sys.stdout.write(markdown_tables())
