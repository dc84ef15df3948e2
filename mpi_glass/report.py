"""The report of ``mpi_glass select``: report.json, report.md and figures/ (root rank only).

Files written into ``out_dir``:

* ``report.json`` - the study's results (``study.run_study``) plus ``provenance`` and
  ``figures``; NaN is written as null.  The per-particle predictions are not in it.
* ``figures/figure_data.npz`` - the arrays the figures need beyond report.json (the
  ``sim_summary`` below, plus every configuration's predicted p_hat as ``p_hat_all``).
* ``figures/fig*.png`` - drawn *from these two files* by ``draw_figures``, the same function
  ``analysis/redraw_figures.py`` calls, so a redraw reproduces the report's figures exactly.
* ``report.md`` - rendered from the same dict as report.json, so their numbers agree.

``sim_summary`` keys (``summary_from_simulation`` builds it from a ``schema.SimData``):

==================  ===========  ===============================================================
key                 shape        meaning
==================  ===========  ===============================================================
times               (T,)         recorded times of the main ensemble (MC sweeps)
fs_cr               (C, T)       F_s^CR(k, t) per configuration (replica mean)
tau_alpha           scalar       tau_alpha of the configuration-mean F_s^CR (sweeps)
temperature         scalar       temperature of the main ensemble (optional, NaN: unknown)
scan_temperatures   (K,)         relaxation-scan temperatures (optional, Fig. 1)
scan_times          (T',)        their recorded times
scan_fs_cr          (K, C', T')  their F_s^CR per configuration
scan_tau_alpha      (K,)         their tau_alpha
configuration       scalar       index c of the configuration shown in the maps (Figs. 2, 8)
positions           (N, 2)       its particle positions (wrapped into the box for drawing)
species             (N,)         its species codes 0 S, 1 M, 2 L
box                 scalar       box side
p, q                (N,)         its propensities at the main time (q optional)
feature             (N,)         its raw values of ``feature_name`` (Fig. 2c)
feature_name        str          default ``theta_l2.0``
p_hat               (N,)         its LOCO prediction (optional: taken from the study's
                                 ``predictions``: supervised II, d = d_max)
==================  ===========  ===============================================================
"""
from __future__ import annotations

import datetime
import json
import math
import os
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from . import __version__

DATA_FILE = "figure_data.npz"
METHOD_LABELS = {"supervised_ii": "supervised II", "unsupervised_ii": "unsupervised II",
                 "lasso": "Lasso", "random": "random"}
METHOD_STYLE = {"supervised_ii": ("C0", "o"), "unsupervised_ii": ("C1", "s"),
                "lasso": ("C2", "D"), "random": ("C3", "^")}
#: Horizontal offsets of the methods' points, so that coinciding curves stay visible.
METHOD_DODGE = {"supervised_ii": -0.12, "unsupervised_ii": -0.04, "lasso": 0.04, "random": 0.12}
DESCRIPTOR_LABELS = {"rho": r"$\bar\rho$", "phi": r"$\bar\varphi$", "u": r"$\bar u$",
                     "psi6": r"$\bar\Psi_6$", "theta": r"$\bar\Theta$", "z": r"$\bar z$"}
SPECIES = ("S", "M", "L")
#: Drawn disc diameters (sigma_aa of the model) so that the maps look like the packing.
SPECIES_SIZE = (2 * math.sin(math.pi / 10), 0.9, 2 * math.sin(math.pi / 5))


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------

def write_report(out_dir, results, sim_summary, provenance):
    """Write report.json, figures/ and report.md into ``out_dir``; returns their paths.

    results: ``study.run_study``'s dict (``predictions`` may hold numpy arrays);
    sim_summary: see the module docstring; provenance: free-form dict (the select command
    passes ``sim_file``, ``sim_sha256``, ``config_toml``, ``ranks``), completed here with the
    package version and the time of writing.
    """
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    results = dict(results)
    predictions = results.pop("predictions", None)
    provenance = {"mpi_glass_version": __version__,
                  "written_utc": datetime.datetime.now(datetime.timezone.utc)
                  .strftime("%Y-%m-%dT%H:%M:%SZ"), **(provenance or {})}
    arrays = figure_arrays(sim_summary, predictions)
    drawable = [key for key, spec in FIGURES.items() if spec.available(results, arrays)]
    doc = jsonable({**results, "provenance": provenance,
                    "figures": {key: f"figures/{FIGURES[key].file}" for key in drawable}})
    _save_npz(out_dir / "figures" / DATA_FILE, arrays)
    _write_text(out_dir / "report.json", json.dumps(doc, indent=1, allow_nan=False) + "\n")
    paths = draw_figures(out_dir)
    _write_text(out_dir / "report.md", render_markdown(doc))
    return [out_dir / "report.json", out_dir / "report.md", out_dir / "figures" / DATA_FILE,
            *paths]


