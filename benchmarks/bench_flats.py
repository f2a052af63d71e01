"""Time the bad-pixel search in flats (with its prep) against READNOISE on the same files.

For each stack size N of full-frame NIRCam lamp flats (2048 x 2048, ``--nints`` x
``--ngroups``, half-well, with every flat defect of the simulator) it measures, each
in a fresh process (so peak memory is that run's own), on the threaded scheduler:

* ``readnoise``: ``daskref.readnoise(paths)`` + write (the baseline: raw ramps);
* ``flats``: ``daskref.mask_from_flats(paths, **refs)`` + write (with its diagnostic
  FITS and PNG): the prep through ramp
  fitting (saturation, superbias, refpix, linearity, dark_current, jump, rate) and the
  search, in one graph.

Printed per run: wall time, MB/s of input SCI, peak RSS, bytes read over the input
size (all, and without the reference files), and the wall time over READNOISE's
beside the target (6x); then peak memory by N (target: flat in N).

Usage::

    python benchmarks/bench_flats.py --sizes 5 10 --workdir /tmp/daskref-bench
    python benchmarks/bench_flats.py --sizes 2 --ngroups 6 --subarray SUBGRISM256  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from bench_readnoise import _rchar, child_result

MODES = ("readnoise", "flats")
TARGET = 6.0
REF_KINDS = ("saturation", "superbias", "linearity", "readnoise", "gain", "dark")
SUBARRAYS = ("SUBGRISM64", "SUBGRISM128", "SUBGRISM256")


def make_truth(subarray):
    from daskref.simulate import FLAT_DEFECT_DEFAULTS, make_truth

    kw = dict(seed=5, cosmic_ray_rate=5e-5, **FLAT_DEFECT_DEFAULTS)
    if subarray is None:
        return make_truth(subarray="FULL", **kw)
    ny = int(subarray.removeprefix("SUBGRISM"))
    return make_truth(subarray=subarray, substrt=(1, 2049 - ny), subsize=(2048, ny), **kw)


def ensure_inputs(workdir: Path, args):
    """Simulate (once) the flats and their references; (paths, {kind: path})."""
    from daskref.simulate import flat_level, flat_rate, simulate_exposure, write_references

    shape = "full" if args.subarray is None else args.subarray.lower()
    d = workdir / f"flats_{shape}_{args.nints}x{args.ngroups}"
    d.mkdir(parents=True, exist_ok=True)
    truth = rate = None
    paths = []
    for k in range(max(args.sizes)):
        p = d / f"flat_{k:03d}_uncal.fits"
        if not p.exists():
            if truth is None:
                truth = make_truth(args.subarray)
                rate = flat_rate(truth, flat_level(truth, args.ngroups, 0.5))
            t0 = time.perf_counter()
            simulate_exposure(p, truth, nints=args.nints, ngroups=args.ngroups, seed=100 + k,
                              flux=rate, start=f"2026-01-{1 + k % 28:02d}T00:00:00")
            print(f"  simulated {p.name} in {time.perf_counter() - t0:.1f} s", flush=True)
        paths.append(p)
    index = d / "references.json"
    if index.exists():
        refs = json.loads(index.read_text())
    else:
        written = write_references(truth or make_truth(args.subarray), d / "refs",
                                   ngroups=args.ngroups, kinds=list(REF_KINDS))
        refs = {k: os.fspath(v) for k, v in written.items()}
        index.write_text(json.dumps(refs, indent=1))
    return paths, refs


def child(args) -> None:
    import dask

    import daskref
    from daskref.testing import count_reads

    paths = [Path(p) for p in args.files]
    refs = json.loads(args.refs)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    with count_reads() as nbytes, dask.config.set(scheduler="threads",
                                                  num_workers=args.workers):
        r0 = _rchar()
        t0 = time.perf_counter()
        if args.child == "readnoise":
            daskref.write(daskref.readnoise(paths), out / "readnoise.fits")
        else:
            daskref.write(daskref.mask_from_flats(paths, **refs), out / "mask_flats.fits")
        wall = time.perf_counter() - t0
        read = _rchar() - r0
    ref_paths = set(refs.values())
    print(json.dumps({"wall": wall,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "read": read,
                      "ref_read": sum(v for k, v in nbytes.items() if k in ref_paths),
                      "input_read": sum(v for k, v in nbytes.items() if k not in ref_paths)}))


def measure(mode, paths, refs, args) -> dict:
    cmd = [sys.executable, os.fspath(Path(__file__).resolve()), "--child", mode,
           "--outdir", os.fspath(Path(args.workdir) / f"out_flats_{len(paths)}"),
           "--workers", str(args.workers), "--refs", json.dumps(refs),
           "--files", *map(os.fspath, paths)]
    return child_result(cmd, f"{mode} on {len(paths)} files")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 10])
    p.add_argument("--ngroups", type=int, default=10)
    p.add_argument("--nints", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/daskref-bench")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--subarray", default=None, choices=SUBARRAYS)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--outdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--refs", default=None, help=argparse.SUPPRESS)
    p.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return
    from daskref.io.fits import read_info

    shape = "full frame 2048x2048" if args.subarray is None else f"subarray {args.subarray}"
    print(f"machine: {os.cpu_count()} cores; {shape} flats, {args.nints} integrations x "
          f"{args.ngroups} groups; threads scheduler, {args.workers} workers")
    all_paths, refs = ensure_inputs(Path(args.workdir), args)
    header = (f"{'N':>3} {'input GB':>8} {'mode':>10} {'wall s':>7} {'MB/s':>6} "
              f"{'peak MB':>8} {'read/in':>8} {'-refs/in':>8} {'sci/in':>7} {'x readn':>7} "
              f"{'target':>8}")
    print(header)
    print("-" * len(header))
    peaks = {m: {} for m in MODES}
    for n in args.sizes:
        paths = all_paths[:n]
        size = sum(read_info(q).sci.nbytes for q in paths)
        base = None
        for mode in MODES:
            r = measure(mode, paths, refs, args)
            peaks[mode][n] = r["peak_mb"]
            base = r["wall"] if mode == "readnoise" else base
            ratio = r["wall"] / base
            target = "-" if mode == "readnoise" else (
                f"<={TARGET:g}x " + ("ok" if ratio <= TARGET else "NO"))
            print(f"{n:>3} {size / 1e9:8.2f} {mode:>10} {r['wall']:7.1f} "
                  f"{size / 1e6 / r['wall']:6.0f} {r['peak_mb']:8.0f} {r['read'] / size:8.3f} "
                  f"{(r['read'] - r['ref_read']) / size:8.3f} {r['input_read'] / size:7.3f} "
                  f"{ratio:7.2f} {target:>8}",
                  flush=True)
    print("read/in: rchar over input SCI bytes (Python, outputs' validation included); "
          "-refs/in: less the reference files; sci/in: image bytes read from the inputs")
    if len(args.sizes) > 1:
        lo, hi = min(args.sizes), max(args.sizes)
        print(f"peak RSS (MB) by N (target: flat from N={lo} to N={hi})")
        for mode, by_n in peaks.items():
            print(f"{mode:>10} " + " ".join(f"N={n}: {by_n[n]:.0f}" for n in args.sizes)
                  + f"  ratio {by_n[hi] / by_n[lo]:.2f}")


if __name__ == "__main__":
    main()
