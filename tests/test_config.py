"""Config: presets load, bad input gives one-line errors naming the key."""
import dataclasses
from pathlib import Path

import pytest

from mpi_glass.config import PRESET_NAMES, load_config, parse_config, preset_text, time_spec
from mpi_glass.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_exist_once(name):
    """run/NAME.toml is a link to the packaged preset, so the two cannot drift apart."""
    link = ROOT / "run" / f"{name}.toml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "mpi_glass" / "presets" / f"{name}.toml").resolve()
    assert link.read_text() == preset_text(name)


def _flat(cfg):
    values = dataclasses.asdict(cfg)
    del values["source"]
    values["model"] = {"digest": cfg.model.digest()}
    return {f"{section}.{key}": value for section, table in values.items()
            if isinstance(table, dict) for key, value in table.items()}


def test_defaults_are_the_laptop_preset():
    """A key left out means what the default run does.  select.second_time is the one
    exception: the laptop preset asks for a second propensity time (paper Fig. 10), which
    would not exist in shorter runs, so the dataclass leaves it off."""
    laptop = _flat(load_config())
    defaults = _flat(parse_config('name = "laptop"\nseed = 2024\n'))
    assert set(laptop) == set(defaults)
    assert [key for key in laptop if laptop[key] != defaults[key]] == ["select.second_time"]


def test_paper_preset_is_the_paper():
    cfg = load_config(ROOT / "run" / "paper.toml")
    assert list(cfg.counts) == [1760, 800, 1440]
    assert cfg.system.n == 4000 and cfg.system.density == 1.024
    assert cfg.system.temperature == 0.30 and cfg.mc.delta_max == 0.12
    assert cfg.dynamics.configurations == 10 and cfg.dynamics.replicas == 30
    assert abs(cfg.box - (4000 / 1.024) ** 0.5) < 1e-12


def test_default_is_laptop():
    assert load_config().name == "laptop"


def test_fractions_for_any_n():
    cfg = parse_config("[system]\nn = 777\ncomposition = [0.44, 0.2, 0.36]\n")
    assert cfg.counts.sum() == 777


BAD = [
    ("[system]\nnn = 5\n", "system.*unknown key 'nn'.*did you mean 'n'"),
    ("[sytem]\nn = 5\n", "unknown key 'sytem'.*did you mean 'system'"),
    ("[system]\nn = 'many'\n", "system.n: expected int"),
    ("[system]\nn = 0\n", "system.n: must be >= 3"),
    ("[system]\ndensity = -1.0\n", "system.density: must be > 0"),
    ("[system]\ntemperature = 0\n", "system.temperature: must be > 0"),
    ("[system]\ncomposition = [10, 10, 10]\nn = 1000\n", "composition.*sum to 30"),
    ("[system]\ncomposition = [0.5, 0.6, 0.1]\n", "composition.*sum to 1.2"),
    ("[system]\nn = 20\n", "box side .* smaller than twice the largest cutoff"),
    ("[dynamics]\nreplicas = 0\n", "dynamics.replicas: must be >= 1"),
    ("[dynamics]\nconfigurations = 0\n", "dynamics.configurations: must be >= 1"),
    ("[dynamics]\nextra_times = [500, 100]\n", "extra_times: times must be positive and increasing"),
    ("[select]\nprotocol = 'cheat'\n", "select.protocol: must be one of honest, paper, both"),
    ("[select]\ntime = 'soon'\n", "select.time: expected 'tau_alpha', a fraction"),
    ("[select]\ntime = 0\n", "select.time: expected"),
    ("[select]\nsecond_time = -5\n", "select.second_time: expected .*0: none"),
    ("[select]\nsecond_time = 'half tau_alpha'\n", "select.second_time: expected"),
    ("[select]\nsecond_time = '0 tau_alpha'\n", "select.second_time: expected"),
    ("seed = -3\n", "seed: expected a non-negative integer"),
    ("[model]\nname = 'ka3d'\n", "model.name: unknown model 'ka3d'"),
    ("[model]\nnmae = 'ka2d'\n", "unknown key 'nmae'.*did you mean 'name'"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.9, 1.0], [1.0, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\n', "model.sigma: expected a square 2 x 2"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.8, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\n', "model.sigma: must be finite and symmetric"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.9, 1.0]]\n'
     'epsilon = [[1.0, 0.5], [1.0, 1.0]]\n', "model.epsilon: must be finite and symmetric"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, -0.9], [-0.9, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\n', "model.sigma: every sigma_ab must be > 0"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.9, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\ncutoff = 1.8\ninner = 2.0\n',
     "model.cutoff: the cutoff 1.8 must exceed the inner radius"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.9, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\ncutoff = [[2.5, 2.0], [1.5, 2.5]]\n',
     "model.cutoff: must be finite and symmetric"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.9, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\ncutoff = [2.5, 2.0]\n',
     "model.cutoff: expected one number or a 2 x 2 table"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.9, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\ncutoff = [[2.5, 1.9], [1.9, 2.5]]\n',
     r"model.cutoff: the cutoff \[\[2.5, 1.9\], \[1.9, 2.5\]\] must exceed the inner radius 2 "),
    ('[model]\nspecies = ["A"]\nepsilon = [[1.0]]\n', "model.sigma: required"),
    ('[model]\nname = "ka2d"\nspecies = ["A"]\nsigma = [[1.0]]\nepsilon = [[1.0]]\n',
     "model.name: 'ka2d' is a shipped model"),
    ('[model]\nspecies = ["A", "B"]\nsigma = [[1.0, 0.9], [0.9, 1.0]]\n'
     'epsilon = [[1.0, 1.0], [1.0, 1.0]]\n', "system.composition: composition must be 2"),
    ("[system\n", "not valid TOML"),
]


