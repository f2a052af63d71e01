"""Time READNOISE and SUPERBIAS on simulated full-frame dark stacks of growing size.

For each stack size N it measures, each in a fresh process (so peak memory is that
run's own):

* ``bare``: a one-pass numpy read of the same files (memory-mapped, no BZERO
  scaling, row slabs) forming the independent group differences and their plain
  standard deviation, accumulated over files (sum and sum of squares);
* ``readnoise``, ``superbias`` and ``both`` (one compute for the two products):
  daskref from the files to the written reference files.

It prints wall time, CPU time (user + system, all threads: on a loaded machine
the wall-time ratio drifts, the CPU one much less), throughput (MB/s of input),
peak resident memory and the bytes read from the inputs (``rchar`` of
/proc/self/io) over the input size ("mmap" for the bare read, whose page faults
``rchar`` does not see).

Usage::

    python benchmarks/bench_readnoise.py --sizes 5 10 20 --workdir /tmp/daskref-bench
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _rchar() -> int:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def simulate_missing(d: Path, n: int, make_truth, *, nints: int, ngroups: int) -> list[Path]:
    """The darks ``d/dark_NNN_uncal.fits`` (k < n), simulating those not there yet.

    ``make_truth()`` is called once, when a file is missing; exposure ``k`` has the
    noise seed ``k``, so a file made by one benchmark serves the others.
    """
    from daskref.simulate import simulate_exposure

    d.mkdir(parents=True, exist_ok=True)
    truth, paths = None, []
    for k in range(n):
        p = d / f"dark_{k:03d}_uncal.fits"
        if not p.exists():
            truth = truth or make_truth()
            t0 = time.perf_counter()
            simulate_exposure(p, truth, nints=nints, ngroups=ngroups, seed=k,
                              start=f"2026-01-{1 + k % 28:02d}T00:00:00")
            print(f"  simulated {p.name} in {time.perf_counter() - t0:.1f} s", flush=True)
        paths.append(p)
    return paths


def ensure_inputs(workdir: Path, n: int, ngroups: int, nints: int) -> list[Path]:
    """Simulate (once) the n full-frame darks, reusing files from earlier runs."""
    from daskref.simulate import make_truth

    return simulate_missing(
        workdir / f"full_{nints}x{ngroups}", n,
        lambda: make_truth(subarray="FULL", seed=0, cosmic_ray_rate=5e-5),
        nints=nints, ngroups=ngroups)


def run_bare(paths: list[Path], slab_rows: int = 128) -> None:
    """One pass over the files in numpy: CDS differences and their plain std.

    The fastest honest read: each SCI array memory-mapped as stored (big-endian
    int16, no BZERO scaling, which cancels in a difference), converted to float32
    one row slab at a time (the byte swap is the one decoding step it cannot
    avoid), and the independent group differences' sum and sum of squares
    accumulated per pixel over every file.
    """
    from astropy.io import fits

    s1 = s2 = None
    n = 0
    for p in paths:
        with fits.open(p, memmap=False, lazy_load_hdus=False) as h:
            index = h.index_of("SCI")
            hdr = h[index].header
            offset = h.fileinfo(index)["datLoc"]
        shape = tuple(int(hdr[f"NAXIS{i}"]) for i in range(hdr["NAXIS"], 0, -1))
        raw = np.memmap(p, dtype=">i2", mode="r", offset=offset, shape=shape)
        nint, ngroup, ny, nx = shape
        if s1 is None:
            s1 = np.zeros((ny, nx), np.float64)
            s2 = np.zeros((ny, nx), np.float64)
        for y0 in range(0, ny, slab_rows):
            y1 = min(ny, y0 + slab_rows)
            slab = raw[:, :, y0:y1].astype(np.float32)
            d = slab[:, 1::2] - slab[:, 0:-1:2]
            s1[y0:y1] += d.sum(axis=(0, 1), dtype=np.float64)
            s2[y0:y1] += np.einsum("ijyx,ijyx->yx", d, d, dtype=np.float64)
        n += nint * (ngroup // 2)
        del raw
    std = np.sqrt(s2 / n - (s1 / n) ** 2)
    assert np.isfinite(std).mean() > 0.99


def run_daskref(paths: list[Path], mode: str, outdir: Path, chunk_mb, workers) -> None:
    import dask

    import daskref

    outdir.mkdir(parents=True, exist_ok=True)
    with dask.config.set(scheduler="threads", num_workers=workers):
        stack = daskref.open_stack(paths, chunk_mb=chunk_mb)
        products, outs = [], []
        if mode in ("readnoise", "both"):
            products.append(daskref.readnoise(stack))
            outs.append(outdir / "readnoise.fits")
        if mode in ("superbias", "both"):
            products.append(daskref.superbias(stack))
            outs.append(outdir / "superbias.fits")
        daskref.write(products, outs)


def child(args) -> None:
    import astropy.io.fits  # noqa: F401  (imports are not input bytes)

    import daskref  # noqa: F401

    paths = [Path(p) for p in args.files]
    r0 = _rchar()
    u = resource.getrusage(resource.RUSAGE_SELF)
    c0 = u.ru_utime + u.ru_stime
    t0 = time.perf_counter()
    if args.mode == "bare":
        run_bare(paths)
    else:
        run_daskref(paths, args.mode, Path(args.outdir), args.chunk_mb, args.workers)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime - c0,
                      "peak_mb": usage.ru_maxrss / 1024, "read": _rchar() - r0}))


def child_result(cmd: list[str], what: str) -> dict:
    """Run a benchmark child process; the JSON of its last output line.

    Exits with the child's stderr and ``what`` when it fails.
    """
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        raise SystemExit(f"{what} failed (exit status {run.returncode})")
    return json.loads(run.stdout.strip().splitlines()[-1])


def measure(mode: str, paths: list[Path], args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--outdir",
           str(Path(args.workdir) / f"out_{len(paths)}"), "--files", *map(str, paths)]
    if args.chunk_mb:
        cmd += ["--chunk-mb", str(args.chunk_mb)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    return child_result(cmd, f"{mode} on {len(paths)} files")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--ngroups", type=int, default=20)
    p.add_argument("--nints", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/daskref-bench")
    p.add_argument("--chunk-mb", type=float, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--modes", nargs="+", default=["bare", "readnoise", "superbias", "both"])
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--outdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.mode = args.child
        child(args)
        return
    workdir = Path(args.workdir)
    print(f"machine: {os.cpu_count()} cores; full frame 2048x2048, {args.nints} integrations x "
          f"{args.ngroups} groups per dark")
    all_paths = ensure_inputs(workdir, max(args.sizes), args.ngroups, args.nints)
    header = (f"{'N':>3} {'input GB':>8} {'mode':>10} {'wall s':>7} {'cpu s':>7} {'MB/s':>7} "
              f"{'peak MB':>8} {'read/input':>10} {'x bare':>7}")
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        paths = all_paths[:n]
        size = sum(q.stat().st_size for q in paths)
        bare_wall = None
        for mode in args.modes:
            r = measure(mode, paths, args)
            if mode == "bare":
                bare_wall = r["wall"]
            ratio = f"{r['wall'] / bare_wall:7.2f}" if bare_wall else f"{'-':>7}"
            read = "mmap" if mode == "bare" else f"{r['read'] / size:.2f}"
            print(f"{n:>3} {size / 1e9:8.2f} {mode:>10} {r['wall']:7.1f} {r['cpu']:7.1f} "
                  f"{size / 1e6 / r['wall']:7.0f} {r['peak_mb']:8.0f} "
                  f"{read:>10} {ratio}", flush=True)


if __name__ == "__main__":
    main()
