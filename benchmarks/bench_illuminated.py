"""Time SATURATION, LINEARITY and GAIN against READNOISE on simulated campaigns.

A linearity campaign (3 fluxes into saturation, ``--ngroups`` groups) and a
photon-transfer campaign (5 levels of flat pairs, 2 pairs each, a dark pair) of one
NIRCam window; each product is built and written in this process on the threaded
scheduler, READNOISE on the same ramps as the baseline. Printed per product: wall
time, MB/s of input SCI and the ratio to READNOISE.

Usage::

    python benchmarks/bench_illuminated.py --subarray SUBGRISM256 --workdir /tmp/bench-ill
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import daskref
from daskref.simulate import make_truth, simulate_ptc, simulate_ramps

ROWS = {"SUBGRISM64": 64, "SUBGRISM128": 128, "SUBGRISM256": 256, "FULL": 2048}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subarray", default="SUBGRISM64", choices=list(ROWS))
    ap.add_argument("--ngroups", type=int, default=20)
    ap.add_argument("--workdir", default="/tmp/daskref-bench-illuminated")
    args = ap.parse_args()
    work = Path(args.workdir)
    ny = ROWS[args.subarray]
    truth = make_truth(subarray=args.subarray, substrt=(1, 1), subsize=(2048, ny), tframe=10.0,
                       full_well=45000.0, nonlin_quadratic=0.03, nonlin_cubic=0.02,
                       amp_gains=(1.8, 2.0, 2.2, 1.9), gain_scatter=0.02, seed=1)
    lin = simulate_ramps(work / "lin", truth, (0.6, 1.2, 2.0), nints=2,
                         ngroups=args.ngroups).paths
    ptc = simulate_ptc(work / "ptc", truth, ngroups=5, n_pairs=2).paths
    runs = {"readnoise": (daskref.readnoise, lin), "saturation": (daskref.saturation, lin),
            "linearity": (daskref.linearity, lin), "gain": (daskref.gain, ptc)}
    base = None
    for name, (build, paths) in runs.items():
        size = sum(Path(p).stat().st_size for p in paths) / 1e6
        t0 = time.perf_counter()
        daskref.write(build(paths), work / f"{name}.fits", pedigree="SIMULATION")
        wall = time.perf_counter() - t0
        base = base or wall
        print(f"{name:11s} {wall:7.2f} s  {size / wall:7.1f} MB/s  x{wall / base:5.2f} "
              "of readnoise")


if __name__ == "__main__":
    main()
