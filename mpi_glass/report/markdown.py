"""report.md, rendered from the report.json dict (so both carry the same numbers)."""
from __future__ import annotations

import numpy as np

from .data import (II_METHODS, METHOD_LABELS, SET_METHODS, jsonable, mean_std, num,
                   species_groups, studies_of, time_note, time_unit)
from .figures import FIGURES

def _g(x):
    return f"{x:.6g}" if isinstance(x, (int, float)) else str(x)


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
    tau, unit = doc.get("tau_alpha"), time_unit(doc)
    lines = [
        f"- mpi_glass {prov.get('mpi_glass_version', '?')}, written {prov.get('written_utc', '?')}"
        + (f", {prov['ranks']} rank(s)" if "ranks" in prov else ""),
        f"- {doc['n_configurations']} configurations × {doc['n_particles']} particles, "
        f"{doc['n_features']} features",
        f"- tau_alpha = {tau:.4g} {unit}" if tau is not None else "- tau_alpha: not given",
        _certificate_line(doc.get("certified"), doc.get("equilibrium")),
        *_certificate_detail_lines(doc.get("certificate")),
        *_scan_certificate_lines(doc.get("scan_certified")),
        "- propensity times (p interpolated linearly in log t between recorded times): "
        + (", ".join(f"{k} = {_g(v)} {unit}" for k, v in times.items())
           or ", ".join(doc.get("time_labels", []))),
        *_protocol_lines(doc),
        f"- d_max = {params.get('d_max')}, k = {params.get('k')}, random draws per d = "
        f"{params.get('random_draws')}, random seed = {params.get('random_seed')}, noise seed "
        f"= {params.get('noise_seed')}",
    ]
    return "## What was run\n\n" + "\n".join(lines)


def _certificate_line(certified, equilibrium=None):
    """The equilibrium certificate of the configurations (simulate's, from sim.h5); imported
    data are "external": whoever made them vouches for their equilibrium."""
    if equilibrium == "external":
        return ("- equilibrium certificate: external (imported data: mpi_glass did not "
                "equilibrate these configurations and cannot certify them)")
    if certified is None:
        return "- equilibrium certificate: not recorded in sim.h5"
    flagged = [c for c, ok in enumerate(certified) if not ok]
    line = (f"- equilibrium certificate: {len(certified) - len(flagged)} of {len(certified)} "
            f"configurations certified")
    return line + (f"; **NOT certified (kept, flagged): {flagged}**" if flagged else "")


def _certificate_detail_lines(cert):
    """Per configuration: verdict, tau_int of U/N and effective samples; the chains' R-hat."""
    if not cert:
        return []
    names = {1: "certified", 0: "NOT certified", -1: "too short"}
    per_c = "; ".join(
        f"{c}: {names.get(v, v)}, tau_int {'?' if t is None else f'{t:.3g}'} sweeps, "
        f"{e if e is None else f'{e:.1f}'} effective samples"
        for c, (v, t, e) in enumerate(zip(cert["verdict"], cert["tau_int"],
                                          cert["effective_samples"])))
    lines = [f"  - {per_c} (minimum {_g(cert['min_effective'])})"]
    if cert.get("rhat") is not None:
        lines.append(f"  - between configurations: split-R-hat of U/N {cert['rhat']:.3f} "
                     f"(limit {cert['rhat_limit']:.3f})")
    return lines


def _scan_certificate_lines(scan):
    """The relaxation scan's configurations, under the same certificate rules."""
    if not scan:
        return []
    parts = []
    for temperature, ok in scan.items():
        flagged = [c for c, good in enumerate(ok) if not good]
        parts.append(f"T = {temperature}: {len(ok) - len(flagged)} of {len(ok)}"
                     + (f" (**NOT certified: {flagged}**)" if flagged else ""))
    return ["- relaxation scan certificates: " + "; ".join(parts)]


def _protocol_lines(doc):
    descriptions = doc.get("protocol_descriptions") or \
        {doc["protocol"]: doc.get("protocol_description", "")}
    return [f"- protocol **{name}**: {text}" for name, text in descriptions.items()]


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
    means = [mean_std(entries, key) for key in keys]
    d_max = len(means[0][0])
    return [[d + 1] + [_pm(jsonable(m[d]), jsonable(s[d])) for m, s in means]
            for d in range(d_max)]