def draw_figures(report_dir, only=None, out_dir=None, fmt="png"):
    """(Re)draw the figures from report.json and figures/figure_data.npz alone.

    only: figure keys (``fig1`` ... ``fig10``) or None for all that the data allow;
    out_dir: where to write (default ``report_dir/figures``).  Returns the written paths.
    """
    report_dir = Path(report_dir)
    doc = json.loads((report_dir / "report.json").read_text())
    arrays = load_figure_data(report_dir / "figures" / DATA_FILE)
    out_dir = Path(out_dir) if out_dir else report_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(only or ()) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    written = []
    for key, spec in FIGURES.items():
        if (only and key not in only) or not spec.available(doc, arrays):
            continue
        fig = spec.draw(doc, arrays)
        path = out_dir / Path(spec.file).with_suffix(f".{fmt}").name
        _save_figure(fig, path, fmt)
        written.append(path)
    return written


def summary_from_simulation(data, features, names, results, picked, configuration=0,
                            feature="theta_l2.0", temperature=None):
    """``sim_summary`` from sim.h5's ``schema.SimData``, the raw features (C, N, M),
    their names, the study's results and the chosen time indices ({"main": index, ...}).
    The temperature comes from the argument, else from the file.

    If ``feature`` is not in the pool, the feature with the largest mean |rho(X, p)| is
    mapped instead.
    """
    c, main = int(configuration), picked["main"]
    temperature = data.temperature if temperature is None else temperature
    names = list(names)
    if feature not in names:
        table = results["single_feature"]
        feature = max(names, key=lambda name: abs(table[name]["pearson"]))
    summary = {"times": data.times, "fs_cr": data.fs_cr, "tau_alpha": data.tau_alpha,
               "temperature": np.nan if temperature is None else temperature,
               "configuration": c, "positions": data.positions[c],
               "species": data.species[c], "box": data.box,
               "p": data.p[c, main], "q": data.q[c, main],
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


# ---------------------------------------------------------------------------------------
# Writing helpers (temporary name, then rename: a reader never sees half a file)
# ---------------------------------------------------------------------------------------

def _write_text(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_npz(path, arrays):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)


def _save_figure(fig, path, fmt):
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format=fmt, dpi=130)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Figure helpers
# ---------------------------------------------------------------------------------------

def _num(x):
    """JSON number or null -> float (NaN for null)."""
    return np.nan if x is None else float(x)


def _arr(values):
    """JSON list (or list of lists) with nulls -> float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float) \
        if not (values and isinstance(values[0], list)) else np.array([_arr(v) for v in values])


def _parse_name(name):
    """'theta_l2.0' -> ('theta', 2.0); a name without a length -> (name, NaN)."""
    match = re.fullmatch(r"(.+)_l([0-9.]+)", name)
    return (match.group(1), float(match.group(2))) if match else (name, np.nan)


def _descriptor_blocks(names):
    """{descriptor: [(length, name), ...]} in the pool's order."""
    blocks = {}
    for name in names:
        descriptor, length = _parse_name(name)
        blocks.setdefault(descriptor, []).append((length, name))
    return blocks


def _time_note(doc, label=None):
    times = doc.get("propensity_time") or {}
    label = label or (doc.get("time_labels") or ["main"])[0]
    if label in times:
        return f"t = {times[label]:g} sweeps"
    return "t = tau_alpha" if label == "main" else f"time '{label}'"