@pytest.mark.parametrize("text, pattern", BAD)
def test_bad_input_is_one_line(text, pattern):
    with pytest.raises(InputError, match=pattern) as err:
        parse_config(text, origin="bad.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("bad.toml")


def test_missing_file():
    with pytest.raises(InputError, match="no such config file.*presets: laptop, paper, ci, ka2d, beta"):
        load_config("/nonexistent/x.toml")


@pytest.mark.parametrize("text, expected", [
    ("tau_alpha", (1.0, True)), ("0.0125 tau_alpha", (0.0125, True)), ("2 tau_alpha", (2.0, True)),
    ("1000", (1000.0, False)), ("5e4", (5e4, False))])
def test_propensity_times_are_sweeps_or_fractions_of_tau_alpha(text, expected):
    assert time_spec(text) == expected


def test_numbers_in_toml_are_accepted_for_the_time_keys():
    cfg = parse_config("[select]\ntime = 1500\nsecond_time = 0.5\n")
    assert time_spec(cfg.select.time) == (1500.0, False)
    assert time_spec(cfg.select.second_time, zero_ok=True) == (0.5, False)
    cfg = parse_config("[select]\nsecond_time = '0.0125 tau_alpha'\n")
    assert time_spec(cfg.select.second_time, zero_ok=True) == (0.0125, True)
    assert time_spec(parse_config("").select.second_time, zero_ok=True)[0] >= 0


def test_readme_config_table_is_the_generated_one():
    from mpi_glass.config import config_table_markdown
    assert config_table_markdown() in (ROOT / "README.md").read_text()


def test_model_table_picks_or_defines_the_model():
    paper = parse_config('name = "x"\n')
    assert paper.model.name == "sharma2024" and paper.physics_dict()["model"]["form"] == "lj/smooth"
    ka2d = load_config("ka2d")
    assert ka2d.model.name == "ka2d" and ka2d.counts.tolist() == [600, 330, 360]
    assert abs(ka2d.box - 32.8962) < 1e-9
    assert ka2d.physics_dict()["model"] != paper.physics_dict()["model"]
    quad = parse_config('name = "q"\n[model]\nname = "quad"\nspecies = ["W", "X", "Y", "Z"]\n'
                        'sigma = [[1.0, 0.9, 1.0, 1.1], [0.9, 0.8, 0.85, 0.95], '
                        '[1.0, 0.85, 1.1, 1.1], [1.1, 0.95, 1.1, 1.2]]\n'
                        'epsilon = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]\n'
                        'form = "lj/cut"\ncutoff = 2.2\n'
                        '[system]\nn = 400\ncomposition = [0.25, 0.25, 0.25, 0.25]\n')
    assert quad.model.n_species == 4 and quad.counts.tolist() == [100] * 4
    assert quad.model.max_cutoff == 2.2 * 1.2


IMPORT = '[import]\nformat = "npz"\npath = "c{c}.npz"\npropensity_keys = ["p"]\n' \
         'propensity_times = [1.0]\n'


@pytest.mark.parametrize("value, expected", [("12.5", 12.5), ("[9, 14.5]", (9.0, 14.5)),
                                             ("0", 0.0)])
def test_import_box_is_one_side_or_two(value, expected):
    cfg = parse_config(IMPORT + f"box = {value}\n")
    assert cfg.imported.box == expected


@pytest.mark.parametrize("value, pattern", [
    ("[9.0, 0.0]", r"import.box: the sides \[L_x, L_y\] must both be > 0"),
    ("[9.0, 14.0, 1.0]", "import.box: expected a number or a list of two numbers"),
    ("['9', 14.0]", "import.box: expected a number or a list of two numbers"),
    ("[-9.0, 14.0]", "import.box: must be >= 0")])
def test_import_box_refuses_anything_else_in_one_line(value, pattern):
    with pytest.raises(InputError, match=pattern) as err:
        parse_config(IMPORT + f"box = {value}\n", origin="bad.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("bad.toml")
