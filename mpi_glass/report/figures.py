"""The report's figures: the paper's Figs. 1, 2, 4-10, each drawn from report.json (``doc``)
and figures/figure_data.npz (``a``) alone, so ``analysis/redraw_figures.py`` reproduces them.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..methods import REGISTRY
from ..model import DEFAULT_MODEL
from ..store import write_atomically
from ..validation import check_box
from .data import (DATA_FILE, II_METHODS, METHOD_LABELS, SPECIES, arr, load_figure_data,
                   mean_std, num, species_groups, studies_of, time_note)

METHOD_STYLE = {name: method.style[:2] for name, method in REGISTRY.items()}
#: Horizontal offsets of the methods' points, so that coinciding curves stay visible.
METHOD_DODGE = {name: method.style[2] for name, method in REGISTRY.items()}
DESCRIPTOR_LABELS = {"rho": r"$\bar\rho$", "phi": r"$\bar\varphi$", "u": r"$\bar u$",
                     "psi6": r"$\bar\Psi_6$", "theta": r"$\bar\Theta$", "z": r"$\bar z$"}
#: Drawn disc diameters (sigma_aa of the model) so that the maps look like the packing:
#: the figure data's ``species_sizes``, else (older files) the paper's model's.
SPECIES_SIZE = DEFAULT_MODEL.disc_diameters
#: Line style of each protocol's curves in Figs. 7, 9 and 10 (the paper's dashed).
PROTOCOL_LINE = {"honest": "-", "paper": "--"}


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


def _save_figure(fig, path, fmt):
    write_atomically(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=130))


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


def _new_figure(rows, cols, width=4.2, height=3.5):
    fig = Figure(figsize=(cols * width, rows * height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _letter(ax, letter):
    ax.set_title(f"({letter})", loc="left", fontsize=10, fontweight="bold")


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
    unit = str(a.get("time_unit", "MC sweeps"))
    if math.isfinite(tau):
        ax.axvline(tau, color="C0", ls="--", lw=1.0)
        ax.plot([tau], [math.exp(-1)], "o", color="C0", ms=7,
                label=rf"$\tau_\alpha$ = {tau:.3g} {unit}")
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
    ax.set_xlabel(f"t ({unit})")
    ax.set_ylabel(r"$F_s^{\mathrm{CR}}(k=6.3, t)$")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Cage-relative self-intermediate scattering function")
    return fig


def _map(ax, a, values, title, cmap):
    """Particles as discs of their species' size at their (wrapped) positions, coloured."""
    sides = check_box(a["box"])    # two sides, or one (a square, older payloads)
    xy = np.mod(a["positions"], sides)
    size = np.asarray(a["species_sizes"] if "species_sizes" in a else SPECIES_SIZE)
    size = size[a["species"].astype(int)]
    # 2 map columns; the longer side fills its panel (equal aspect)
    points_per_unit = 0.72 * ax.get_figure().get_figwidth() * 72 / 2 / sides.max()
    low, high = np.percentile(values, [2, 98])
    art = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=(size * points_per_unit) ** 2, cmap=cmap,
                     vmin=low, vmax=high, linewidths=0)
    ax.set_xlim(0, sides[0])
    ax.set_ylim(0, sides[1])
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
    _map(axes[0, 0], a, p, rf"(a) $p_i$ at {time_note(doc)} (configuration {c})", "coolwarm")
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
    fig.suptitle(f"Single features vs propensity at {time_note(doc)} "
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
    fwd, fwd_std = mean_std(entries, "delta_forward")
    bwd, bwd_std = mean_std(entries, "delta_backward")
    noise_f = np.array([num(e["noise_forward"]) for e in entries])
    noise_b = np.array([num(e["noise_backward"]) for e in entries])
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
                 f"{time_note(doc)}")
    return fig


def fig_unsupervised(doc, a):
    """Fig. 6: symmetrised Delta(X_full, X_d) and both terms vs d (log y, mean +- std over
    configurations) and the plane Delta(X_full -> X_d) vs Delta(X_d -> X_full)."""
    entries = doc["unsupervised"]
    sym, sym_std = mean_std(entries, "delta_symmetric")
    to_full, to_full_std = mean_std(entries, "delta_forward")      # X_d -> X_full
    from_full, from_full_std = mean_std(entries, "delta_backward")  # X_full -> X_d
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


