"""The kernel cache follows edits of the modules a cached kernel inlines (``kernel_cache``)."""
import os
import subprocess
import sys
import textwrap

import pytest

from mpi_glass import kernel_cache

# A two-module package: ``user.total`` (cached) inlines ``energy.pair`` from another file, the
# way ``mc`` inlines ``fixedpoint``.  ``REFRESH`` says whether its __init__ refreshes the cache
# as mpi_glass's does.
_INIT = """
import os
if os.environ.get("REFRESH") == "1":
    from mpi_glass.kernel_cache import refresh
    refresh(os.path.dirname(os.path.abspath(__file__)))
"""
_ENERGY = """
from numba import njit

@njit(cache=True, inline="always")
def pair(x):
    return {value} * x
"""
_USER = """
from numba import njit
from .energy import pair

@njit(cache=True)
def total(x):
    return pair(x) + 0.0
"""


def _package(tmp_path, value):
    root = tmp_path / "toy"
    root.mkdir(exist_ok=True)
    (root / "__init__.py").write_text(_INIT)
    (root / "energy.py").write_text(textwrap.dedent(_ENERGY.format(value=value)))
    (root / "user.py").write_text(_USER)
    return root


def _run_total(tmp_path, refresh, cache_dir=""):
    env = dict(os.environ, REFRESH="1" if refresh else "0",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.getcwd()]))
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", "from toy.user import total; print(total(1.0))"],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.parametrize("refresh", [False, True])
def test_an_edit_of_an_inlined_module_reaches_the_cached_kernel_only_with_refresh(
        tmp_path, refresh):
    _package(tmp_path, 1.0)
    assert _run_total(tmp_path, refresh) == 1.0       # compiled and cached
    _package(tmp_path, 2.0)                           # the inlined module is edited
    # numba alone keeps the stale kernel (its cache keys on user.py only): the hazard.
    assert _run_total(tmp_path, refresh) == (2.0 if refresh else 1.0)


def test_refresh_follows_numba_cache_dir(tmp_path):
    cache = str(tmp_path / "cache")
    _package(tmp_path, 1.0)
    assert _run_total(tmp_path, True, cache) == 1.0
    assert any(name.endswith(".nbi") for _, _, files in os.walk(cache) for name in files)
    _package(tmp_path, 3.0)
    assert _run_total(tmp_path, True, cache) == 3.0


def test_refresh_drops_indexes_once_per_change_and_only_of_kernel_sources(tmp_path):
    root = _package(tmp_path, 1.0)
    pycache = root / "__pycache__"
    pycache.mkdir()
    index = pycache / "user.total-5.py311.nbi"
    index.write_bytes(b"x")
    assert kernel_cache.refresh(str(root), "") == [str(pycache)]     # no stamp yet
    assert not index.exists()
    index.write_bytes(b"x")
    assert kernel_cache.refresh(str(root), "") == []                 # nothing changed
    (root / "notes.py").write_text("WORDS = 'no kernels here'\n")      # imports no numba
    assert kernel_cache.refresh(str(root), "") == [] and index.exists()
    (root / "user.py").write_text(_USER + "\n# edited\n")
    assert kernel_cache.refresh(str(root), "") == [str(pycache)]
    assert not index.exists()


def test_a_cache_folder_that_cannot_be_used_is_left_alone_without_an_error(tmp_path):
    root = _package(tmp_path, 1.0)
    (root / "__pycache__").write_text("a file where the folder would be")
    assert kernel_cache.refresh(str(root), "") == []
    assert (root / "__pycache__").read_text() == "a file where the folder would be"