def _plane(ax, xs, ys, xlabel, ylabel):
    """Square information-imbalance plane from 0 to just above 1 (or the largest value:
    Delta can slightly exceed 1), with the symmetric line Delta(A->B) = Delta(B->A)."""
    values = np.concatenate([np.ravel(xs), np.ravel(ys)])
    high = max(1.05, 1.02 * float(np.nanmax(values))) if values.size else 1.05
    ax.plot([0, high], [0, high], color="0.6", lw=0.8, ls="--", zorder=0)
    ax.set_xlim(0, high)
    ax.set_ylim(0, high)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _mean_std(entries, key):
    values = np.array([_arr(entry[key]) for entry in entries])
    return np.nanmean(values, axis=0), np.nanstd(values, axis=0)


def _new_figure(rows, cols, width=4.2, height=3.5):
    fig = Figure(figsize=(cols * width, rows * height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _letter(ax, letter):
    ax.set_title(f"({letter})", loc="left", fontsize=10, fontweight="bold")


# ---------------------------------------------------------------------------------------
# The figures (each: doc from report.json, arrays from figure_data.npz -> Figure)
# ---------------------------------------------------------------------------------------

def fig_fs_cr(doc, a):
    """Fig. 1: F_s^CR(k, t) vs log t per configuration (thin) and mean (thick), with
    tau_alpha (F_s = 1/e) marked; the relaxation-scan temperatures when present."""
    fig, axes = _new_figure(1, 1, 6.0, 4.2)
    ax = axes[0, 0]
    times, fs = a["times"], np.atleast_2d(a["fs_cr"])
    temperature = float(a.get("temperature", np.nan))
    label = f"T = {temperature:g}" if math.isfinite(temperature) else "main run"
    for curve in fs:
        ax.semilogx(times, curve, color="C0", lw=0.6, alpha=0.5)
    ax.semilogx(times, fs.mean(axis=0), color="C0", lw=2.0, label=f"{label} (mean of {len(fs)})")
    tau = float(a["tau_alpha"])
    if math.isfinite(tau):
        ax.axvline(tau, color="C0", ls="--", lw=1.0)
        ax.plot([tau], [math.exp(-1)], "o", color="C0", ms=7,
                label=rf"$\tau_\alpha$ = {tau:.3g} sweeps")
    if "scan_temperatures" in a:
        for i, temp in enumerate(a["scan_temperatures"]):
            curves = np.atleast_2d(a["scan_fs_cr"][i])
            color = f"C{i + 1}"
            ax.semilogx(a["scan_times"], curves.mean(axis=0), color=color, lw=1.5,
                        label=f"T = {temp:g}")
            tau_i = float(a["scan_tau_alpha"][i])
            if math.isfinite(tau_i):
                ax.plot([tau_i], [math.exp(-1)], "o", color=color, ms=6)
    ax.axhline(math.exp(-1), color="0.5", lw=0.8, ls=":")
    ax.text(times[0], math.exp(-1) + 0.02, "1/e", color="0.4", fontsize=8)
    ax.set_xlabel("t (MC sweeps)")
    ax.set_ylabel(r"$F_s^{\mathrm{CR}}(k=6.3, t)$")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Cage-relative self-intermediate scattering function")
    return fig


def _map(ax, a, values, title, cmap):
    """Particles as discs of their species' size at their (wrapped) positions, coloured."""
    box = float(a["box"])
    xy = np.mod(a["positions"], box)
    size = np.asarray(SPECIES_SIZE)[a["species"].astype(int)]
    points_per_unit = 0.72 * ax.get_figure().get_figwidth() * 72 / 2 / box  # 2 map columns
    low, high = np.percentile(values, [2, 98])
    art = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=(size * points_per_unit) ** 2, cmap=cmap,
                     vmin=low, vmax=high, linewidths=0)
    ax.set_xlim(0, box)
    ax.set_ylim(0, box)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.get_figure().colorbar(art, ax=ax, shrink=0.8)


def fig_maps(doc, a):
    """Fig. 2: maps of p, q, the mapped feature and p_hat over one configuration (colour
    scales clipped to the 2-98 % percentiles; q reversed so that mobile is red everywhere)."""
    fig, axes = _new_figure(2, 2, 4.6, 4.2)
    p = a["p"]

    def rho(x):
        return np.corrcoef(p, x)[0, 1]

    c = int(a["configuration"])
    _map(axes[0, 0], a, p, rf"(a) $p_i$ at {_time_note(doc)} (configuration {c})", "coolwarm")
    if "q" in a:
        _map(axes[0, 1], a, a["q"], rf"(b) $q_i$ (reversed scale; $\rho_{{q,p}}$ = "
             rf"{rho(a['q']):.2f})", "coolwarm_r")
    else:
        axes[0, 1].set_axis_off()
    descriptor, length = _parse_name(str(a["feature_name"]))
    label = f"{DESCRIPTOR_LABELS.get(descriptor, descriptor)}($\\ell$ = {length:g})"
    _map(axes[1, 0], a, a["feature"], rf"(c) {label}; $\rho$ with p = {rho(a['feature']):.2f}",
         "coolwarm")
    d = int(a.get("p_hat_d", doc.get("parameters", {}).get("d_max", 0)))
    _map(axes[1, 1], a, a["p_hat"], rf"(d) $\hat p_i$, supervised II, d = {d}; "
         rf"$\rho$ = {rho(a['p_hat']):.2f}", "coolwarm")
    return fig


def fig_single_feature(doc, a):
    """Fig. 4: |Pearson|, 1/Delta(X -> p), 1/Delta(p -> X) vs l per descriptor, and the
    information-imbalance plane Delta(X -> p) vs Delta(p -> X) (with q as a reference)."""
    table, names = doc["single_feature"], doc["feature_names"]
    fig, axes = _new_figure(2, 2)
    panels = [(axes[0, 0], "a", lambda e: abs(e["pearson"]), r"$|\rho_{X,p}|$"),
              (axes[1, 0], "c", lambda e: 1 / e["delta_x_to_p"], r"$1/\Delta(X\to p)$"),
              (axes[1, 1], "d", lambda e: 1 / e["delta_p_to_x"], r"$1/\Delta(p\to X)$")]
    plane = axes[0, 1]
    for i, (descriptor, members) in enumerate(_descriptor_blocks(names).items()):
        color, label = f"C{i}", DESCRIPTOR_LABELS.get(descriptor, descriptor)
        lengths = [length for length, _ in members]
        entries = [table[name] for _, name in members]
        for ax, _, value, _ in panels:
            ax.plot(lengths, [value(e) for e in entries], "o-", color=color, ms=4, label=label)
        plane.plot([e["delta_x_to_p"] for e in entries], [e["delta_p_to_x"] for e in entries],
                   "o", color=color, ms=5, label=label)
    for ax, letter, _, ylabel in panels:
        _letter(ax, letter)
        ax.set_xlabel(r"$\ell$")
        ax.set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8, ncol=2, frameon=False)
    dq = doc.get("delta_q_p")
    if dq:
        plane.plot([dq["delta_q_to_p"]], [dq["delta_p_to_q"]], "*", color="k", ms=11,
                   label="q")
    plane.legend(fontsize=7, ncol=2, frameon=False, loc="lower right")
    _plane(plane, [table[n]["delta_x_to_p"] for n in names],
           [table[n]["delta_p_to_x"] for n in names], r"$\Delta(X\to p)$", r"$\Delta(p\to X)$")
    _letter(plane, "b")
    fig.suptitle(f"Single features vs propensity at {_time_note(doc)} "
                 f"(mean over {doc['n_configurations']} configurations)")
    return fig