def _section_supervised(doc):
    entries = doc["supervised"]
    rows = _curve_rows(entries, ["delta_forward", "delta_backward"])
    noise = [np.array([num(e[k]) for e in entries]) for k in ("noise_forward", "noise_backward")]
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


#: The DII methods: (title, target, the greedy II method they are compared with).
_DII_SECTIONS = {"dii": ("DII selection", "p", "supervised_ii"),
                 "dii_unsupervised": ("Unsupervised DII selection", "X_full", "unsupervised_ii")}


def _section_dii(doc, name="dii"):
    """The DII backward elimination on each configuration, and DII against greedy II."""
    title, target, greedy = _DII_SECTIONS[name]
    entries = doc[name]
    settings = doc.get("dii_settings") or {}
    rows = _curve_rows(entries, ["loss"])
    text = (f"## {title}\n\nDifferentiable Information Imbalance (Wild et al. 2025), "
            f"exact and full batch: backward elimination on each configuration, target "
            f"{target}; "
            f"λ rule {settings.get('lambda_rule')}, factor {settings.get('lambda_factor')}, "
            f"k = {settings.get('lambda_k')}; {settings.get('optimizer')}, learning rate "
            f"{settings.get('learning_rate')}, {settings.get('epochs')} + "
            f"{settings.get('refit_epochs')} epochs per step. DII mean ± std over "
            "configurations:\n\n" + _table(["d", f"DII(X_d(w)→{target})"], rows)
            + "\n\nFeatures in the order they survive (the first d are the set of size d):"
            "\n\n" + _names_table(entries))
    return text + _dii_against_greedy(doc, name, greedy)


def _dii_against_greedy(doc, name, greedy):
    """Paired rho(p, p_hat) difference DII - greedy II per protocol at small d."""
    lines = []
    for protocol, study in studies_of(doc).items():
        if name not in study or greedy not in study:
            continue
        a, b = study[greedy]["pearson"], study[name]["pearson"]
        rows = []
        for i, d in enumerate(study[name]["d"][:5]):
            diff = np.array([num(y[i]) - num(x[i]) for x, y in zip(a, b)])
            rows.append([d, _pm(study[greedy]["pearson_mean"][i],
                                study[greedy]["pearson_std"][i]),
                         _pm(study[name]["pearson_mean"][i], study[name]["pearson_std"][i]),
                         _pm(jsonable(np.nanmean(diff)), jsonable(np.nanstd(diff))),
                         f"{int((diff > 0).sum())}/{len(diff)}"])
        g, m = METHOD_LABELS[greedy], METHOD_LABELS[name]
        lines += [f"\n\nDoes {m} beat greedy {g} at small d ({protocol} protocol)? "
                  "ρ(p, p̂) mean ± std over test configurations; the difference is paired "
                  "per configuration (std: its configuration-to-configuration spread):\n",
                  _table(["d", g, m, f"{m} − {g}", f"configurations where {m} is higher"],
                         rows)]
    return "\n".join(lines)


def _rho_table(study, group=None):
    methods = [m for m in METHOD_LABELS if m in study]

    def block(m):
        return study[m] if group is None else study[m]["species"][group]

    rows = [[d] + [_pm(block(m)["pearson_mean"][i], block(m)["pearson_std"][i])
                   for m in methods] for i, d in enumerate(study[methods[0]]["d"])]
    return _table(["d"] + [METHOD_LABELS[m] for m in methods], rows)


def _selections_used(study, names, methods=SET_METHODS):
    """Per method and fold, the features used: a greedy's order (its sets are nested), or
    for the Lasso, whose sets need not be nested, what enters (+) and leaves (-) at each d."""
    lines = []
    for method in methods:
        if method in study:
            lines.append(f"- {METHOD_LABELS[method]}:")
            lines += [f"  - fold {c}: {_describe_sets(sets, names)}"
                      for c, sets in enumerate(study[method]["selected"])]
    return "\n".join(lines)


