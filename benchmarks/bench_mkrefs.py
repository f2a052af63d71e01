"""Time a dark campaign made by one ``daskref mkrefs`` run against the same files made
one command at a time.

On the same simulated NIRCam darks (``--n-files`` full-frame exposures, 2 integrations
x ``--ngroups`` groups, in two epochs a few days apart, every bad-pixel class of
:data:`daskref.simulate.BAD_PIXEL_DEFAULTS`) it runs, each in a fresh process (so its
figures are its own) with ``-q --workers 2``:

* ``mkrefs``: ``daskref mkrefs -c CFG readnoise,superbias,dark,badpix_from_darks
  FILES`` into a fresh output root; the config (as ``daskref demo`` writes it) makes
  SUPERBIAS and READNOISE in this run (``SELF``) and takes SATURATION, LINEARITY and
  GAIN from :func:`daskref.simulate.write_references`;
* ``mkrefs rerun``: the same command on the same output root, which must find every
  file made (it runs without ``-q`` so that it can say "nothing to do");
* ``readnoise``, ``superbias``, ``dark`` and ``mask``: the four ``daskref`` commands
  in turn, DARK and MASK calibrated with the two files just made and the same three
  references; ``separate total`` is their sum.

Each command runs in ``python bench_mkrefs.py --child ARGV...``, which calls
``daskref.cli.main(ARGV)`` and reports its own wall time, peak resident memory
(``ru_maxrss``), bytes read (``rchar`` of /proc/self/io) and the image bytes read from
the input darks (counted by :func:`daskref.testing.count_reads`). Printed: wall time of
the whole process and of ``main`` alone, throughput (MB/s of input; input = SCI bytes
of the darks), peak RSS, bytes read over the input size, the same for the darks' image
bytes only, and the sizes of the reference files (the rest of what is read).

Usage::

    python benchmarks/bench_mkrefs.py                      # 8 full-frame darks x 2 x 10
    python benchmarks/bench_mkrefs.py --subarray SUB320 --n-files 4   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_readnoise import _rchar

REF_KINDS = ("saturation", "linearity", "gain")
REFLABELS = ("readnoise", "superbias", "dark", "badpix_from_darks")
EPOCHS = ("2026-01-05", "2026-01-08")  # two epochs, days apart
GEOMETRY = {
    "FULL": {"subarray": "FULL"},
    "SUB320": {"subarray": "SUB320", "substrt": (1, 1), "subsize": (320, 320), "tframe": 10.7},
}


def make_truth(subarray: str):
    from daskref.simulate import BAD_PIXEL_DEFAULTS, make_truth

    return make_truth(seed=0, cosmic_ray_rate=5e-5, **GEOMETRY[subarray], **BAD_PIXEL_DEFAULTS)


def folder(workdir: Path, args) -> Path:
    return workdir / f"{args.subarray.lower()}_{args.nints}x{args.ngroups}"


def ensure_inputs(workdir: Path, args) -> list[Path]:
    """Simulate (once) the darks, half in each epoch, reusing files from earlier runs."""
    from daskref.simulate import simulate_exposure

    d = folder(workdir, args) / "inputs"
    d.mkdir(parents=True, exist_ok=True)
    truth = None
    paths = []
    first = (args.n_files + 1) // 2
    for k in range(args.n_files):
        e, i = (0, k) if k < first else (1, k - first)
        p = d / f"dark_e{e}_{i}_uncal.fits"
        if not p.exists():
            truth = truth or make_truth(args.subarray)
            t0 = time.perf_counter()
            simulate_exposure(p, truth, nints=args.nints, ngroups=args.ngroups, seed=k,
                              start=f"{EPOCHS[e]}T{i:02d}:00:00")
            print(f"  simulated {p.name} in {time.perf_counter() - t0:.1f} s", flush=True)
        paths.append(p)
    return paths


def ensure_references(workdir: Path, args) -> dict[str, str]:
    """Write (once) what darks cannot make (saturation, linearity, gain); ``{kind: path}``."""
    from daskref.simulate import write_references

    d = folder(workdir, args) / "references"
    index = d / "references.json"
    if index.exists():
        refs = json.loads(index.read_text())
        if set(refs) == set(REF_KINDS) and all(Path(p).exists() for p in refs.values()):
            return refs
    t0 = time.perf_counter()
    written = write_references(make_truth(args.subarray), d, args.ngroups, kinds=list(REF_KINDS))
    refs = {k: os.fspath(v) for k, v in written.items()}
    index.write_text(json.dumps(refs, indent=1))
    print(f"  wrote the references ({', '.join(refs)}) in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return refs


def write_config(path: Path, outrootdir: Path, refs: dict[str, str]) -> Path:
    """The mkrefs config of ``daskref demo``: SELF superbias/readnoise, given references."""
    import yaml

    config = {
        "output": {"outrootdir": os.fspath(outrootdir), "runID": "AUTO"},
        "reffile4ssb": {"superbias": "SELF", "readnoise": "SELF", **refs},
        **{label: {"imtypes": "D+", "author": "bench_mkrefs", "pedigree": "SIMULATION"}
           for label in REFLABELS},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def sci_bytes(path: Path) -> int:
    from daskref.io.fits import read_info

    return read_info(path).sci.nbytes


# --------------------------------------------------------------------------- child


def child(argv: list[str]) -> None:
    """Run ``daskref.cli.main(argv)``; print its figures as JSON on the last line."""
    import astropy.io.fits  # noqa: F401  (imports are not input bytes)
    import yaml  # noqa: F401

    import daskref  # noqa: F401
    import daskref.api  # noqa: F401
    import daskref.orchestrate.run  # noqa: F401
    import daskref.prep  # noqa: F401
    from daskref.cli import main
    from daskref.testing import count_reads

    with count_reads() as nbytes:
        r0 = _rchar()
        t0 = time.perf_counter()
        rc = main(argv)
        wall = time.perf_counter() - t0
        read = _rchar() - r0
    sys.stdout.flush()
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"rc": rc, "wall": wall, "peak_mb": peak_kb / 1024, "read": read,
                      "by_file": dict(nbytes)}))


def measure(name: str, argv: list[str], log: Path) -> dict:
    """One daskref command in a fresh process, through :func:`child`."""
    cmd = [sys.executable, os.fspath(Path(__file__).resolve()), "--child", *argv]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    proc_wall = time.perf_counter() - t0
    with log.open("a") as f:
        f.write(f"$ daskref {' '.join(argv)}\n{run.stdout}{run.stderr}\n")
    lines = run.stdout.strip().splitlines()
    try:
        r = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        sys.stderr.write(run.stdout + run.stderr)
        raise SystemExit(f"{name} failed (exit status {run.returncode})") from None
    if r["rc"] != 0:
        sys.stderr.write(run.stdout + run.stderr)
        raise SystemExit(f"{name}: daskref exit status {r['rc']}")
    r["proc_wall"] = proc_wall
    r["load"] = os.getloadavg()[0]  # others' work on the machine skews the times
    r["stdout"] = "\n".join(lines[:-1])
    return r


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def compare(mkrefs_out: Path, separate: dict[str, Path]) -> list[str]:
    """Whether mkrefs and the separate commands wrote the same arrays."""
    import numpy as np
    from astropy.io import fits

    made = [p for p in mkrefs_out.rglob("*.fits") if "ssb" not in p.relative_to(mkrefs_out).parts]
    lines = []
    for label, theirs in separate.items():
        reftype = fits.getheader(theirs).get("REFTYPE")
        ours = [p for p in made if fits.getheader(p).get("REFTYPE") == reftype]
        if len(ours) != 1:
            lines.append(f"  {label}: {len(ours)} mkrefs files of REFTYPE {reftype}")
            continue
        diffs = []
        with fits.open(ours[0]) as a, fits.open(theirs) as b:
            for hdu in b[1:]:
                if hdu.data is None or hdu.name not in a or a[hdu.name].data is None:
                    continue
                x, y = a[hdu.name].data, hdu.data
                if getattr(x, "dtype", None) is None or x.dtype.names:
                    continue
                same = x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
                if not same and x.shape == y.shape and x.dtype.kind == "f":
                    d = np.nanmax(np.abs(x.astype(np.float64) - y))
                    diffs.append(f"{hdu.name} max |diff| {d:.3g}")
                elif not same:
                    diffs.append(f"{hdu.name} differs")
        lines.append(f"  {label}: {ours[0].name} vs {theirs.name}: "
                     + ("identical arrays" if not diffs else "; ".join(diffs)))
    return lines


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-files", type=int, default=8)
    p.add_argument("--ngroups", type=int, default=10)
    p.add_argument("--nints", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--subarray", default="FULL", choices=sorted(GEOMETRY),
                   help="FULL (2048 x 2048) or SUB320 for a quick check")
    p.add_argument("--workdir", default="/tmp/daskref-bench-mkrefs")
    args = p.parse_args(argv)

    workdir = Path(args.workdir)
    print(f"machine: {os.cpu_count()} cores; {args.subarray}, {args.n_files} darks x "
          f"{args.nints} integrations x {args.ngroups} groups in 2 epochs; "
          f"-q --workers {args.workers}", flush=True)
    paths = ensure_inputs(workdir, args)
    refs = ensure_references(workdir, args)
    files = [os.fspath(q) for q in paths]
    size = sum(sci_bytes(q) for q in paths)
    ref_sizes = {k: Path(v).stat().st_size for k, v in refs.items()}
    print(f"input: {size / 1e9:.2f} GB of SCI ({sum(q.stat().st_size for q in paths) / 1e9:.2f}"
          f" GB on disk); references "
          + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in ref_sizes.items()), flush=True)

    out = fresh(folder(workdir, args) / "out")
    log = out / "commands.log"
    common = ["-q", "--workers", str(args.workers)]
    rows: dict[str, dict] = {}

    # (a) one mkrefs run, then the same again (must have nothing to do)
    root = out / "mkrefs"
    cfg = write_config(out / "mkrefs.cfg", root, refs)
    mk = ["mkrefs", "-c", os.fspath(cfg), ",".join(REFLABELS), *files,
          "--workers", str(args.workers), "--outrootdir", os.fspath(root)]
    rows["mkrefs"] = measure("mkrefs", [*mk, "-q"], log)
    rows["mkrefs rerun"] = measure("mkrefs rerun", mk, log)
    rerun_said = rows["mkrefs rerun"]["stdout"].strip()

    # (b) the same files, one command at a time
    sep = out / "separate"
    sep.mkdir()
    made = {k: sep / f"{k}.fits" for k in ("readnoise", "superbias", "dark", "mask")}
    calib = ["--superbias", os.fspath(made["superbias"]),
             "--readnoise", os.fspath(made["readnoise"]),
             *(x for k in REF_KINDS for x in (f"--{k}", refs[k]))]
    meta = ["--pedigree", "SIMULATION", "--author", "bench_mkrefs"]
    commands = {
        "readnoise": ["readnoise", *files, "-o", os.fspath(made["readnoise"])],
        "superbias": ["superbias", *files, "-o", os.fspath(made["superbias"])],
        "dark": ["dark", *files, "-o", os.fspath(made["dark"]), *calib],
        "mask": ["mask", "--darks", *files, "-o", os.fspath(made["mask"]), *calib],
    }
    for name, cmd in commands.items():
        rows[name] = measure(name, [*cmd, *common, *meta], log)
    total = {key: sum(rows[n][key] for n in commands) for key in ("wall", "proc_wall", "read")}
    total["peak_mb"] = max(rows[n]["peak_mb"] for n in commands)
    total["load"] = max(rows[n]["load"] for n in commands)
    total["by_file"] = {}
    for n in commands:
        for f, v in rows[n]["by_file"].items():
            total["by_file"][f] = total["by_file"].get(f, 0) + v
    rows["separate total"] = total

    header = (f"{'run':>15} {'wall s':>7} {'main s':>7} {'MB/s':>6} {'peak RSS MB':>11} "
              f"{'read/input':>10} {'darks/in':>8} {'load':>5}")
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        darks = sum(v for f, v in r["by_file"].items() if f in files)
        print(f"{name:>15} {r['proc_wall']:7.1f} {r['wall']:7.1f} "
              f"{size / 1e6 / r['proc_wall']:6.0f} {r['peak_mb']:11.0f} "
              f"{r['read'] / size:10.2f} {darks / size:8.2f} {r['load']:5.1f}", flush=True)
    print("wall s: the whole process (interpreter, imports, daskref.cli.main); main s: "
          "main() alone; MB/s: input SCI MB over wall s; peak RSS: the process's ru_maxrss "
          "(separate total: the largest); read/input: rchar over the input SCI bytes; "
          "darks/in: image bytes read from the darks (count_reads) over the same; load: "
          f"1-minute load average at the end of the run ({os.cpu_count()} cores)")
    print("references also read (not inputs): "
          + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in ref_sizes.items())
          + f" (each by the DARK and the MASK pass: up to "
          f"{2 * sum(ref_sizes.values()) / size:.2f} x input), plus the SUPERBIAS and "
          "READNOISE just made: "
          + ", ".join(f"{k} {made[k].stat().st_size / 1e6:.0f} MB"
                      for k in ("superbias", "readnoise")))
    print(f"mkrefs rerun said: {rerun_said!r}"
          + ("" if "nothing to do" in rerun_said else "  <-- NOT 'nothing to do'"))
    for line in compare(root, made):
        print(line)
    ratio = rows["mkrefs"]["proc_wall"] / total["proc_wall"]
    inner = rows["mkrefs"]["wall"] / total["wall"]
    print(f"orchestrated run no slower than the separate commands: "
          f"{'PASS' if ratio <= 1 else 'FAIL'} ({ratio:.2f} of their sum)")
    print(f"  (main() alone: {inner:.2f} of their sum; command output in {log})")


if __name__ == "__main__":
    main()
