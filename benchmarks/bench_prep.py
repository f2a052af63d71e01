"""Benchmark: calibration prep through ramp fitting on full-frame NIRCam ramps.

Simulates ``--n-files`` 2048 x 2048 exposures (2 integrations x ``--ngroups`` groups)
and full-frame reference files, then runs dq_init, saturation, superbias, refpix,
linearity, dark_current, jump and ramp fitting on all of them and writes
``_rate``/``_rateints`` in one compute. Prints wall time, input throughput, peak
memory (RSS sampled every 50 ms), and the bytes read from each input versus its
size. With ``jwst`` installed, also times the official Detector1Pipeline on the same
steps for the first file.

    python benchmarks/bench_prep.py --n-files 1 --ngroups 20 --chunk-mb 64 --workers 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import dask
import numpy as np
import psutil
from astropy.io import fits

import daskref.io.fits as dfits
from daskref.io import products
from daskref.prep import prep_many
from daskref.simulate import group_times, simulate_campaign

STEPS = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,rate"


class PeakRSS:
    """Sample the process RSS in a thread; ``peak`` in bytes."""

    def __init__(self, interval=0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._proc = psutil.Process()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def write_references(outdir: Path, truth, ngroups: int) -> dict[str, Path]:
    """Full-frame reference files matching the simulated detector."""
    outdir.mkdir(parents=True, exist_ok=True)
    shape = truth.shape

    def write(name, exts, extra=None):
        primary = fits.PrimaryHDU()
        primary.header.update({"TELESCOP": "JWST", "INSTRUME": "NIRCAM",
                               "DETECTOR": truth.attrs["DETECTOR"], "SUBARRAY": "FULL",
                               "REFTYPE": name.upper()} | (extra or {}))
        path = outdir / f"{name}.fits"
        fits.HDUList([primary] + [fits.ImageHDU(a, name=e) for e, a in exts]).writeto(
            path, overwrite=True)
        return path

    zero_dq = np.zeros(shape, np.uint32)
    coeffs = np.zeros((3,) + shape, np.float32)
    coeffs[1] = 1.0
    t = group_times(truth.attrs, ngroups).astype(np.float32)
    dark = truth.dark_current.astype(np.float32)[None] * t[:, None, None]
    return {
        "mask": write("mask", [("DQ", zero_dq)]),
        "saturation": write("saturation", [("SCI", np.full(shape, 60000, np.float32)),
                                           ("DQ", zero_dq)]),
        "superbias": write("superbias", [("SCI", truth.bias.astype(np.float32)),
                                         ("DQ", zero_dq)]),
        "linearity": write("linearity", [("COEFFS", coeffs), ("DQ", zero_dq)]),
        "dark": write("dark", [("SCI", dark), ("DQ", zero_dq)], {"NFRAMES": 1, "GROUPGAP": 0}),
        "readnoise": write("readnoise", [("SCI", truth.readnoise_cds.astype(np.float32))]),
        "gain": write("gain", [("SCI", np.full(shape, truth.gain, np.float32))]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-files", type=int, default=1)
    parser.add_argument("--ngroups", type=int, default=20)
    parser.add_argument("--chunk-mb", type=float, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--workdir", default=None, help="keep files here (default: temp)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        t0 = time.perf_counter()
        campaign = simulate_campaign(work / "in", args.n_files, nints=2, ngroups=args.ngroups,
                                     seed=1, subarray="FULL", flux=50.0, amp_offset_sigma=5.0,
                                     cosmic_ray_rate=1e-3)
        refs = write_references(work / "refs", campaign.truth, args.ngroups)
        print(f"simulated {args.n_files} x 2048x2048 x 2 ints x {args.ngroups} groups "
              f"and references in {time.perf_counter() - t0:.1f} s")

        nbytes: Counter = Counter()
        original = dfits.read_rows

        def counting(layout, path, y0, y1):
            nbytes[str(path)] += (y1 - y0) * layout.nbytes // layout.shape[-2]
            return original(layout, path, y0, y1)

        dfits.read_rows = counting
        sizes = {str(p): os.path.getsize(p) for p in campaign.paths}
        config = {"scheduler": "threads"} | ({"num_workers": args.workers} if args.workers
                                             else {})
        with dask.config.set(config), PeakRSS() as mem:
            t1 = time.perf_counter()
            results = prep_many(campaign.paths, steps=STEPS, chunk_mb=args.chunk_mb, **refs)
            t_build = time.perf_counter() - t1
            written = products.write_products(results, work / "out")
            wall = time.perf_counter() - t1
        dfits.read_rows = original

        total = sum(sizes.values())
        chunks = results[0]["ramp"].chunks[2]
        print(f"prep ({STEPS}) -> {len(written)} products, row slabs of {chunks[0]} rows "
              f"({len(chunks)} per file), workers={args.workers or os.cpu_count()}")
        print(f"wall time      : {wall:.1f} s (graph built in {t_build:.2f} s)")
        print(f"throughput     : {total / 2**20 / wall:.1f} MB/s of input "
              f"({total / 2**20:.0f} MB in {args.n_files} file(s))")
        print(f"peak RSS       : {mem.peak / 2**20:.0f} MB (baseline {mem.base / 2**20:.0f} MB, "
              f"+{(mem.peak - mem.base) / 2**20:.0f} MB)")
        for p, size in sizes.items():
            print(f"bytes read     : {Path(p).name}: {nbytes[p]} of SCI data; file "
                  f"{size} bytes ({nbytes[p] / size:.3f} x file size, headers excluded)")

        try:
            from jwst.pipeline import Detector1Pipeline  # noqa: F401
        except ImportError:
            print("jwst Detector1Pipeline: skipped (jwst is not installed)")
            return
        from daskref.prep.backend_jwst import prep_jwst

        t2 = time.perf_counter()
        (task,) = prep_jwst(campaign.paths[:1], steps=STEPS, outdir=work / "jwst",
                            refs={k: str(v) for k, v in refs.items()})
        task.compute(scheduler="sync")
        print(f"jwst Detector1Pipeline (same steps, 1 file): {time.perf_counter() - t2:.1f} s")


if __name__ == "__main__":
    main()