def _describe_sets(sets, names):
    if all(list(b[:-1]) == list(a) for a, b in zip(sets, sets[1:])):
        return ", ".join(f"`{names[j]}`" for j in sets[-1])
    steps, previous = [], []
    for d, chosen in enumerate(sets, start=1):
        change = [f"+`{names[j]}`" for j in chosen if j not in previous] + \
                 [f"−`{names[j]}`" for j in previous if j not in chosen]
        steps.append(f"d = {d}: " + " ".join(change))
        previous = chosen
    return "; ".join(steps)


def _side_by_side(studies):
    """rho(p, p_hat) vs d of every method under two protocols, and the paired difference
    (second - first) over the test configurations."""
    (first, a), (second, b) = studies.items()
    methods = [m for m in METHOD_LABELS if m in a and m in b]
    header = ["d"]
    for m in methods:
        header += [f"{METHOD_LABELS[m]}, {first}", f"{second}", f"{second} − {first}"]
    rows = []
    for i, d in enumerate(a[methods[0]]["d"]):
        row = [d]
        for m in methods:
            diff = np.array([num(y[i]) - num(x[i])
                             for x, y in zip(a[m]["pearson"], b[m]["pearson"])])
            row += [_pm(a[m]["pearson_mean"][i], a[m]["pearson_std"][i]),
                    _pm(b[m]["pearson_mean"][i], b[m]["pearson_std"][i]),
                    _pm(jsonable(np.nanmean(diff)), jsonable(np.nanstd(diff)))]
        rows.append(row)
    return _table(header, rows)


#: What the prediction sections say about the Lasso and about the sign of rho.
_LASSO_NOTE = ("Lasso: for each d, the support of the Lasso solution with exactly d non-zero "
               "coefficients at the largest such α, read from the breakpoints of the exact "
               "LARS–Lasso path on the training configurations (standardised with their "
               "moments); where no α gives exactly d (features entering together), the d "
               "largest |coefficients| just below that breakpoint. These sets need not be "
               "nested in d.")


_SIGN_NOTE = ("ρ is the signed Pearson coefficient. The authors' notebook stored |ρ| for the "
              "supervised, unsupervised and random curves, which lifts any negatively "
              "correlated prediction; compare with the paper's figures accordingly.")


def _section_regression(doc, label=None):
    studies = studies_of(doc, label)
    study = next(iter(studies.values()))
    title = ("## Prediction (Figs. 7–9)" if label is None
             else f"## Prediction at the second time '{label}' (Fig. 10)")
    random = study.get("random", {})
    first = next(iter(studies))
    parts = [title, f"Leave-one-configuration-out OLS; ρ(p, p̂) mean ± std over the "
             f"{doc['n_configurations']} test configurations ({time_note(doc, label)}); "
             f"random: average over {random.get('draws')} draws per d. {_LASSO_NOTE} "
             f"{_SIGN_NOTE}", f"### All particles, {first} protocol", _rho_table(study)]
    if len(studies) > 1:
        parts += [f"### {' vs '.join(studies)} protocol, side by side",
                  "Same features and folds; only the II selections differ (Lasso and random "
                  "are the same under both). The difference is paired over the test "
                  "configurations.", _side_by_side(studies)]
    if label is None:
        for group in species_groups(doc):
            parts += [f"### Species {group} (Fig. 9), {first} protocol",
                      _rho_table(study, group)]
    for i, (protocol, each) in enumerate(studies.items()):
        used = _selections_used(each, doc["feature_names"],
                                SET_METHODS if i == 0 else II_METHODS)
        if i > 0 and "lasso" in each:
            used += f"\n- Lasso: as under the {first} protocol"
        parts += [f"### Selections used for each test configuration (fold), {protocol} "
                  "protocol", used]
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
    name = doc.get("run_name")
    sections = [f"# mpi_glass select report{f' — {name}' if name else ''}",
                _section_run(doc), _section_figures(doc), _section_single(doc),
                _section_supervised(doc), _section_unsupervised(doc)]
    for name in ("dii", "dii_unsupervised"):
        if doc.get(name):
            sections.append(_section_dii(doc, name))
    sections.append(_section_regression(doc))
    sections += [_section_regression(doc, label) for label in doc.get("regression_at") or {}]
    sections += [_section_timings(doc), _section_provenance(doc)]
    return "\n\n".join(sections) + "\n"