def _annotate_d(ax, x, y):
    for d, (xi, yi) in enumerate(zip(x, y), start=1):
        ax.annotate(str(d), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")


def fig_supervised(doc, a):
    """Fig. 5: Delta(X_d -> p) and Delta(p -> X_d) vs d (mean +- std over configurations,
    each configuration's own greedy), the Gaussian-noise control at d_max + 1, and the
    information-imbalance plane."""
    entries = doc["supervised"]
    fwd, fwd_std = _mean_std(entries, "delta_forward")
    bwd, bwd_std = _mean_std(entries, "delta_backward")
    noise_f = np.array([_num(e["noise_forward"]) for e in entries])
    noise_b = np.array([_num(e["noise_backward"]) for e in entries])
    d = np.arange(1, len(fwd) + 1)
    fig, axes = _new_figure(1, 2)
    ax, plane = axes[0]
    ax.errorbar(d, fwd, fwd_std, fmt="o-", color="C0", capsize=2, label=r"$\Delta(X_d\to p)$")
    ax.errorbar(d, bwd, bwd_std, fmt="s-", color="C1", capsize=2, label=r"$\Delta(p\to X_d)$")
    ax.errorbar([d[-1] + 1], [noise_f.mean()], [noise_f.std()], fmt="^", color="C0", ms=8,
                capsize=2, label="+ Gaussian noise")
    ax.errorbar([d[-1] + 1], [noise_b.mean()], [noise_b.std()], fmt="^", color="C1", ms=8,
                capsize=2)
    ax.set_xlabel("d")
    ax.set_ylabel(r"$\Delta$")
    ax.legend(fontsize=8, frameon=False)
    _letter(ax, "a")
    plane.plot(fwd, bwd, "o-", color="C0")
    plane.plot([noise_f.mean()], [noise_b.mean()], "^", color="C3", ms=8, label="+ noise")
    _annotate_d(plane, fwd, bwd)
    _plane(plane, np.append(fwd, noise_f.mean()), np.append(bwd, noise_b.mean()),
           r"$\Delta(X_d\to p)$", r"$\Delta(p\to X_d)$")
    plane.legend(fontsize=8, frameon=False, loc="lower right")
    _letter(plane, "b")
    fig.suptitle(f"Supervised selection, one greedy per configuration ({len(entries)}), "
                 f"{_time_note(doc)}")
    return fig


def fig_unsupervised(doc, a):
    """Fig. 6: symmetrised Delta(X_full, X_d) and both terms vs d (log y, mean +- std over
    configurations) and the plane Delta(X_full -> X_d) vs Delta(X_d -> X_full)."""
    entries = doc["unsupervised"]
    sym, sym_std = _mean_std(entries, "delta_symmetric")
    to_full, to_full_std = _mean_std(entries, "delta_forward")      # X_d -> X_full
    from_full, from_full_std = _mean_std(entries, "delta_backward")  # X_full -> X_d
    d = np.arange(1, len(sym) + 1)
    fig, axes = _new_figure(1, 2)
    ax, plane = axes[0]
    ax.errorbar(d, sym, sym_std, fmt="o-", color="k", capsize=2,
                label=r"$\bar\Delta(X_{\mathrm{full}}, X_d)$")
    ax.errorbar(d, from_full, from_full_std, fmt="s-", color="C0", capsize=2,
                label=r"$\Delta(X_{\mathrm{full}}\to X_d)$")
    ax.errorbar(d, to_full, to_full_std, fmt="D-", color="C1", capsize=2,
                label=r"$\Delta(X_d\to X_{\mathrm{full}})$")
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("d")
    ax.set_ylabel(r"$\Delta$")
    ax.legend(fontsize=8, frameon=False)
    _letter(ax, "a")
    plane.plot(from_full, to_full, "o-", color="C0")
    _annotate_d(plane, from_full, to_full)
    _plane(plane, from_full, to_full, r"$\Delta(X_{\mathrm{full}}\to X_d)$",
           r"$\Delta(X_d\to X_{\mathrm{full}})$")
    _letter(plane, "b")
    fig.suptitle(f"Unsupervised selection, one greedy per configuration ({len(entries)})")
    return fig


def _rho_curves(ax, study, group=None):
    """rho(p, p_hat) vs d for every method, mean +- std over test configurations (points
    dodged sideways by METHOD_DODGE so that identical curves, e.g. Lasso and supervised II
    picking the same features, do not hide each other)."""
    for method, label in METHOD_LABELS.items():
        if method not in study:
            continue
        block = study[method] if group is None else study[method]["species"][group]
        color, marker = METHOD_STYLE[method]
        d = np.asarray(study[method]["d"]) + METHOD_DODGE[method]
        ax.errorbar(d, _arr(block["pearson_mean"]), _arr(block["pearson_std"]),
                    fmt=f"{marker}-", color=color, ms=4, capsize=2, label=label)
    ax.set_xlabel("d")
    ax.set_ylabel(r"$\rho_{p,\hat p}$")


def _protocol_note(doc):
    return f"LOCO over {doc['n_configurations']} configurations, {doc['protocol']} protocol"


def fig_regression(doc, a):
    """Fig. 7: rho(p, p_hat) vs d for the four selections."""
    fig, axes = _new_figure(1, 1, 6.0, 4.2)
    _rho_curves(axes[0, 0], doc["regression"])
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[0, 0].set_title(f"Prediction at {_time_note(doc)}\n{_protocol_note(doc)}", fontsize=10)
    return fig


def fig_scatter(doc, a):
    """Fig. 8: p vs p_hat for all particles and per species (one configuration)."""
    p, p_hat, species = a["p"], a["p_hat"], a["species"].astype(int)
    fig, axes = _new_figure(2, 2, 3.6, 3.4)
    groups = [("all particles", np.ones(len(p), bool))] + \
             [(f"species {s}", species == i) for i, s in enumerate(SPECIES)]
    low, high = np.percentile(np.concatenate([p, p_hat]), [0.5, 99.5])
    for ax, letter, (title, mask) in zip(axes.ravel(), "abcd", groups):
        for i, name in enumerate(SPECIES):  # species keep one colour in every panel
            both = mask & (species == i)
            ax.scatter(p[both], p_hat[both], s=4, alpha=0.5, color=f"C{i}", linewidths=0,
                       label=name)
        ax.plot([low, high], [low, high], color="0.5", lw=0.8, ls="--")
        rho = np.corrcoef(p[mask], p_hat[mask])[0, 1] if mask.sum() > 1 else np.nan
        ax.set_title(rf"({letter}) {title}: $\rho$ = {rho:.3f}", fontsize=10)
        ax.set_xlabel(r"$p_i$")
        ax.set_ylabel(r"$\hat p_i$")
    axes[0, 0].legend(fontsize=8, markerscale=3, frameon=False)
    d = int(a.get("p_hat_d", 0))
    fig.suptitle(f"Configuration {int(a['configuration'])}: supervised II, d = {d}, "
                 f"model trained on the other configurations")
    return fig


def fig_species(doc, a):
    """Fig. 9: species-wise rho(p, p_hat) vs d, four selections."""
    fig, axes = _new_figure(1, 3, 4.0, 3.6)
    for ax, letter, group in zip(axes[0], "abc", SPECIES):
        _rho_curves(ax, doc["regression"], group)
        ax.set_title(f"({letter}) species {group}", loc="left", fontsize=10)
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"Species-wise prediction at {_time_note(doc)}; {_protocol_note(doc)}")
    return fig


