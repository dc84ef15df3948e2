"""The report of ``mpi_glass select``: report.json, report.md and figures/ (root rank only).

Files written into ``out_dir``:

* ``report.json`` - the study's results (``study.run_study``) plus ``provenance`` and
  ``figures``; NaN is written as null.  The per-particle predictions are not in it.
* ``figures/figure_data.npz`` - the arrays the figures need beyond report.json (the
  ``sim_summary`` below, plus every configuration's predicted p_hat as ``p_hat_all``).
* ``figures/fig*.png`` - drawn *from these two files* by ``draw_figures``, the same function
  ``analysis/redraw_figures.py`` calls, so a redraw reproduces the report's figures exactly.
* ``report.md`` - rendered from the same dict as report.json, so their numbers agree.

Modules: ``data`` (the npz payload, JSON conversion, readers of report.json), ``figures``
(one drawing function per figure, ``FIGURES``, ``draw_figures``) and ``markdown``
(``render_markdown``); this file assembles them in ``write_report``.

``sim_summary`` keys (``summary_from_simulation`` builds it from a ``schema.SimData``):

==================  ===========  ===============================================================
key                 shape        meaning
==================  ===========  ===============================================================
times               (T,)         recorded times of the main ensemble (in time_unit)
time_unit           str          their unit: sim.h5's time_unit ("MC sweeps", "tau_LJ", ...)
fs_cr               (C, T)       F_s^CR(k, t) per configuration (replica mean)
tau_alpha           scalar       tau_alpha of the configuration-mean F_s^CR (time_unit)
temperature         scalar       temperature of the main ensemble (optional, NaN: unknown)
scan_temperatures   (K,)         relaxation-scan temperatures (optional, Fig. 1)
scan_times          (T',)        their recorded times
scan_fs_cr          (K, C', T')  their F_s^CR per configuration
scan_tau_alpha      (K,)         their tau_alpha
configuration       scalar       index c of the configuration shown in the maps (Figs. 2, 8)
positions           (N, 2)       its particle positions (wrapped into the box for drawing)
species             (N,)         its species codes 0 S, 1 M, 2 L
box                 (2,)         box sides L_x, L_y (a scalar in older payloads: the side)
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
from pathlib import Path

import numpy as np

from .. import __version__
from ..store import write_atomically
from .data import (DATA_FILE, figure_arrays, jsonable, load_figure_data,
                   summary_from_simulation)
from .figures import FIGURES, draw_figures
from .markdown import render_markdown

__all__ = ["DATA_FILE", "FIGURES", "draw_figures", "figure_arrays", "jsonable",
           "load_figure_data", "render_markdown", "summary_from_simulation", "write_report"]


def write_report(out_dir, results, sim_summary, provenance, run_name=None):
    """Write report.json, figures/ and report.md into ``out_dir``; returns their paths.

    results: ``study.run_study``'s dict (``predictions`` may hold numpy arrays);
    sim_summary: see the module docstring; provenance: free-form dict (the select command
    passes ``sim_file``, ``sim_sha256``, ``config_toml``, ``ranks``), completed here with the
    package version and the time of writing; run_name: the config's ``name`` (report title,
    report.json ``run_name``).
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
    doc = jsonable({**results, "run_name": run_name, "provenance": provenance,
                    "figures": {key: f"figures/{FIGURES[key].file}" for key in drawable}})
    write_atomically(out_dir / "figures" / DATA_FILE, lambda tmp: _save_npz(tmp, arrays))
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    write_atomically(out_dir / "report.json", lambda tmp: tmp.write_text(text))
    paths = draw_figures(out_dir)
    markdown = render_markdown(doc)
    write_atomically(out_dir / "report.md", lambda tmp: tmp.write_text(markdown))
    return [out_dir / "report.json", out_dir / "report.md", out_dir / "figures" / DATA_FILE,
            *paths]



def _save_npz(path, arrays):
    with open(path, "wb") as fh:     # a file object: savez would append ".npz" to a name
        np.savez_compressed(fh, **arrays)
