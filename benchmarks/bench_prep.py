"""Benchmark: calibration prep through ramp fitting on full-frame NIRCam ramps.

Simulates ``--n-files`` 2048 x 2048 exposures (2 integrations x ``--ngroups`` groups,
a 50 DN/s flat with cosmic rays) and the matching reference files
(:func:`daskref.simulate.write_references`), then runs dq_init, saturation,
superbias, refpix, linearity, dark_current, jump and ramp fitting on all of them:

* ``daskref``: ``prep_many`` + ``write_products`` (``_rate``/``_rateints``) in one
  compute on ``--workers`` threads;
* ``jwst`` (where ``jwst`` is installed): the official Detector1Pipeline through
  :func:`daskref.prep.backend_jwst.prep_jwst`, offline with the same reference files
  and step parameters, one file after the other, with ``maximum_cores`` =
  ``--workers`` for jump detection and ramp fitting (jwst's default is 1; its other
  steps use one core).

Each backend runs in a fresh process; the parent samples the resident memory of that
process and its children (jwst's multiprocessing workers) every 50 ms. Printed: wall
time of the run (imports and simulation excluded), input throughput, peak RSS (and
the process's RSS before the run), daskref's bytes read from each input versus its
size, and a cross-check of the two rate products: median ratio of the rates, the
fraction of pixels whose rates agree within their combined error, the JUMP_DET
agreement per integration and the share of injected cosmic rays each flagged.

    python benchmarks/bench_prep.py --n-files 1 --ngroups 20 --chunk-mb 64 --workers 2

``--baseline DIR`` also runs an earlier checkout (``git worktree add DIR REV``) the
same way, for the figures of before a change in the same run, and checks that the
two give byte-identical products.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

STEPS = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,rate"
JUMP_DET = 4
DO_NOT_USE = 1


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of ``proc`` and all its descendants, bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_child(backend: str, args, work: Path, env: dict | None = None) -> dict:
    """Run one backend in a fresh process; return its figures plus the sampled peak RSS."""
    cmd = [sys.executable, os.fspath(Path(__file__).resolve()), "--child", backend,
           "--workdir", os.fspath(work), "--n-files", str(args.n_files),
           "--ngroups", str(args.ngroups), "--workers", str(args.workers)]
    if args.chunk_mb is not None:
        cmd += ["--chunk-mb", str(args.chunk_mb)]
    result_file = work / f"{backend}.json"
    result_file.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, env=env)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(ps))
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{backend} run failed (exit status {proc.returncode})")
    out = json.loads(result_file.read_text())
    out["peak_tree"] = peak
    return out


def child_daskref(args, work: Path, paths: list[Path], refs: dict, out_name="out") -> dict:
    import dask

    from daskref.io import products
    from daskref.prep import prep_many
    from daskref.testing import count_reads

    base = psutil.Process().memory_info().rss
    with (count_reads() as nbytes,
          dask.config.set(scheduler="threads", num_workers=args.workers)):
        t1 = time.perf_counter()
        results = prep_many(paths, steps=STEPS, chunk_mb=args.chunk_mb, **refs)
        t_build = time.perf_counter() - t1
        written = products.write_products(results, work / out_name)
        wall = time.perf_counter() - t1
    chunks = results[0]["ramp"].chunks[2]
    return {"wall": wall, "base": base, "t_build": t_build, "products": len(written),
            "slab_rows": int(max(chunks)), "slabs": len(chunks),
            "bytes_read": {str(p): nbytes[str(p)] for p in paths},
            "rate_dir": os.fspath(work / out_name)}


def child_jwst(args, work: Path, paths: list[Path], refs: dict) -> dict:
    import dask

    from daskref.prep.backend_jwst import prep_jwst

    base = psutil.Process().memory_info().rss
    t1 = time.perf_counter()
    tasks = prep_jwst(paths, steps=STEPS, outdir=work / "jwst",
                      refs={k: os.fspath(v) for k, v in refs.items()},
                      maximum_cores=args.workers)
    dask.compute(*tasks, scheduler="sync")
    wall = time.perf_counter() - t1
    return {"wall": wall, "base": base, "rate_dir": os.fspath(work / "jwst")}


def child(args) -> None:
    work = Path(args.workdir)
    setup = json.loads((work / "setup.json").read_text())
    paths = [Path(p) for p in setup["paths"]]
    refs = {k: Path(v) for k, v in setup["refs"].items()}
    if args.child == "before":  # the earlier checkout on PYTHONPATH, its own output
        result = child_daskref(args, work, paths, refs, out_name="out-before")
    else:
        run = child_daskref if args.child == "daskref" else child_jwst
        result = run(args, work, paths, refs)
    (work / f"{args.child}.json").write_text(json.dumps(result))


def same_products(a_dir: Path, b_dir: Path) -> str:
    """"identical" when every extension's data of every product are byte-equal."""
    from astropy.io import fits

    names = sorted(p.name for p in a_dir.glob("*.fits"))
    if names != sorted(p.name for p in b_dir.glob("*.fits")):
        return "differ: not the same files"
    for name in names:
        with fits.open(a_dir / name) as ha, fits.open(b_dir / name) as hb:
            for ea, eb in zip(ha, hb, strict=True):
                if (ea.data is None) != (eb.data is None) or (
                        ea.data is not None and ea.data.tobytes() != eb.data.tobytes()):
                    return f"differ: {name} {ea.name}"
    return f"identical ({len(names)} files, every extension's data byte for byte)"


