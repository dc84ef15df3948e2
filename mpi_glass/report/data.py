"""Data marshalling of the report: what the figures and report.md read.

``summary_from_simulation`` and ``figure_arrays`` build the arrays of figure_data.npz (see
the package docstring for its keys); ``jsonable`` turns the study's results into plain JSON;
the small readers below (``num``, ``arr``, ``mean_std``, ``studies``, ``time_note``) read
report.json back for the figures and the markdown, older files included.
"""
from __future__ import annotations

import math

import numpy as np

from ..methods import REGISTRY, protocol_methods, set_methods
from ..model import DEFAULT_MODEL, SPECIES_NAMES

DATA_FILE = "figure_data.npz"
#: Labels of the study's methods (``methods.REGISTRY``), in plot order.
METHOD_LABELS = {name: method.label for name, method in REGISTRY.items()}
#: The methods whose selections differ between protocols (Lasso and random do not).
II_METHODS = protocol_methods()
#: The methods whose feature sets are listed (all but random).
SET_METHODS = set_methods()
SPECIES = SPECIES_NAMES


def summary_from_simulation(data, features, names, results, at_main, configuration=0,
                            feature="theta_l2.0", temperature=None, model=DEFAULT_MODEL):
    """``sim_summary`` from sim.h5's ``schema.SimData``, the raw features (C, N, M), their
    names, the study's results and the propensities at the main time, {"p": (C, N), "q":
    (C, N)} (as interpolated by ``select.propensity_at``).  The temperature comes from the
    argument, else from the file.

    If ``feature`` is not in the pool, the feature with the largest mean |rho(X, p)| is
    mapped instead.  ``model`` gives the species' names and drawn disc sizes.
    """
    c = int(configuration)
    temperature = data.temperature if temperature is None else temperature
    names = list(names)
    if feature not in names:
        table = results["single_feature"]
        feature = max(names, key=lambda name: abs(table[name]["pearson"]))
    summary = {"times": data.physical_times, "time_unit": data.time_unit,
               "fs_cr": data.fs_cr, "tau_alpha": data.tau_alpha,
               "temperature": np.nan if temperature is None else temperature,
               "configuration": c, "positions": data.positions[c],
               "species_names": np.array(model.species_names),
               "species_sizes": np.array(model.disc_diameters),
               "species": data.species[c], "box": data.box,
               "p": at_main["p"][c],
               "q": None if at_main["q"] is None else at_main["q"][c],
               "feature": features[c, :, names.index(feature)], "feature_name": feature}
    if results.get("predictions") is not None:
        summary["p_hat"] = results["predictions"]["p_hat"][c]
    if data.has_scan:
        summary.update(scan_temperatures=data.scan_temperatures, scan_times=data.scan_times,
                       scan_fs_cr=data.scan_fs_cr, scan_tau_alpha=data.scan_tau_alpha)
    return summary


def figure_arrays(sim_summary, predictions=None):
    """The npz payload: the sim_summary as arrays, p_hat filled from the predictions."""
    arrays = {key: np.asarray(value) for key, value in (sim_summary or {}).items()
              if value is not None}
    if predictions is not None:
        p_hat_all = np.asarray(predictions["p_hat"])
        arrays["p_hat_all"] = p_hat_all
        arrays["p_hat_method"] = np.asarray(predictions["method"])
        arrays["p_hat_d"] = np.asarray(predictions["d"])
        if "protocol" in predictions:
            arrays["p_hat_protocol"] = np.asarray(predictions["protocol"])
        if "p_hat" not in arrays and "configuration" in arrays:
            arrays["p_hat"] = p_hat_all[int(arrays["configuration"])]
    return arrays


def load_figure_data(path):
    """The npz sidecar as a dict of arrays (0-d arrays for scalars and strings)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def jsonable(value):
    """Plain JSON types: numpy arrays and scalars to lists and numbers, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def num(x):
    """JSON number or null -> float (NaN for null)."""
    return np.nan if x is None else float(x)


def arr(values):
    """JSON list (or list of lists) with nulls -> float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float) \
        if not (values and isinstance(values[0], list)) else np.array([arr(v) for v in values])


def mean_std(entries, key):
    """Mean and standard deviation over per-configuration entries of the list ``key``."""
    values = np.array([arr(entry[key]) for entry in entries])
    return np.nanmean(values, axis=0), np.nanstd(values, axis=0)


def studies_of(doc, label=None):
    """{protocol: regression summary} at the main time (label None) or at ``label``; read
    from ``regression[_at]_by_protocol``, or the single ``regression[_at]`` of older files."""
    if label is None:
        return doc.get("regression_by_protocol") or {doc["protocol"]: doc["regression"]}
    by = doc.get("regression_at_by_protocol")
    if by:
        return {protocol: at[label] for protocol, at in by.items()}
    return {doc["protocol"]: doc["regression_at"][label]}


def species_groups(doc):
    """The species scored separately in report.json's regression (the model's names, in
    order; empty without species)."""
    study = next(iter(studies_of(doc).values()), {})
    for block in study.values():
        if isinstance(block, dict) and "species" in block:
            return tuple(block["species"])
    return ()


def time_note(doc, label=None):
    """'t = ... sweeps (... tau_alpha)' of the propensity time ``label`` (default: the main
    one), in the run's time unit (report.json ``time_unit``; MC sweeps in older files)."""
    times = doc.get("propensity_time") or {}
    label = label or (doc.get("time_labels") or ["main"])[0]
    if label not in times:
        return "t = tau_alpha" if label == "main" else f"time '{label}'"
    t, tau = times[label], doc.get("tau_alpha")
    ratio = f" = {t / tau:.3g} τ_α" if tau else ""
    return f"t = {t:.4g} {time_unit(doc)}{ratio}"


def time_unit(doc):
    """The unit of report.json's times: the sim file's, "MC sweeps" before it was recorded."""
    return doc.get("time_unit") or "MC sweeps"
