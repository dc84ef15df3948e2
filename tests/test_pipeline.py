"""The two commands end to end on the shipped ci preset: ``simulate`` then ``select``, serially
and under ``mpiexec -n 2``, with the contents of select.h5 and report.json checked."""
import json

import h5py
import numpy as np
import pytest

from conftest import cli

from mpi_glass.config import preset_text

FIGURES = ["fig1", "fig2", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10"]
RECORDED = ("supervised_ii", "unsupervised_ii", "lasso")


def run_ci(out, ranks=None):
    cli("simulate", "--config", "ci", "--out", out, ranks=ranks)
    cli("select", "--config", "ci", "--out", out, ranks=ranks)
    with h5py.File(out / "select.h5", "r") as f:
        arrays = {name: f[f"prediction/{name}"][()] for protocol in ("honest", "paper")
                  for name in (f"{protocol}/{m}/features" for m in RECORDED)}
        names = list(f["features/names"].asstr()[()])
        top = dict(f.attrs)
        values_shape = f["features/values"].shape
        own = [list(row) for row in f["supervised/names"].asstr()[()]]
        for name in arrays:         # self-describing, axes labelled (schema.SELECT_FIELDS)
            dset = f[f"prediction/{name}"]
            assert dset.attrs["units"] and dset.attrs["description"], name
            assert [dim.label for dim in dset.dims] == ["configuration", "step", "slot"]
            assert dset.attrs["protocol"] == name.split("/")[0]
    return {"out": out, "arrays": arrays, "names": names, "attrs": top, "values_shape": values_shape,
            "own": own, "doc": json.loads((out / "report.json").read_text()),
            "md": (out / "report.md").read_text()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return run_ci(tmp_path_factory.mktemp("ci_serial"))


def test_select_h5_records_every_feature_set_used(serial):
    doc, arrays = serial["doc"], serial["arrays"]
    assert serial["values_shape"] == (3, 150, 60) and len(serial["names"]) == 60
    assert serial["attrs"]["protocol"] == "both"
    assert serial["attrs"]["propensity_time"] == pytest.approx(doc["tau_alpha"])
    for protocol in ("honest", "paper"):
        for method in RECORDED:
            features = arrays[f"{protocol}/{method}/features"]
            assert features.dtype == np.int16 and features.shape == (3, 4, 4)
            selected = doc["regression_by_protocol"][protocol][method]["selected"]
            for c in range(3):
                for d in range(1, 5):
                    row = features[c, d - 1]
                    assert list(row[:d]) == selected[c][d - 1]
                    assert len(set(row[:d])) == d and row[:d].min() >= 0 and row.max() < 60
                    assert np.all(row[d:] == -1)
    # the paper protocol predicts configuration c with c's own supervised selection
    paper = arrays["paper/supervised_ii/features"]
    for c in range(3):
        assert [serial["names"][j] for j in paper[c, 3]] == serial["own"][c]
    # Lasso is chosen on the training configurations under both protocols
    np.testing.assert_array_equal(arrays["honest/lasso/features"], arrays["paper/lasso/features"])


def test_report_json_holds_both_protocols_and_every_figure(serial):
    doc, md = serial["doc"], serial["md"]
    assert doc["run_name"] == "ci" and md.startswith("# mpi_glass select report — ci")
    assert doc["protocols"] == ["honest", "paper"]
    assert doc["regression"] == doc["regression_by_protocol"]["honest"]
    tau = doc["tau_alpha"]
    assert 0 < tau < 2000
    assert doc["propensity_time"]["main"] == pytest.approx(tau)
    assert doc["propensity_time"]["second"] == pytest.approx(0.0125 * tau)
    for protocol in ("honest", "paper"):
        study = doc["regression_by_protocol"][protocol]
        for method in RECORDED + ("random",):
            assert np.shape(study[method]["pearson"]) == (3, 4)
        assert set(doc["regression_at_by_protocol"][protocol]) == {"second"}
    assert set(doc["figures"]) == set(FIGURES)
    out_figures = [path for path in doc["figures"].values()]
    assert all(path.startswith("figures/fig") and path.endswith(".png") for path in out_figures)
    assert "honest vs paper protocol, side by side" in md


def test_the_same_under_two_ranks(serial, tmp_path):
    parallel = run_ci(tmp_path, ranks=2)
    for name, array in serial["arrays"].items():
        np.testing.assert_array_equal(parallel["arrays"][name], array, err_msg=name)
    for key in ("regression_by_protocol", "regression_at_by_protocol", "supervised",
                "unsupervised", "single_feature", "propensity_time", "tau_alpha"):
        assert parallel["doc"][key] == serial["doc"][key], key


@pytest.mark.parametrize("change, message", [
    (("second_time = \"0.0125 tau_alpha\"", "second_time = 1e6"),
     "select.second_time: 1e+06 MC sweeps lies outside the recorded times 1 ... 2000 MC sweeps"),
    (("protocol = \"both\"", "protocol = \"all\""),
     "select.protocol: must be one of honest, paper, both, got 'all'"),
])
def test_bad_select_keys_are_one_line_exit_2(serial, tmp_path, change, message):
    config = tmp_path / "bad.toml"
    config.write_text(preset_text("ci").replace(*change))
    proc = cli("select", "--config", config, "--out", tmp_path, "--sim",
               serial["out"] / "sim.h5", check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [f"mpi_glass: error: {message}"] or \
        (len(errors) == 1 and errors[0].endswith(message))
