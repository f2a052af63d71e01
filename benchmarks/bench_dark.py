"""Time DARK and MASK (from darks, with their prep) against READNOISE on simulated darks.

For each stack size N of full-frame NIRCam darks (2048 x 2048, ``--nints`` integrations
x ``--ngroups`` groups) it measures, each in a fresh process (so peak memory is that
run's own), with the dask threaded scheduler on ``--workers`` threads:

* ``readnoise``: ``daskref.readnoise(paths)`` written with ``daskref.write`` (the
  baseline: raw ramps, no prep);
* ``dark``: ``daskref.dark(paths, **refs)`` + write; its prep (saturation, superbias,
  refpix, linearity, jump) runs in the same graph;
* ``mask``: ``daskref.mask_from_darks(paths, **refs)`` + write (prep through ramp
  fitting);
* ``dark+mask``: both products in one ``daskref.write([dk, mk], [p1, p2])``.

The references (saturation, superbias, linearity, readnoise, gain) are written once by
:func:`daskref.simulate.write_references` from the truth the darks were simulated with.
The inputs are the files of ``benchmarks/bench_readnoise.py`` (same truth, same folder
of ``--workdir``), so either benchmark reuses the other's files.

Printed per run: wall time (graph building, compute and writing), throughput (MB/s of
input; input = SCI bytes on disk of the N files), peak resident memory (``ru_maxrss``),
bytes read (``rchar`` of /proc/self/io) over the input size, the same less the bytes
read from the reference files (counted by :func:`daskref.testing.count_reads`), the SCI
bytes read from the inputs over the input size, and the wall time over that of
``readnoise`` at the same N, beside the targets (DARK within 4x, MASK within 6x);
then the peak memory of each product at every N side by side (target: flat in N).

Usage::

    python benchmarks/bench_dark.py --sizes 5 10 --workdir /tmp/daskref-bench
    python benchmarks/bench_dark.py --sizes 2 --ngroups 6 --subarray SUBGRISM256  # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from bench_readnoise import _rchar, child_result, simulate_missing

MODES = ("readnoise", "dark", "mask", "dark+mask")
REF_KINDS = ("saturation", "superbias", "linearity", "readnoise", "gain")
SUBARRAYS = ("SUBGRISM64", "SUBGRISM128", "SUBGRISM256")
TARGETS = {"dark": 4.0, "mask": 6.0}
# the truth of bench_readnoise.ensure_inputs (so the full-frame files are shared)
TRUTH = {"seed": 0, "cosmic_ray_rate": 5e-5}


def make_truth(subarray):
    from daskref.simulate import make_truth

    if subarray is None:
        return make_truth(subarray="FULL", **TRUTH)
    ny = int(subarray.removeprefix("SUBGRISM"))  # full width, the top rows of the frame
    return make_truth(subarray=subarray, substrt=(1, 2049 - ny), subsize=(2048, ny), **TRUTH)


def folder_name(subarray, nints: int, ngroups: int) -> str:
    shape = "full" if subarray is None else subarray.lower()
    return f"{shape}_{nints}x{ngroups}"


def ensure_inputs(workdir: Path, n: int, args) -> list[Path]:
    """Simulate (once) the n darks, reusing the files of earlier runs."""
    return simulate_missing(workdir / folder_name(args.subarray, args.nints, args.ngroups), n,
                            lambda: make_truth(args.subarray), nints=args.nints,
                            ngroups=args.ngroups)


def ensure_references(workdir: Path, args) -> dict[str, str]:
    """Write (once) the prep references from the inputs' truth; ``{kind: path}``."""
    from daskref.simulate import write_references

    d = workdir / f"refs_{folder_name(args.subarray, args.nints, args.ngroups)}"
    index = d / "references.json"
    if index.exists():
        refs = json.loads(index.read_text())
        if set(refs) == set(REF_KINDS) and all(Path(p).exists() for p in refs.values()):
            return refs
    t0 = time.perf_counter()
    written = write_references(make_truth(args.subarray), d, ngroups=args.ngroups,
                               kinds=list(REF_KINDS))
    refs = {k: os.fspath(v) for k, v in written.items()}
    index.write_text(json.dumps(refs, indent=1))
    print(f"  wrote the references ({', '.join(refs)}) in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return refs


def sci_bytes(path: Path) -> int:
    from daskref.io.fits import read_info

    return read_info(path).sci.nbytes


def run_daskref(paths: list[Path], mode: str, outdir: Path, refs: dict, chunk_mb,
                workers: int) -> None:
    import dask

    import daskref

    outdir.mkdir(parents=True, exist_ok=True)
    with dask.config.set(scheduler="threads", num_workers=workers):
        products, outs = [], []
        if mode == "readnoise":
            products.append(daskref.readnoise(paths, chunk_mb=chunk_mb))
            outs.append(outdir / "readnoise.fits")
        if mode in ("dark", "dark+mask"):
            products.append(daskref.dark(paths, chunk_mb=chunk_mb, **refs))
            outs.append(outdir / "dark.fits")
        if mode in ("mask", "dark+mask"):
            products.append(daskref.mask_from_darks(paths, chunk_mb=chunk_mb, **refs))
            outs.append(outdir / "mask.fits")
        daskref.write(products, outs)


def child(args) -> None:
    import astropy.io.fits  # noqa: F401  (imports are not input bytes)

    import daskref  # noqa: F401
    from daskref.testing import count_reads

    paths = [Path(p) for p in args.files]
    refs = json.loads(args.refs)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with count_reads() as nbytes:
        r0 = _rchar()
        t0 = time.perf_counter()
        run_daskref(paths, args.mode, Path(args.outdir), refs, args.chunk_mb, args.workers)
        wall = time.perf_counter() - t0
        read = _rchar() - r0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ref_paths = {os.fspath(p) for p in refs.values()}
    print(json.dumps({
        "wall": wall, "peak_mb": peak_kb / 1024, "base_mb": base_kb / 1024, "read": read,
        "ref_read": sum(v for k, v in nbytes.items() if k in ref_paths),
        "input_read": sum(v for k, v in nbytes.items() if k not in ref_paths)}))


def measure(mode: str, paths: list[Path], refs: dict, args) -> dict:
    outdir = Path(args.workdir) / f"out_dark_{len(paths)}"
    cmd = [sys.executable, os.fspath(Path(__file__).resolve()), "--child", mode,
           "--outdir", os.fspath(outdir), "--workers", str(args.workers),
           "--refs", json.dumps(refs), "--files", *map(os.fspath, paths)]
    if args.chunk_mb is not None:
        cmd += ["--chunk-mb", str(args.chunk_mb)]
    return child_result(cmd, f"{mode} on {len(paths)} files")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 10])
    p.add_argument("--ngroups", type=int, default=20)
    p.add_argument("--nints", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/daskref-bench")
    p.add_argument("--chunk-mb", type=float, default=None,
                   help="chunk_mb= of every call (default: the library's)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--subarray", default=None, choices=SUBARRAYS,
                   help="debug: simulate this subarray (2048 x 64/128/256) not the full frame")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--outdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--refs", default=None, help=argparse.SUPPRESS)
    p.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.mode = args.child
        child(args)
        return
    workdir = Path(args.workdir)
    shape = "full frame 2048x2048" if args.subarray is None else f"subarray {args.subarray}"
    print(f"machine: {os.cpu_count()} cores; {shape}, {args.nints} integrations x "
          f"{args.ngroups} groups per dark; threads scheduler, {args.workers} workers, "
          f"chunk_mb={args.chunk_mb}")
    all_paths = ensure_inputs(workdir, max(args.sizes), args)
    refs = ensure_references(workdir, args)
    ref_disk = sum(Path(q).stat().st_size for q in refs.values())
    print(f"references: {', '.join(refs)} ({ref_disk / 1e6:.0f} MB on disk)")
    header = (f"{'N':>3} {'input GB':>8} {'mode':>10} {'wall s':>7} {'MB/s':>6} "
              f"{'peak MB':>8} {'read/in':>8} {'-refs/in':>8} {'sci/in':>7} "
              f"{'x readn':>7} {'target':>7}")
    print(header)
    print("-" * len(header))
    peaks: dict[str, dict[int, float]] = {m: {} for m in args.modes}
    for n in args.sizes:
        paths = all_paths[:n]
        size = sum(sci_bytes(q) for q in paths)
        base_wall = None
        for mode in args.modes:
            r = measure(mode, paths, refs, args)
            peaks[mode][n] = r["peak_mb"]
            if mode == "readnoise":
                base_wall = r["wall"]
            ratio = r["wall"] / base_wall if base_wall else None
            goal = TARGETS.get(mode)
            if goal is None:
                target = f"{'-':>7}"
            else:
                ok = "" if ratio is None else (" ok" if ratio <= goal else " NO")
                target = f"{'<=' + f'{goal:g}' + 'x' + ok:>7}"
            print(f"{n:>3} {size / 1e9:8.2f} {mode:>10} {r['wall']:7.1f} "
                  f"{size / 1e6 / r['wall']:6.0f} {r['peak_mb']:8.0f} "
                  f"{r['read'] / size:8.3f} {(r['read'] - r['ref_read']) / size:8.3f} "
                  f"{r['input_read'] / size:7.3f} "
                  f"{'-' if ratio is None else f'{ratio:.2f}':>7} {target}",
                  flush=True)
    print("read/in: rchar over input SCI bytes; -refs/in: the same less the bytes read from "
          "the reference files; sci/in: image bytes read from the inputs (SCI and any DQ) "
          "over input SCI bytes")
    if len(args.sizes) > 1:
        lo, hi = min(args.sizes), max(args.sizes)
        print(f"peak RSS (MB) by N (target: flat from N={lo} to N={hi})")
        print(f"{'mode':>10} " + " ".join(f"{'N=' + str(n):>7}" for n in args.sizes)
              + f" {str(hi) + '/' + str(lo):>7}")
        for mode, by_n in peaks.items():
            print(f"{mode:>10} " + " ".join(f"{by_n[n]:7.0f}" for n in args.sizes)
                  + f" {by_n[hi] / by_n[lo]:7.2f}")


if __name__ == "__main__":
    main()
