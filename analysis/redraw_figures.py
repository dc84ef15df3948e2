#!/usr/bin/env python3
"""Redraw the report's figures from the files alone: no MPI, no recomputation.

    python analysis/redraw_figures.py REPORT_DIR [--only fig7 fig9] [--out DIR] [--format pdf]

REPORT_DIR is the output folder of ``mpi_glass select`` (it holds report.json and
figures/figure_data.npz).  Figures are drawn by ``mpi_glass.report.draw_figures``, the very
functions the report used, into REPORT_DIR/figures (or --out).  Figure keys: fig1 (F_s^CR),
fig2 (maps), fig4 (single features), fig5 (supervised), fig6 (unsupervised), fig7
(regression), fig8 (scatter), fig9 (species-wise), fig10 (second time).  Edit a drawing
function in mpi_glass/report/figures.py and rerun this script to restyle a figure.
"""
import argparse
import sys
from pathlib import Path

from mpi_glass.report import FIGURES, draw_figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path, help="folder with report.json and figures/")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="FIG",
                        help=f"figures to draw (default: all); one of {', '.join(FIGURES)}")
    parser.add_argument("--out", type=Path, help="output folder (default REPORT_DIR/figures)")
    parser.add_argument("--format", default="png", help="png (default), pdf, svg, ...")
    args = parser.parse_args(argv)
    if not (args.report_dir / "report.json").is_file():
        parser.error(f"{args.report_dir}: no report.json (run `mpi_glass select` first)")
    for path in draw_figures(args.report_dir, only=args.only, out_dir=args.out,
                             fmt=args.format):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
