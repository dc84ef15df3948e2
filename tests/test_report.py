"""report.json, report.md and figures/ (mpi_glass.report) and the analysis/ redraw script."""
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mpi_glass import report
from mpi_glass.config import SelectConfig
from mpi_glass.report.markdown import _describe_sets
from mpi_glass.schema import SimData
from mpi_glass.study import run_study

ROOT = Path(__file__).resolve().parents[1]
FIGURE_FILES = ["fig1_fs_cr.png", "fig2_maps.png", "fig4_single_feature.png",
                "fig5_supervised.png", "fig6_unsupervised.png", "fig7_regression.png",
                "fig8_scatter.png", "fig9_species.png", "fig10_second_time.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_simulation(C=3, N=300, seed=0):
    """A ``schema.SimData``, features and names, with p tied to the features."""
    rng = np.random.default_rng(seed)
    names = [f"{kind}_l{ell:.1f}" for kind in ("rho", "theta", "z") for ell in (1.0, 2.0, 3.0)]
    features = rng.standard_normal((C, N, len(names))) + 5.0
    times = np.unique(np.logspace(0, 4, 25).astype(np.int64))
    signal = features[..., 4] - 0.5 * features[..., 0]
    p = np.empty((C, len(times), N))
    for k, t in enumerate(times):
        p[:, k] = np.exp(0.3 * signal * math.log10(t + 1) / 4) + 0.2 * rng.random((C, N))
    box = math.sqrt(N / 1.024)
    zeros = np.zeros(C)
    data = SimData(positions=rng.uniform(0, box, (C, N, 2)), species=rng.integers(0, 3, (C, N)),
                   energy_times=np.arange(1, 3), energy_series=np.zeros((C, 2)),
                   times=times,
                   fs_cr=np.exp(-(times[None, :] / np.array([[900], [1000], [1100]])[:C]) ** 0.8),
                   tau_alpha=1000.0, tau_alpha_per_configuration=zeros + 1000.0,
                   p=p, q=1.0 / (1.0 + p), scan_temperatures=np.array([1.0]), scan_times=times,
                   scan_fs_cr=np.exp(-times / 20.0)[None, None, :],
                   scan_tau_alpha=np.array([20.0]), attrs={"box": np.array([box, box])})
    return data, features, names


def make_report(out_dir, second=True, protocol="both"):
    data, features, names = fake_simulation()
    picked = {"main": 20, "second": 10} if second else {"main": 20}
    p_by_time = {label: data.p[:, k] for label, k in picked.items()}
    results = run_study(features, names, p_by_time, data.q[:, 20], data.species,
                        SelectConfig(d_max=4, random_draws=40, protocol=protocol),
                        tau_alpha=data.tau_alpha)
    results["propensity_time"] = {label: float(data.times[k]) for label, k in picked.items()}
    at_main = {"p": data.p[:, 20], "q": data.q[:, 20]}
    summary = report.summary_from_simulation(data, features, names, results, at_main,
                                             configuration=1, temperature=0.5)
    provenance = {"sim_file": "sim.h5", "sim_sha256": "0" * 64, "ranks": 1,
                  "config_toml": 'name = "tiny"\nseed = 1\n'}
    paths = report.write_report(out_dir, results, summary, provenance, run_name="tiny")
    return paths, results, summary


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    paths, results, summary = make_report(out)
    return out, paths, results, summary


# -- markdown parsing (independent of mpi_glass.report.markdown) --------------------

def table_after(markdown, heading):
    """Rows (lists of cell strings) of the first table after the line ``heading``."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-"):
                rows.append(cells)
        elif rows:
            break
    return rows[0], rows[1:]


def mean_std(cell):
    mean, std = re.fullmatch(r"(\S+) ± (\S+)", cell).groups()
    return float(mean), float(std)


def close(text_value, json_value):
    return abs(text_value - json_value) <= 5.1e-5


# -- tests -------------------------------------------------------------------------------

def test_every_figure_is_written_and_is_a_png(written):
    out, paths, *_ = written
    for name in FIGURE_FILES:
        path = out / "figures" / name
        assert path in paths
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_json_has_the_required_keys_and_no_arrays(written):
    out, *_ = written
    doc = json.loads((out / "report.json").read_text())
    for key in ("supervised", "unsupervised", "single_feature", "regression", "protocol",
                "tau_alpha", "timings", "provenance", "figures", "regression_at"):
        assert key in doc, key
    assert "predictions" not in doc  # per-particle arrays live in figure_data.npz
    assert doc["provenance"]["mpi_glass_version"]
    assert set(doc["figures"]) == {f"fig{i}" for i in (1, 2, 4, 5, 6, 7, 8, 9, 10)}


def test_markdown_regression_tables_match_json(written):
    out, *_ = written
    doc = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    label_of = {"supervised II": "supervised_ii", "unsupervised II": "unsupervised_ii",
                "Lasso": "lasso", "random": "random"}
    checks = [("### All particles, honest protocol", doc["regression"], None)]
    checks += [(f"### Species {s} (Fig. 9), honest protocol", doc["regression"], s)
               for s in "SML"]
    n_checked = 0
    for heading, study, group in checks:
        header, rows = table_after(md, heading)
        assert header[0] == "d" and len(rows) == 4
        for row in rows:
            d = int(row[0])
            for title, cell in zip(header[1:], row[1:]):
                block = study[label_of[title]]
                block = block if group is None else block["species"][group]
                mean, std = mean_std(cell)
                assert close(mean, block["pearson_mean"][d - 1]), (heading, title, d)
                assert close(std, block["pearson_std"][d - 1]), (heading, title, d)
                n_checked += 1
    assert n_checked == 4 * 4 * 4
    # the second time: the first "### All particles" after its section heading
    second = md[md.index("## Prediction at the second time"):]
    header, rows = table_after(second, "### All particles, honest protocol")
    for row in rows:
        mean, _ = mean_std(row[1])
        assert close(mean, doc["regression_at"]["second"]["supervised_ii"]["pearson_mean"]
                     [int(row[0]) - 1])


def test_markdown_side_by_side_protocols_match_json(written):
    """The honest and paper columns are the JSON means and stds; the difference column is
    the paired difference over test configurations, recomputed here from "pearson"."""
    out, *_ = written
    doc = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    honest, paper = (doc["regression_by_protocol"][k] for k in ("honest", "paper"))
    assert doc["regression"] == honest
    header, rows = table_after(md, "### honest vs paper protocol, side by side")
    methods = ["supervised_ii", "unsupervised_ii", "lasso", "random"]
    assert len(header) == 1 + 3 * len(methods) and len(rows) == 4
    for row in rows:
        d = int(row[0])
        for i, method in enumerate(methods):
            a, b, diff = (mean_std(cell) for cell in row[1 + 3 * i:4 + 3 * i])
            assert close(a[0], honest[method]["pearson_mean"][d - 1])
            assert close(b[0], paper[method]["pearson_mean"][d - 1])
            paired = np.array(paper[method]["pearson"])[:, d - 1] - \
                np.array(honest[method]["pearson"])[:, d - 1]
            assert close(diff[0], paired.mean()) and close(diff[1], paired.std())
            if method in ("lasso", "random"):
                assert diff == (0.0, 0.0)


def test_non_nested_lasso_sets_are_described_by_what_enters_and_leaves():
    names = ["a", "b", "c"]
    assert _describe_sets([[1], [1, 0], [1, 0, 2]], names) == "`b`, `a`, `c`"
    assert _describe_sets([[1], [0, 2], [0, 1, 2]], names) == \
        "d = 1: +`b`; d = 2: +`a` +`c` −`b`; d = 3: +`b`"


def test_markdown_single_feature_and_selection_tables_match_json(written):
    out, *_ = written
    doc = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    _, rows = table_after(md, "## Single features (Fig. 4)")
    assert [row[0] for row in rows] == doc["feature_names"]
    for name, pearson, forward, backward in rows:
        entry = doc["single_feature"][name]
        assert close(float(pearson), entry["pearson"])
        assert close(float(forward), entry["delta_x_to_p"])
        assert close(float(backward), entry["delta_p_to_x"])
    _, rows = table_after(md, "## Supervised selection (Fig. 5)")
    forward = np.array([entry["delta_forward"] for entry in doc["supervised"]])
    for row in rows[:-1]:
        assert close(mean_std(row[1])[0], forward[:, int(row[0]) - 1].mean())
    noise = np.array([entry["noise_forward"] for entry in doc["supervised"]])
    assert "noise" in rows[-1][0] and close(mean_std(rows[-1][1])[0], noise.mean())
    for entry in doc["supervised"]:  # every selected name is listed in the names table
        for name in entry["names"]:
            assert f"`{name}`" in md
    dq = doc["delta_q_p"]
    assert f"Δ(q→p) = {dq['delta_q_to_p']:.4f}" in md


def test_markdown_carries_protocol_timings_and_provenance(written):
    out, *_ = written
    md = (out / "report.md").read_text()
    assert md.startswith("# mpi_glass select report — tiny\n")
    assert "protocol **honest**" in md and "protocol **paper**" in md
    assert "notebook stored |ρ|" in md and "exactly d non-zero coefficients" in md
    assert "## Timings" in md and "supervised_folds" in md
    assert "0" * 64 in md and 'name = "tiny"' in md
    for name in FIGURE_FILES:
        assert f"figures/{name}" in md


def test_figure_data_holds_the_shown_configuration(written):
    out, _, results, summary = written
    data = report.load_figure_data(out / "figures" / report.DATA_FILE)
    assert int(data["configuration"]) == 1
    np.testing.assert_array_equal(data["p_hat"], results["predictions"]["p_hat"][1])
    np.testing.assert_array_equal(data["p_hat_all"], results["predictions"]["p_hat"])
    np.testing.assert_array_equal(data["p"], summary["p"])
    assert str(data["feature_name"]) == "theta_l2.0"
    assert data["scan_fs_cr"].shape[0] == 1


def test_redraw_script_reproduces_the_figures_from_the_files_alone(written, tmp_path):
    out, *_ = written
    copy = tmp_path / "copy"
    (copy / "figures").mkdir(parents=True)
    shutil.copy(out / "report.json", copy / "report.json")
    shutil.copy(out / "figures" / report.DATA_FILE, copy / "figures" / report.DATA_FILE)
    script = ROOT / "analysis" / "redraw_figures.py"
    subprocess.run([sys.executable, str(script), str(copy)], check=True, cwd=tmp_path,
                   capture_output=True, text=True)
    for name in FIGURE_FILES:
        redrawn = (copy / "figures" / name).read_bytes()
        assert redrawn == (out / "figures" / name).read_bytes(), name
    only = tmp_path / "only"
    proc = subprocess.run([sys.executable, str(script), str(copy), "--only", "fig7", "fig9",
                           "--out", str(only), "--format", "pdf"], check=True, cwd=tmp_path,
                          capture_output=True, text=True)
    assert sorted(p.name for p in only.iterdir()) == ["fig7_regression.pdf", "fig9_species.pdf"]
    assert len(proc.stdout.splitlines()) == 2


def test_redraw_script_refuses_a_folder_without_report(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / "redraw_figures.py"),
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no report.json" in proc.stderr


def test_single_protocol_without_second_time(tmp_path):
    """Fig. 10 is skipped and said so; one protocol: no side-by-side table."""
    make_report(tmp_path, second=False, protocol="paper")
    assert not (tmp_path / "figures" / "fig10_second_time.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "not drawn (no data): fig10" in md
    assert "side by side" not in md and "### All particles, paper protocol" in md
    doc = json.loads((tmp_path / "report.json").read_text())
    assert list(doc["regression_by_protocol"]) == ["paper"]


def test_jsonable_turns_nan_into_null():
    doc = report.jsonable({"a": np.array([1.0, np.nan]), "b": np.float32(2.5), "c": (np.inf,)})
    assert doc == {"a": [1.0, None], "b": 2.5, "c": [None]}
    json.dumps(doc, allow_nan=False)



@pytest.mark.parametrize("box, extent", [(np.array([9.0, 14.0]), (9.0, 14.0)),
                                         (np.array([8.0, 8.0]), (8.0, 8.0)),
                                         (np.float64(8.0), (8.0, 8.0))])   # older payloads
def test_maps_span_each_side_of_the_box(box, extent):
    """A rectangular box is drawn L_x wide and L_y high, positions wrapped side by side."""
    from matplotlib.figure import Figure
    from mpi_glass.report import figures
    rng = np.random.default_rng(1)
    unwrapped = rng.uniform(-1, 2, (50, 2)) * extent
    ax = Figure(figsize=(8, 8)).add_subplot()
    figures._map(ax, {"box": box, "positions": unwrapped, "species": np.zeros(50, int)},
                 rng.random(50), "p", "viridis")
    assert ax.get_xlim() == (0.0, extent[0]) and ax.get_ylim() == (0.0, extent[1])
    xy = ax.collections[0].get_offsets()
    assert np.all((xy >= 0) & (xy < extent))
    assert np.allclose(xy, np.mod(unwrapped, extent))