def fig_second_time(doc, a):
    """Fig. 10: rho(p, p_hat) vs d at the second propensity time."""
    label, study = next(iter(doc["regression_at"].items()))
    fig, axes = _new_figure(1, 1, 6.0, 4.2)
    _rho_curves(axes[0, 0], study)
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[0, 0].set_title(f"Prediction at {_time_note(doc, label)}\n{_protocol_note(doc)}",
                         fontsize=10)
    return fig


class _Spec:
    """One figure: file name, drawing function, caption, and what it needs."""

    def __init__(self, file, draw, caption, needs=(), needs_doc=()):
        self.file, self.draw, self.caption = file, draw, caption
        self.needs, self.needs_doc = needs, needs_doc

    def available(self, doc, arrays):
        return all(key in arrays for key in self.needs) and all(doc.get(key)
                                                                for key in self.needs_doc)


FIGURES = {
    "fig1": _Spec("fig1_fs_cr.png", fig_fs_cr,
                  "F_s^CR(k = 6.3, t) per configuration and mean; tau_alpha marked (F_s = 1/e).",
                  needs=("times", "fs_cr", "tau_alpha")),
    "fig2": _Spec("fig2_maps.png", fig_maps,
                  "Maps of p, q, the steric order feature and the LOCO prediction p_hat.",
                  needs=("positions", "species", "box", "p", "feature", "p_hat")),
    "fig4": _Spec("fig4_single_feature.png", fig_single_feature,
                  "|Pearson|, 1/Delta(X->p), 1/Delta(p->X) vs l, and the II plane.",
                  needs_doc=("single_feature",)),
    "fig5": _Spec("fig5_supervised.png", fig_supervised,
                  "Supervised selection: Delta vs d with the noise control, and the II plane.",
                  needs_doc=("supervised",)),
    "fig6": _Spec("fig6_unsupervised.png", fig_unsupervised,
                  "Unsupervised selection: symmetrised Delta and both terms vs d, II plane.",
                  needs_doc=("unsupervised",)),
    "fig7": _Spec("fig7_regression.png", fig_regression,
                  "rho(p, p_hat) vs d: supervised II, unsupervised II, Lasso, random.",
                  needs_doc=("regression",)),
    "fig8": _Spec("fig8_scatter.png", fig_scatter,
                  "p vs p_hat (supervised II, d = d_max) for all particles and per species.",
                  needs=("p", "p_hat", "species")),
    "fig9": _Spec("fig9_species.png", fig_species,
                  "Species-wise rho(p, p_hat) vs d.", needs_doc=("regression",)),
    "fig10": _Spec("fig10_second_time.png", fig_second_time,
                   "rho(p, p_hat) vs d at the second propensity time.",
                   needs_doc=("regression_at",)),
}


