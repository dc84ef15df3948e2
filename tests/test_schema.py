"""The file schema: typed round trips, axes readable with plain h5py, versions, README tables."""
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, cli
from mpi_glass import schema
from mpi_glass.config import load_config
from mpi_glass.errors import InputError
from mpi_glass.schema import ChainState, SelectData, SimData

C, R, T, N, S = 2, 3, 5, 7, 4


def fake_certificate(rng):
    """Every certificate field, random, in its declared shape and dtype."""
    sizes = {"configuration": C, "sample": S, "pair": 3}
    return {name: rng.random(tuple(sizes[d] for d in spec.dims)).astype(spec.dtype)
            for name, spec in schema.CERTIFICATE_FIELDS.items()}


def fake_sim_data(rng, scan=True):
    """A SimData of small random arrays with every field filled."""
    times = np.array([1, 2, 5, 10, 20])
    data = SimData(
        positions=rng.random((C, N, 2)), species=rng.integers(0, 3, (C, N)).astype(np.int8),
        energy_times=np.arange(1, S + 1) * 10, energy_series=rng.random((C, S)),
        **fake_certificate(rng),
        times=times, fs_cr=rng.random((C, T)), tau_alpha=12.5,
        tau_alpha_per_configuration=rng.random(C), p=rng.random((C, T, N)),
        q=rng.random((C, T, N)),
        displacements=rng.random((C, R, T, N, 2)).astype(np.float32),
        import_files=np.array(["c0/r0.dump", "c1/r0.dump"]),
        import_sizes=np.array([10, 20]), import_sha256=np.array(["ab", "cd"]),
        attrs=schema.provenance_attrs(load_config("ci"), "sim", extra={"io_path": "test"}))
    if scan:
        data.scan_temperatures = np.array([1.0, 1.5])
        data.scan_times = np.array([1, 3, 9])
        data.scan_fs_cr = rng.random((2, 2, 3))
        data.scan_tau_alpha = rng.random(2)
        data.scan_certified = np.array([[True, False], [False, True]])
    return data


def fake_select_data(rng, d=3, M=4):
    names = [f"f{m}" for m in range(M)]
    results = {}
    for method in ("supervised", "unsupervised"):
        results[method] = [{"selected": list(rng.permutation(M)[:d]),
                            "names": [names[0]] * d, "delta_forward": list(rng.random(d)),
                            "delta_backward": list(rng.random(d)),
                            "delta_symmetric": list(rng.random(d))} for _ in range(C)]
    attrs = schema.provenance_attrs(load_config("ci"), "select")
    return SelectData.from_results(rng.random((C, N, M)), names, results, attrs), results


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(3)
    sim, select = fake_sim_data(rng), fake_select_data(rng)[0]
    with h5py.File(tmp_path / "sim.h5", "w") as f:
        schema.write_sim(f, sim)
    with h5py.File(tmp_path / "select.h5", "w") as f:
        schema.write_select(f, select)
    return tmp_path / "sim.h5", tmp_path / "select.h5", sim, select


def test_sim_round_trip_is_exact(files):
    path, _, written, _ = files
    read = schema.read_sim(path, displacements=True)
    for name in schema.SIM_FIELDS:
        if name != "configuration_index":
            a, b = np.asarray(getattr(written, name)), np.asarray(getattr(read, name))
            if schema.SIM_FIELDS[name].dtype == "str":
                assert a.tolist() == b.tolist(), name
                continue
            assert a.tobytes() == b.tobytes() and a.shape == b.shape, name
            assert b.dtype == schema.SIM_FIELDS[name].h5_dtype(), name
    assert read.displacements is not None and schema.read_sim(path).displacements is None
    assert np.array_equal(read.box, written.box) and read.box.shape == (2,)
    assert read.temperature == load_config("ci").system.temperature
    assert isinstance(read.attrs["config_toml"], str)


def test_select_names_read_back_as_str_in_configuration_rows(files):
    _, path, _, written = files
    read = schema.read_select(path)
    assert read.supervised_names.shape == (C, 3) and read.supervised_names.dtype.kind == "U"
    assert all(type(name) is str for name in read.feature_names.tolist())
    np.testing.assert_array_equal(read.unsupervised_delta_symmetric,
                                  written.unsupervised_delta_symmetric)
    np.testing.assert_array_equal(read.step, [1, 2, 3])


def test_from_results_rows_are_configurations():
    data, results = fake_select_data(np.random.default_rng(0))
    for c in range(C):
        assert data.supervised_selected[c].tolist() == results["supervised"][c]["selected"]
        assert data.unsupervised_delta_backward[c].tolist() == \
            results["unsupervised"][c]["delta_backward"]