def _rho_curves(ax, study, group=None, protocol=None, methods=tuple(METHOD_LABELS)):
    """rho(p, p_hat) vs d for ``methods``, mean +- std over test configurations (points
    dodged sideways by METHOD_DODGE so that identical curves, e.g. Lasso and supervised II
    picking the same features, do not hide each other); the paper protocol dashed with
    open markers."""
    style = PROTOCOL_LINE.get(protocol, "-")
    for method in methods:
        if method not in study:
            continue
        block = study[method] if group is None else study[method]["species"][group]
        color, marker = METHOD_STYLE[method]
        d = np.asarray(study[method]["d"]) + METHOD_DODGE[method]
        ax.errorbar(d, arr(block["pearson_mean"]), arr(block["pearson_std"]),
                    fmt=f"{marker}{style}", color=color, ms=4, capsize=2,
                    mfc="none" if style == "--" else color,
                    label=METHOD_LABELS[method] + (f" ({protocol})" if protocol and
                                                   method in II_METHODS else ""))
    ax.set_xlabel("d")
    ax.set_ylabel(r"$\rho_{p,\hat p}$")


def _protocol_curves(ax, doc, label=None, group=None):
    """Every protocol's curves: the first with all four methods, a second (paper) dashed
    with the II methods only - Lasso and random are the same under both protocols."""
    studies = studies_of(doc, label)
    if len(studies) == 1:
        _rho_curves(ax, next(iter(studies.values())), group)
        return
    for i, (protocol, study) in enumerate(studies.items()):
        _rho_curves(ax, study, group, protocol, tuple(METHOD_LABELS) if i == 0 else II_METHODS)


def _protocol_note(doc):
    protocols = list(studies_of(doc))
    if len(protocols) == 1:
        what = f"{protocols[0]} protocol"
    else:
        what = (f"{protocols[0]} (solid) and {protocols[1]} (dashed) protocols;\nLasso and "
                "random are the same under both")
    return f"LOCO over {doc['n_configurations']} configurations, {what}"


def fig_regression(doc, a):
    """Fig. 7: rho(p, p_hat) vs d for the four selections (paper protocol dashed)."""
    fig, axes = _new_figure(1, 1, 6.0, 4.2)
    _protocol_curves(axes[0, 0], doc)
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[0, 0].set_title(f"Prediction at {time_note(doc)}\n{_protocol_note(doc)}", fontsize=9)
    return fig


def fig_scatter(doc, a):
    """Fig. 8: p vs p_hat for all particles and per species (one configuration)."""
    p, p_hat, species = a["p"], a["p_hat"], a["species"].astype(int)
    names = _species_names(a)
    groups = [("all particles", np.ones(len(p), bool))] + \
             [(f"species {s}", species == i) for i, s in enumerate(names)]
    fig, axes = _new_figure((len(groups) + 1) // 2, 2, 3.6, 3.4)
    for ax in axes.ravel()[len(groups):]:
        ax.set_visible(False)
    low, high = np.percentile(np.concatenate([p, p_hat]), [0.5, 99.5])
    for ax, letter, (title, mask) in zip(axes.ravel(), _letters(len(groups)), groups):
        for i, name in enumerate(names):  # species keep one colour in every panel
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
    protocol = f" ({a['p_hat_protocol']} protocol)" if "p_hat_protocol" in a else ""
    fig.suptitle(f"Configuration {int(a['configuration'])}: supervised II{protocol}, d = {d}, "
                 f"model trained on the other configurations")
    return fig


def _species_names(a):
    """The model's species names of the figure data (older files: the paper's)."""
    return [str(s) for s in a["species_names"]] if "species_names" in a else list(SPECIES)


def _letters(n):
    """Panel letters a, b, c, ... for n panels."""
    return [chr(ord("a") + k) for k in range(n)]


def fig_species(doc, a):
    """Fig. 9: species-wise rho(p, p_hat) vs d, four selections."""
    groups = species_groups(doc) or SPECIES
    fig, axes = _new_figure(1, len(groups), 4.0, 3.6)
    for ax, letter, group in zip(axes[0], _letters(len(groups)), groups):
        _protocol_curves(ax, doc, group=group)
        ax.set_title(f"({letter}) species {group}", loc="left", fontsize=10)
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"Species-wise prediction at {time_note(doc)}; {_protocol_note(doc)}")
    return fig


def fig_second_time(doc, a):
    """Fig. 10: rho(p, p_hat) vs d at the second propensity time."""
    label = next(iter(doc["regression_at"]))
    fig, axes = _new_figure(1, 1, 6.0, 4.2)
    _protocol_curves(axes[0, 0], doc, label)
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[0, 0].set_title(f"Prediction at {time_note(doc, label)}\n{_protocol_note(doc)}",
                         fontsize=9)
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
                  "rho(p, p_hat) vs d of the study's methods (supervised II, unsupervised "
                  "II, Lasso, random, and DII if chosen).",
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