# ---------------------------------------------------------------------------------------
# report.md
# ---------------------------------------------------------------------------------------

def _f(x, digits=4):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pm(mean, std):
    return f"{_f(mean)} ± {_f(std)}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _section_run(doc):
    prov, params = doc.get("provenance", {}), doc.get("parameters", {})
    times = doc.get("propensity_time") or {}
    tau = doc.get("tau_alpha")
    lines = [
        f"- mpi_glass {prov.get('mpi_glass_version', '?')}, written {prov.get('written_utc', '?')}"
        + (f", {prov['ranks']} rank(s)" if "ranks" in prov else ""),
        f"- {doc['n_configurations']} configurations × {doc['n_particles']} particles, "
        f"{doc['n_features']} features",
        f"- tau_alpha = {tau:.4g} sweeps" if tau is not None else "- tau_alpha: not given",
        "- propensity times: " + (", ".join(f"{k} = {v} sweeps" for k, v in times.items())
                                  or ", ".join(doc.get("time_labels", []))),
        f"- protocol: **{doc['protocol']}** — {doc.get('protocol_description', '')}",
        f"- d_max = {params.get('d_max')}, k = {params.get('k')}, random draws per d = "
        f"{params.get('random_draws')}, random seed = {params.get('random_seed')}, noise seed "
        f"= {params.get('noise_seed')}",
    ]
    return "## What was run\n\n" + "\n".join(lines)