def test_plain_h5py_finds_units_descriptions_and_axes(files):
    sim_path, select_path, sim, select = files
    for path in (sim_path, select_path):
        with h5py.File(path, "r") as f:
            found = []
            f.visititems(lambda name, obj: found.append(obj)
                         if isinstance(obj, h5py.Dataset) else None)
            for dset in found:
                assert dset.attrs["units"] and dset.attrs["description"], dset.name
                assert all(dim.label for dim in dset.dims), dset.name
    with h5py.File(sim_path, "r") as f:
        p = f["propensity/p"]
        assert [dim.label for dim in p.dims] == ["configuration", "time", "particle"]
        np.testing.assert_array_equal(p.dims[1][0][()], sim.times)
        np.testing.assert_array_equal(p.dims[0][0][()], [0, 1])
        assert p.dims[1][0].attrs["units"] == schema.STEPS     # of time_per_step, in
        assert f.attrs.get("time_unit", schema.MC_TIME_UNIT) == "MC sweeps"  # time_unit
        disp = f["dynamics/displacements"]
        assert [dim.label for dim in disp.dims] == ["configuration", "replica", "time",
                                                   "particle", "xy"]
        np.testing.assert_array_equal(f["configurations/energy_series"].dims[1][0][()],
                                      sim.energy_times)
        np.testing.assert_array_equal(f["relaxation_scan/fs_cr"].dims[2][0][()],
                                      sim.scan_times)
        for name in ("q", "tau_alpha_per_configuration", "energy_times", "certificate_drift"):
            assert f[schema.SIM_FIELDS[name].path].attrs["units"]
    with h5py.File(select_path, "r") as f:
        values = f["features/values"]
        assert list(values.dims[2][0].asstr()[()]) == list(select.feature_names)
        assert list(f["supervised/names"].dims[1][0][()]) == [1, 2, 3]


def test_other_schema_version_is_one_line_input_error(files, tmp_path):
    sim_path, _, _, _ = files
    with h5py.File(sim_path, "r+") as f:
        f.attrs["schema_version"] = 1
    with pytest.raises(InputError, match=rf"file schema 1, this mpi_glass reads schema "
                                         rf"{schema.SCHEMA_VERSION}"):
        schema.read_sim(sim_path)
    proc = cli("select", "--config", "ci", "--sim", sim_path, "--out", tmp_path / "sel",
               check=False)
    assert proc.returncode == 2 and "schema 1" in proc.stderr and "--force" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_missing_dataset_and_foreign_file_are_input_errors(files, tmp_path):
    sim_path, select_path, _, _ = files
    with pytest.raises(InputError, match="not an mpi_glass sim file"):
        schema.read_sim(select_path)
    with h5py.File(sim_path, "r+") as f:
        del f["propensity/p"]
    with pytest.raises(InputError, match="missing dataset /propensity/p"):
        schema.read_sim(sim_path)


def test_chain_state_round_trip_and_old_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    state = ChainState(positions=rng.random((N, 2)), images=np.zeros((N, 2), dtype=np.int64),
                       species=np.zeros(N, dtype=np.int8), rng=np.arange(4, dtype=np.uint64),
                       sweeps_done=40, n_recorded=2, energy=rng.random(S))
    path = tmp_path / schema.checkpoint_name(schema.EQUILIBRATE, 0, 3)
    state.save(path)
    back = ChainState.load(path)
    assert (back.sweeps_done, back.n_recorded, back.done) == (40, 2, False)
    assert type(back.sweeps_done) is int and back.records is None
    for name in ("positions", "images", "species", "rng", "mc_counts", "energy"):
        a, b = getattr(state, name), getattr(back, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    np.savez(tmp_path / "old.npz", positions=state.positions)
    with pytest.raises(InputError, match="file schema 1.*--force"):
        ChainState.load(tmp_path / "old.npz")


def test_checkpoint_names():
    assert schema.checkpoint_name(schema.EQUILIBRATE, 1, 2) == "eq_e1_c2.npz"
    assert schema.checkpoint_name(schema.TRAJECTORY, 0, 2, 5) == "tr_e0_c2_r5.npz"


def test_readme_file_tables_are_generated_from_the_schema():
    block = schema.readme_block((ROOT / "README.md").read_text())
    assert block is not None, "README.md lost its schema-table markers"
    assert block == schema.markdown_tables(), \
        "README file tables differ from the schema: run python -m mpi_glass.schema --update README.md"


def test_every_field_is_documented_with_known_dimensions():
    for fields in (schema.SIM_FIELDS, schema.SELECT_FIELDS, schema.CHAIN_FIELDS):
        for name, spec in fields.items():
            assert spec.units and spec.description, name
            assert all(dim in schema.DIMS for dim in spec.dims), name
            assert not spec.scale or len(spec.dims) == 1, name
    assert Path(schema.__file__).name == "schema.py"


@pytest.mark.parametrize("stored, sides", [(np.array([12.5, 12.5]), [12.5, 12.5]),
                                           (12.5, [12.5, 12.5]),
                                           (np.array([9.0, 14.0]), [9.0, 14.0])])
def test_box_reads_both_sides_and_square_files_as_before(tmp_path, stored, sides):
    """Square files (box (L, L), or one L) read as (L, L); a rectangle as (L_x, L_y)."""
    data = SimData(positions=np.zeros((1, 4, 2)), species=np.zeros((1, 4), np.int8),
                   times=np.array([1, 10]), tau_alpha=5.0, p=np.zeros((1, 2, 4)),
                   attrs={"mpi_glass_file": "sim", "schema_version": schema.SCHEMA_VERSION,
                          "box": stored})
    with h5py.File(tmp_path / "s.h5", "w") as f:
        schema.write_sim(f, data)
    box = schema.read_sim(tmp_path / "s.h5").box
    assert box.dtype == np.float64 and box.tolist() == sides