def cross_check(daskref_dir: Path, jwst_dir: Path, campaign) -> None:
    """Print how the two rate products of the first file compare."""
    from astropy.io import fits

    first = campaign.exposures[0]
    base = first.path.name.removesuffix("_uncal.fits")
    rate, ints = {}, {}
    for name, d in (("daskref", daskref_dir), ("jwst", jwst_dir)):
        with fits.open(d / f"{base}_rate.fits") as h:
            rate[name] = {e: h[e].data.astype(np.float64) for e in ("SCI", "ERR")}
            rate[name]["DQ"] = h["DQ"].data.astype(np.uint32)
        with fits.open(d / f"{base}_rateints.fits") as h:
            ints[name] = h["DQ"].data.astype(np.uint32)
    a, b = rate["daskref"], rate["jwst"]
    science = ~campaign.truth.reference
    ok = (science & np.isfinite(a["SCI"]) & np.isfinite(b["SCI"])
          & ((a["DQ"] | b["DQ"]) & DO_NOT_USE == 0))
    diff = b["SCI"] - a["SCI"]
    err = np.hypot(a["ERR"], b["ERR"])
    n = int(ok.sum())
    within = np.abs(diff[ok]) <= err[ok]
    close = np.abs(diff[ok]) <= 0.01 * err[ok]
    nz = ok & (a["SCI"] != 0) & (a["ERR"] > 0)
    ratio = np.median(b["SCI"][nz] / a["SCI"][nz])
    err_ratio = np.median(b["ERR"][nz] / a["ERR"][nz])
    print(f"cross-check of {base}_rate ({n} science pixels with a rate in both):")
    print(f"  median rate      : daskref {np.median(a['SCI'][ok]):.4f}, "
          f"jwst {np.median(b['SCI'][ok]):.4f} DN/s (truth flux "
          f"{np.median(campaign.truth.flux[science]):.2f} + dark)")
    print(f"  median ratio     : jwst/daskref rate {ratio:.6f}, ERR {err_ratio:.6f}")
    expected = campaign.truth.flux + campaign.truth.dark_current
    for name, r in (("daskref", a), ("jwst", b)):
        pull = ((r["SCI"] - expected) / r["ERR"])[ok]
        print(f"  vs truth {name:<8}: mean rate - truth {np.mean((r['SCI'] - expected)[ok]):+.5f} "
              f"DN/s, pulls mean {pull.mean():+.4f} std {pull.std():.4f}")
    print(f"  agree within err : {within.mean():.6f} of pixels |diff| <= combined ERR; "
          f"{close.mean():.6f} within 1 % of it; "
          f"{int((~within).sum())} outside")
    same_jumps = (((ints["daskref"] ^ ints["jwst"]) & JUMP_DET) == 0).all(axis=0)[ok]
    print(f"  outside err      : {int((~within & same_jumps).sum())} with the same JUMP_DET "
          f"flags (segment weighting), {int((~within & ~same_jumps).sum())} with different "
          f"ones; max |diff| / combined ERR {np.max(np.abs(diff[ok]) / err[ok]):.2f}")
    only = [(name, int((~np.isfinite(r['SCI']) & science).sum()))
            for name, r in (("daskref", a), ("jwst", b))]
    print(f"  no rate (NaN)    : {', '.join(f'{k} {v}' for k, v in only)} science pixels")
    if (~within).any():
        ys, xs = np.nonzero(ok)
        worst = np.argsort(-np.abs(diff[ok]) / err[ok])[:5]
        for k in worst:
            y, x = ys[k], xs[k]
            print(f"    worst (y={y}, x={x}): daskref {a['SCI'][y, x]:.3f} +- "
                  f"{a['ERR'][y, x]:.3f}, jwst {b['SCI'][y, x]:.3f} +- {b['ERR'][y, x]:.3f}, "
                  f"DQ {a['DQ'][y, x]} / {b['DQ'][y, x]}")
    ja = (ints["daskref"] & JUMP_DET) != 0
    jb = (ints["jwst"] & JUMP_DET) != 0
    sci3 = np.broadcast_to(science, ja.shape)
    agree = (ja == jb)[sci3].mean()
    print(f"  JUMP_DET (rateints, per integration and pixel): agree {agree:.6f}; "
          f"both {int((ja & jb)[sci3].sum())}, daskref only {int((ja & ~jb)[sci3].sum())}, "
          f"jwst only {int((~ja & jb)[sci3].sum())}")
    crs = first.cosmic_rays
    if crs.size:
        idx = (crs["integration"], crs["y"], crs["x"])
        big = crs["amplitude"] >= 200
        print(f"  injected cosmic rays flagged: daskref {ja[idx].mean():.4f}, "
              f"jwst {jb[idx].mean():.4f} of {crs.size}; of the {int(big.sum())} >= 200 DN: "
              f"daskref {ja[idx][big].mean():.4f}, jwst {jb[idx][big].mean():.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-files", type=int, default=1)
    parser.add_argument("--ngroups", type=int, default=20)
    parser.add_argument("--chunk-mb", type=float, default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--workdir", default=None, help="keep files here (default: temp)")
    parser.add_argument("--no-jwst", action="store_true", help="do not run the jwst pipeline")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="an earlier daskref checkout (git worktree add DIR REV) run the "
                             "same way in the same run, and its products compared")
    parser.add_argument("--child", choices=["daskref", "jwst", "before"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    from daskref.simulate import simulate_campaign, write_references

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        campaign = simulate_campaign(work / "in", args.n_files, nints=2, ngroups=args.ngroups,
                                     seed=1, subarray="FULL", flux=50.0, amp_offset_sigma=5.0,
                                     cosmic_ray_rate=1e-3)
        refs = write_references(campaign.truth, work / "refs", args.ngroups, saturation=60000)
        (work / "setup.json").write_text(json.dumps({
            "paths": [os.fspath(p) for p in campaign.paths],
            "refs": {k: os.fspath(v) for k, v in refs.items()}}))
        print(f"simulated {args.n_files} x 2048x2048 x 2 ints x {args.ngroups} groups "
              f"and references in {time.perf_counter() - t0:.1f} s", flush=True)
        sizes = {os.fspath(p): os.path.getsize(p) for p in campaign.paths}
        total = sum(sizes.values())

        runs = {"daskref": run_child("daskref", args, work)}
        if args.baseline:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                [os.fspath(Path(args.baseline).resolve()),
                 *filter(None, [os.environ.get("PYTHONPATH")])])}
            runs["before"] = run_child("before", args, work, env=env)
        has_jwst = importlib.util.find_spec("jwst") is not None
        if has_jwst and not args.no_jwst:
            runs["jwst"] = run_child("jwst", args, work)

        d = runs["daskref"]
        print(f"prep ({STEPS}) on {args.n_files} file(s), {total / 2**20:.0f} MB of input, "
              f"{args.workers} workers")
        print(f"daskref: {d['products']} products, row slabs of up to {d['slab_rows']} rows "
              f"({d['slabs']} per file), graph built in {d['t_build']:.2f} s")
        for p, size in sizes.items():
            got = d["bytes_read"][p]
            print(f"  bytes read     : {Path(p).name}: {got} of SCI data; file {size} bytes "
                  f"({got / size:.3f} x file size, headers excluded)")
        print(f"{'backend':<8} {'wall (s)':>9} {'MB/s':>7} {'peak RSS (MB)':>14} "
              f"{'before run (MB)':>16}")
        for name, r in runs.items():
            print(f"{name:<8} {r['wall']:>9.1f} {total / 2**20 / r['wall']:>7.1f} "
                  f"{r['peak_tree'] / 2**20:>14.0f} {r['base'] / 2**20:>16.0f}")
        if "before" in runs:
            print(f"daskref now / before ({args.baseline}): "
                  f"{runs['before']['wall'] / d['wall']:.2f}x as fast; products "
                  + same_products(Path(d["rate_dir"]), Path(runs["before"]["rate_dir"])))
        if "jwst" not in runs:
            print("jwst Detector1Pipeline: skipped "
                  + ("(--no-jwst)" if has_jwst else "(jwst is not installed)"))
            return
        print(f"jwst: Detector1Pipeline {len(campaign.paths)} file(s) one after the other, "
              f"maximum_cores={args.workers} for jump and ramp_fit; peak RSS includes its "
              f"worker processes")
        cross_check(Path(runs["daskref"]["rate_dir"]), Path(runs["jwst"]["rate_dir"]), campaign)


if __name__ == "__main__":
    main()
