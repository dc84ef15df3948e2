#!/usr/bin/env python3
"""Draw U/N(t) and the overlap q(t) of certified equilibrations (and plain-MC relaxation).

    mpi_glass bench equilibrate --temperature 0.30 --n 1000 --plain-sweeps 200000 --save T0.30.npz
    python analysis/equilibration.py T0.50.npz T0.40.npz T0.35.npz T0.30.npz --out equilibration.png

Each .npz is what ``bench equilibrate --save`` writes: the energy and overlap series of the
equilibration (q against the previous check point, so it restarts at 1 at every check point,
marked by dotted lines), and, with ``--plain-sweeps``, q(t) and F_s^CR(t) of plain MC from the
certified configuration.  Left: U/N against sweeps; middle: q against sweeps; right: plain-MC
q(t) and F_s^CR(t) against log t, with 1/e marked.  A sim.h5 holds the same series under
/configurations (energy_series, certificate/overlap_series), which ``--sim`` draws instead.
"""
import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load_bench(path):
    """Series and result of one ``bench equilibrate --save`` file."""
    with np.load(path) as data:
        runs = {key: data[key] for key in data.files}
    result = json.loads(str(runs.pop("result_json")))
    label = f"T = {result['temperature']:g}, N = {result['n']}"
    return label, runs, result


def load_sim(path):
    """One (label, series) per configuration of a sim.h5."""
    import h5py
    with h5py.File(path, "r") as f:
        energy = f["configurations/energy_series"][()]
        overlap = f["configurations/certificate/overlap_series"][()]
        times = f["configurations/energy_times"][()]
        temperature = float(f.attrs["temperature"])
    return [(f"T = {temperature:g}, configuration {c}",
             dict(energy=energy[c], overlap=overlap[c], energy_times=times), {})
            for c in range(energy.shape[0])]


def draw(runs, out):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    plain = False
    for label, series, result in runs:
        t = series["energy_times"]
        line, = axes[0].plot(t, series["energy"], lw=0.8, label=label)
        axes[1].plot(t, series["overlap"], lw=0.8, color=line.get_color())
        for point in series.get("check_points", []):
            axes[1].axvline(point, color=line.get_color(), ls=":", lw=0.5)
        if "plain_times" in series:
            plain = True
            axes[2].semilogx(series["plain_times"], series["plain_overlap"],
                             color=line.get_color(), label=f"q, {label}")
            axes[2].semilogx(series["plain_times"], series["plain_fs"], "--",
                             color=line.get_color(), label=f"F_s^CR, {label}")
    axes[0].set(xlabel="equilibration sweeps", ylabel="U/N (epsilon_LS)", xscale="log")
    axes[1].set(xlabel="equilibration sweeps", ylabel="q against the previous check point",
                xscale="log")
    axes[2].set(xlabel="plain-MC sweeps from the certified configuration", ylabel="q, F_s^CR")
    for ax in axes[1:]:
        ax.axhline(1.0 / math.e, color="grey", lw=0.5)
    axes[0].legend(fontsize=8)
    if plain:
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="bench equilibrate --save files")
    parser.add_argument("--sim", type=Path, help="draw the configurations of a sim.h5 instead")
    parser.add_argument("--out", type=Path, default=Path("equilibration.png"))
    args = parser.parse_args(argv)
    runs = load_sim(args.sim) if args.sim else [load_bench(path) for path in args.files]
    if not runs:
        parser.error("give bench files or --sim FILE")
    print(draw(runs, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
