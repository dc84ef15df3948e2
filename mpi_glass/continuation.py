"""Runs that continue: chain checkpoints that carry their physics, budgets that extend.

``simulate`` keeps one checkpoint per chain in ``sim.h5.checkpoint/``, also after sim.h5 is
written, so that a later run with a larger budget continues every chain where it stopped
instead of starting over:

* Each checkpoint records the physics of *its* chain (``chain_physics``): the keys that
  determine the chain's random walk and records, and nothing else.  A budget is not among
  them - ``equilibration.sweeps`` in the certified mode, whose check points do not depend on
  it (``equilibrium.check_points``), ``dynamics.t_max`` and ``extra_times`` for a trajectory -
  so a chain run under a larger budget is the same chain, continued.  A checkpoint of other
  physics, or one without the record (written by an earlier mpi_glass, with the budget-
  dependent check points), is refused in one line, or recomputed with ``--force``.
* A finished sim.h5 (or the folder's ``run.json``) whose physics differ from the config's only
  by budgets that grew (``GROWABLE``) is continued, and replaced once the continued run is
  complete; a budget that shrank is refused, naming both numbers (``growth_problem``).
* ``resize_samples`` and ``remap_records`` fit a continued chain's records to the new budget;
  the result is bit-identical to a run started with it.
"""
from __future__ import annotations

import json

import numpy as np

from .errors import InputError
from .schema import EQUILIBRATE

#: (section, key) of budgets that a continued run may raise (never lower).
GROWABLE = (("equilibration", "sweeps"), ("dynamics", "t_max"),
            ("dynamics", "configurations"), ("dynamics", "replicas"),
            ("relaxation_scan", "t_max"), ("relaxation_scan", "configurations"),
            ("relaxation_scan", "replicas"))
#: Keys that change no chain and no data: a continued run may change them freely.
FREE = (("equilibration", "require_certificate"),)
#: Sets of times that a continued run may add to (never remove from).
GROWABLE_SETS = (("dynamics", "extra_times"),)


def chain_physics(cfg, stage, temperature):
    """The keys that determine one chain of a run (a flat dict, dotted config names).

    An equilibration depends on the system at its ensemble's ``temperature``, the moves, the
    sampling and, through where its ensemble stops, the certificate's settings and schedule; its
    budget only in a fixed-length mode (``until`` = "sweeps" or a number).  A trajectory
    depends on the system, the moves and the recording grid's density (``per_decade``);
    which configuration it starts from is checked separately (``start``).

    Examples
    --------
    >>> from mpi_glass.config import parse_config
    >>> physics = chain_physics(parse_config("seed = 3"), EQUILIBRATE, 0.5)
    >>> physics["temperature"], physics["equilibration.length"]
    (0.5, 'certified: the ensemble stops together at 16 * 2^k samples')
    """
    physics = {"seed": int(cfg.seed), "system.n": int(cfg.system.n),
               "system.counts": [int(n) for n in cfg.counts],
               "system.density": float(cfg.system.density), "temperature": float(temperature),
               "mc.delta_max": float(cfg.mc.delta_max)}
    if stage == EQUILIBRATE:
        eq = cfg.equilibration
        from .equilibrium import MIN_CHECK_SAMPLES
        length = (f"certified: the ensemble stops together at {MIN_CHECK_SAMPLES} * 2^k samples"
                  if cfg.certified_mode else int(cfg.equilibration_sweeps))
        physics.update({"equilibration.swap_probability": float(eq.swap_probability),
                        "equilibration.sample_every": int(eq.sample_every),
                        "equilibration.certificate_threshold": float(eq.certificate_threshold),
                        "equilibration.length": length})
        if cfg.certified_mode:      # where the ensemble stops depends on them too
            physics.update({"equilibration.certificate_sigmas": float(eq.certificate_sigmas),
                            "equilibration.certificate_min_effective":
                                float(eq.certificate_min_effective)})
    else:
        physics["dynamics.per_decade"] = int(cfg.dynamics.per_decade)
    return physics


def physics_text(physics):
    """The canonical JSON a checkpoint stores (``ChainState.physics_json``)."""
    return json.dumps(physics, sort_keys=True)


def chain_mismatch(path, stored, physics):
    """One line saying why the checkpoint at ``path`` is not this chain's, or None.

    ``stored`` is its ``physics_json`` (None in a checkpoint of an earlier mpi_glass).

    Examples
    --------
    >>> chain_mismatch("eq.npz", '{"temperature": 2.0}', {"temperature": 1.0})
    'eq.npz: checkpoint of another run (temperature is 2.0 there, 1.0 in the config)'
    """
    if stored is None:
        return (f"{path}: checkpoint written by an earlier mpi_glass (no physics record; its "
                f"check points lie at budget / 2^k)")
    old = json.loads(stored)
    for key in sorted(set(old) | set(physics)):
        if json.dumps(old.get(key)) != json.dumps(physics.get(key)):
            return (f"{path}: checkpoint of another run ({key} is {_show(old.get(key))} "
                    f"there, {_show(physics.get(key))} in the config)")
    return None


def _show(value):
    return "absent" if value is None else json.dumps(value)