def _section_figures(doc):
    rows = [f"- [{key}]({path}): {FIGURES[key].caption}" for key, path in doc["figures"].items()]
    missing = [key for key in FIGURES if key not in doc["figures"]]
    if missing:
        rows.append(f"- not drawn (no data): {', '.join(missing)}")
    return "## Figures\n\n" + "\n".join(rows)


def _section_single(doc):
    table = doc["single_feature"]
    rows = [[name, _f(table[name]["pearson"]), _f(table[name]["delta_x_to_p"]),
             _f(table[name]["delta_p_to_x"])] for name in doc["feature_names"]]
    text = ("## Single features (Fig. 4)\n\nMean over configurations; features standardised "
            "per configuration.\n\n"
            + _table(["feature", "Pearson ρ(X, p)", "Δ(X→p)", "Δ(p→X)"], rows))
    dq = doc.get("delta_q_p")
    if dq:
        text += (f"\n\nBond-breaking propensity q: Δ(q→p) = {_f(dq['delta_q_to_p'])}, "
                 f"Δ(p→q) = {_f(dq['delta_p_to_q'])}.")
    return text


def _names_table(entries):
    d_max = len(entries[0]["names"])
    header = ["d"] + [f"configuration {e['configuration']}" for e in entries]
    rows = [[d + 1] + [f"`{e['names'][d]}`" for e in entries] for d in range(d_max)]
    return _table(header, rows)


def _curve_rows(entries, keys):
    means = [_mean_std(entries, key) for key in keys]
    d_max = len(means[0][0])
    return [[d + 1] + [_pm(jsonable(m[d]), jsonable(s[d])) for m, s in means]
            for d in range(d_max)]