def growth_problem(old, new, lower_ok=False):
    """Why a run of physics dict ``new`` cannot continue a run of ``old``, or None.

    None when every difference is a budget that grew (``GROWABLE``, ``GROWABLE_SETS``) or a
    ``FREE`` key; else (dotted key, reason): "differs", or a lowered budget naming both
    values.  ``equilibration.sweeps`` grows only in the certified mode.  ``lower_ok``
    accepts lowered budgets too (the chains are then checked one by one).

    Examples
    --------
    >>> old = {"dynamics": {"t_max": 100, "per_decade": 8}}
    >>> growth_problem(old, {"dynamics": {"t_max": 400, "per_decade": 8}}) is None
    True
    >>> growth_problem(old, {"dynamics": {"t_max": 50, "per_decade": 8}})
    ('dynamics.t_max', 'dynamics.t_max = 50 is below the 100 it was run with')
    """
    old, new = _plain(old), _plain(new)
    certified = (new.get("equilibration", {}).get("until") == "certified"
                 and old.get("equilibration", {}).get("until") == "certified")
    for key, a, b in _differences(old, new):
        section_key = tuple(key.split(".", 1))
        if section_key in FREE:
            continue
        if section_key in GROWABLE_SETS and isinstance(a, list) and isinstance(b, list):
            dropped = sorted(set(a) - set(b))
            if dropped and not lower_ok:
                return key, f"{key} drops {dropped}, which it was run with"
            continue
        growable = section_key in GROWABLE and (key != "equilibration.sweeps" or certified)
        if growable and _is_number(a) and _is_number(b):
            if b < a and not lower_ok:
                return key, f"{key} = {b} is below the {a} it was run with"
            continue
        return key, f"{key} differs"
    return None


def _plain(physics):
    """Tuples as lists, numpy scalars as numbers: as the dict reads back from JSON."""
    return json.loads(json.dumps(physics, default=lambda v: v.tolist()))


def _differences(a, b, prefix=""):
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _differences(va, vb, f"{prefix}{key}.")
        elif json.dumps(va, sort_keys=True) != json.dumps(vb, sort_keys=True):
            yield prefix + key, va, vb


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lowered_budget(path, done, budget, key):
    """One line for a chain that already ran further than the budget now allows."""
    return (f"{path}: this chain already ran {done} sweeps, but {key} now allows {budget}; "
            f"raise {key} to at least {done} (nothing is truncated), or use --force to "
            f"recompute it")


def resize_samples(state, n_samples):
    """Fit an equilibration's energy and overlap records to a budget of ``n_samples``.

    Samples not taken yet are NaN, as in a chain started with that budget; only such samples
    are cut (the caller refuses a budget below what was run).  Returns whether it changed.
    """
    old = state.energy.size
    if old == n_samples:
        return False
    if state.n_recorded > n_samples:
        raise ValueError("resize_samples: recorded samples would be cut")
    for name in ("energy", "overlap"):
        values = np.full(n_samples, np.nan)
        keep = min(old, n_samples)
        values[:keep] = getattr(state, name)[:keep]
        setattr(state, name, values)
    return True


def unrecorded_time(record_times, n_recorded, sweeps_done, times):
    """The first of ``times`` that a trajectory has passed without recording it, or None.

    Examples
    --------
    >>> unrecorded_time([1, 10, 100], 3, 100, [1, 10, 50, 100, 400])   # 50 never recorded
    50
    >>> print(unrecorded_time([1, 10, 100], 3, 100, [1, 10, 400]))     # 100 is dropped
    None
    """
    recorded = {int(t) for t in np.asarray(record_times)[:n_recorded]}
    missing = [int(t) for t in times if t <= sweeps_done and int(t) not in recorded]
    return missing[0] if missing else None


def unrecorded_message(path, time, sweeps_done):
    return (f"{path}: recording time {time} lies inside the {sweeps_done} sweeps this "
            f"trajectory already ran, which did not record it; drop it from "
            f"dynamics.extra_times, or use --force to recompute the trajectories")


def remap_records(state, times, path):
    """Fit a trajectory's records to the recording ``times`` of the current config.

    Every time the chain has passed must have been recorded; the old ``t_max``, if it is not
    one of the new times, is dropped, as a run started with the new times never records it.
    Returns whether it changed; InputError (one line) when a new time lies inside the part
    already run and was not recorded.
    """
    times = np.asarray(times, dtype=np.int64)
    old = np.asarray(state.record_times, dtype=np.int64)
    if old.tobytes() == times.tobytes():
        return False
    missing = unrecorded_time(old, state.n_recorded, state.sweeps_done, times)
    if missing is not None:
        raise InputError(unrecorded_message(path, missing, state.sweeps_done),
                         same_on_every_rank=False)
    where = {int(t): k for k, t in enumerate(old[:state.n_recorded])}
    passed = times[times <= state.sweeps_done]
    records = np.zeros((times.size,) + state.records.shape[1:], dtype=state.records.dtype)
    for j, t in enumerate(passed):
        records[j] = state.records[where[int(t)]]
    state.records, state.record_times, state.n_recorded = records, times, int(passed.size)
    return True