def _section_supervised(doc):
    entries = doc["supervised"]
    rows = _curve_rows(entries, ["delta_forward", "delta_backward"])
    noise = [np.array([_num(e[k]) for e in entries]) for k in ("noise_forward", "noise_backward")]
    rows.append([f"{len(rows)} + noise"] + [_pm(jsonable(v.mean()), jsonable(v.std()))
                                           for v in noise])
    return ("## Supervised selection (Fig. 5)\n\nOne greedy per configuration on that "
            "configuration (the paper's Fig. 5); mean ± std over configurations.\n\n"
            + _table(["d", "Δ(X_d→p)", "Δ(p→X_d)"], rows)
            + "\n\nSelected features, in order:\n\n" + _names_table(entries))


def _section_unsupervised(doc):
    entries = doc["unsupervised"]
    rows = _curve_rows(entries, ["delta_symmetric", "delta_backward", "delta_forward"])
    return ("## Unsupervised selection (Fig. 6)\n\nOne greedy per configuration; "
            "Δ̄ = (Δ(X_full→X_d) + Δ(X_d→X_full))/√2; mean ± std over configurations.\n\n"
            + _table(["d", "Δ̄(X_full, X_d)", "Δ(X_full→X_d)", "Δ(X_d→X_full)"], rows)
            + "\n\nSelected features, in order:\n\n" + _names_table(entries))


def _rho_table(study, group=None):
    methods = [m for m in METHOD_LABELS if m in study]

    def block(m):
        return study[m] if group is None else study[m]["species"][group]

    rows = [[d] + [_pm(block(m)["pearson_mean"][i], block(m)["pearson_std"][i])
                   for m in methods] for i, d in enumerate(study[methods[0]]["d"])]
    return _table(["d"] + [METHOD_LABELS[m] for m in methods], rows)


def _selections_used(study, names):
    lines = []
    for method in ("supervised_ii", "unsupervised_ii", "lasso"):
        if method in study:
            lines.append(f"- {METHOD_LABELS[method]}:")
            lines += [f"  - fold {c}: " + ", ".join(f"`{names[j]}`" for j in order)
                      for c, order in enumerate(study[method]["selected"])]
    return "\n".join(lines)


def _section_regression(doc, label=None):
    study = doc["regression"] if label is None else doc["regression_at"][label]
    title = ("## Prediction (Figs. 7–9)" if label is None
             else f"## Prediction at the second time '{label}' (Fig. 10)")
    random = study.get("random", {})
    parts = [title, f"Leave-one-configuration-out OLS, {doc['protocol']} protocol; "
             f"ρ(p, p̂) mean ± std over the {doc['n_configurations']} test configurations "
             f"({_time_note(doc, label)}); random: average over {random.get('draws')} draws "
             "per d.", "### All particles", _rho_table(study)]
    if label is None:
        for group in SPECIES:
            parts += [f"### Species {group} (Fig. 9)", _rho_table(study, group)]
    parts += ["### Selections used for each test configuration (fold)",
              _selections_used(study, doc["feature_names"])]
    return "\n\n".join(parts)


def _section_timings(doc):
    rows = [[stage, f"{seconds:.2f}"] for stage, seconds in (doc.get("timings") or {}).items()]
    return "## Timings\n\n" + _table(["stage", "seconds"], rows)


def _section_provenance(doc):
    prov = dict(doc.get("provenance", {}))
    toml = prov.pop("config_toml", None)
    lines = [f"- {key}: `{value}`" for key, value in prov.items()]
    text = "## Provenance\n\n" + "\n".join(lines)
    if toml:
        text += "\n\nConfiguration (TOML):\n\n```toml\n" + toml.strip() + "\n```"
    return text


def render_markdown(doc):
    """report.md from the report.json dict (so both carry the same numbers)."""
    name = doc.get("provenance", {}).get("config_name")
    sections = [f"# mpi_glass select report{f' — {name}' if name else ''}",
                _section_run(doc), _section_figures(doc), _section_single(doc),
                _section_supervised(doc), _section_unsupervised(doc), _section_regression(doc)]
    sections += [_section_regression(doc, label) for label in doc.get("regression_at") or {}]
    sections += [_section_timings(doc), _section_provenance(doc)]
    return "\n\n".join(sections) + "\n"
