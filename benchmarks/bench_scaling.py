"""Scaling of one campaign over local worker processes and a job queue.

The campaign: READNOISE and SUPERBIAS, computed together (one pass over the data),
from ``--n-files`` simulated NIRCam darks (``--nints`` x ``--ngroups``, full frame by
default). It runs, each in a fresh process (so that its memory figures are its own):

* ``local k``: a ``distributed.LocalCluster(n_workers=k, threads_per_worker=1)``, for
  each k of ``--workers`` (default 1, 2 and 4);
* ``jobqueue local``: daskref's own job-queue path (:func:`daskref.execution.running`,
  what ``--cluster local --jobs N`` does) with ``--queue-jobs`` jobs of one
  single-threaded worker: dask-jobqueue's job machinery with local processes as jobs;
* ``jobqueue slurm``: the same through SLURM (``--cluster slurm``), where ``sinfo``
  answers; otherwise the row says it is skipped and why.

Each child starts its cluster and waits for its workers (not timed: a batch queue's
wait is not the run's), then times the graph's construction, computation and the
writing of the two files. Meanwhile it samples the resident memory of every worker
process every 0.1 s (``psutil``; where a worker runs on another host, its own system
monitor's record, every 0.5 s, is used instead). Printed per run: wall time,
throughput (MB/s of input, the darks' SCI bytes), speed-up over one worker, the peak
resident memory of the busiest worker and the mean of the workers' peaks, and the
peak of the client process (which also holds the scheduler of a local cluster).
Then whether the reference files of every run are identical (data and headers but
the creation date).

The machine's load (1-minute average) is printed with each run: on a shared machine
others' work skews the times.

Usage::

    python benchmarks/bench_scaling.py                      # 4 full-frame darks x 2 x 10
    python benchmarks/bench_scaling.py --n-files 16 --workers 1 2 4 8 --queue-jobs 4
    python benchmarks/bench_scaling.py --subarray SUB320 --workers 1 2   # quick check
    python benchmarks/bench_scaling.py --queue-option queue=normal --queue-option account=X
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_readnoise import child_result, simulate_missing

GEOMETRY = {
    "FULL": {"subarray": "FULL"},
    "SUB320": {"subarray": "SUB320", "substrt": (1, 1), "subsize": (320, 320), "tframe": 10.7},
}
OUTPUTS = ("readnoise.fits", "superbias.fits")


def ensure_inputs(workdir: Path, args) -> list[Path]:
    """Simulate (once) the darks, reusing files from earlier runs."""
    from daskref.simulate import make_truth

    return simulate_missing(
        workdir / f"{args.subarray.lower()}_{args.nints}x{args.ngroups}", args.n_files,
        lambda: make_truth(seed=0, cosmic_ray_rate=5e-5, **GEOMETRY[args.subarray]),
        nints=args.nints, ngroups=args.ngroups)


def slurm_reason() -> str | None:
    """Why SLURM cannot be used here, or None when ``sinfo`` answers."""
    if not shutil.which("sinfo"):
        return "no SLURM here (sinfo not found)"
    try:
        run = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s"
    if run.returncode != 0:
        return f"sinfo fails: {(run.stderr.strip().splitlines() or ['?'])[0]}"
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        return "dask-jobqueue not installed (pip install 'daskref[jobqueue]')"
    return None


# --------------------------------------------------------------------------- child


class Sampler:
    """Peak resident memory of a set of processes, sampled in a thread."""

    def __init__(self, pids, interval: float = 0.1):
        import psutil

        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self.peak = dict.fromkeys(pids, 0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            for pid, proc in self.procs.items():
                try:
                    self.peak[pid] = max(self.peak[pid], proc.memory_info().rss)
                except psutil.Error:  # a worker that ended
                    pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _monitor_peak(dask_worker) -> float:
    """A worker's peak RSS in its own system monitor's record (every 0.5 s)."""
    return max(dask_worker.monitor.quantities["memory"], default=0)


def start_cluster(args):
    """The cluster and client of one run (``args.child``: ``local`` or ``jobqueue``)."""
    import contextlib

    from distributed import Client, LocalCluster

    from daskref.execution import Execution, parse_options, running

    stack = contextlib.ExitStack()
    if args.child == "local":
        cluster = stack.enter_context(LocalCluster(
            n_workers=args.k, threads_per_worker=1, processes=True, dashboard_address=None))
        client = stack.enter_context(Client(cluster))
    else:
        options = {"cores": 1, "processes": 1, "memory": args.worker_memory,
                   "scheduler_options": {"dashboard_address": ":0"},
                   **parse_options(args.queue_option or [])}
        execution = Execution(kind=args.kind, options=options, jobs=args.k)
        client = stack.enter_context(running(execution))
    client.wait_for_workers(args.k, timeout=args.start_timeout)
    return stack, client


def child(args) -> None:
    """One run: print its figures as JSON on the last line."""
    import daskref

    paths = [Path(p) for p in args.files]
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    stack, client = start_cluster(args)
    with stack:
        startup = time.perf_counter() - t_start
        pids = client.run(os.getpid)
        hosts = client.run(socket.gethostname)
        here = socket.gethostname()
        local = [pid for addr, pid in pids.items() if hosts[addr] == here]
        with Sampler(local) as sampler:
            t0 = time.perf_counter()
            stack_ = daskref.open_stack(paths, chunk_mb=args.chunk_mb)
            daskref.write([daskref.readnoise(stack_), daskref.superbias(stack_)],
                          [out / name for name in OUTPUTS], pedigree="SIMULATION")
            wall = time.perf_counter() - t0
        remote = {addr: peak for addr, peak in client.run(_monitor_peak).items()
                  if hosts[addr] != here}
        peaks = [sampler.peak[pid] for pid in local] + list(remote.values())
    print(json.dumps({
        "wall": wall, "startup": startup, "workers": len(pids),
        "worker_peaks_mb": [p / 2**20 for p in peaks],
        "sampled": "psutil" if not remote else ("monitor" if not local else "mixed"),
        "client_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load": os.getloadavg()[0]}))


# --------------------------------------------------------------------------- main


def measure(args, mode: str, k: int, paths, out: Path, kind: str = "local") -> dict:
    cmd = [sys.executable, os.fspath(Path(__file__).resolve()), "--child", mode,
           "--k", str(k), "--kind", kind, "--outdir", os.fspath(out),
           "--worker-memory", args.worker_memory, "--start-timeout", str(args.start_timeout),
           "--files", *map(os.fspath, paths)]
    if args.chunk_mb:
        cmd += ["--chunk-mb", str(args.chunk_mb)]
    for opt in args.queue_option or []:
        cmd += ["--queue-option", opt]
    return child_result(cmd, f"{mode} with {k} workers")


def same_files(reference: Path, other: Path) -> str:
    from daskref.testing import assert_same_fits

    try:
        for name in OUTPUTS:
            assert_same_fits(reference / name, other / name)
    except AssertionError as exc:
        return f"DIFFERENT ({str(exc).splitlines()[0][:80]})"
    return "identical"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-files", type=int, default=4)
    p.add_argument("--nints", type=int, default=2)
    p.add_argument("--ngroups", type=int, default=10)
    p.add_argument("--subarray", default="FULL", choices=sorted(GEOMETRY))
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4],
                   help="local worker processes of each run (default 1 2 4)")
    p.add_argument("--queue-jobs", type=int, default=2,
                   help="jobs (one single-threaded worker each) of the job-queue runs")
    p.add_argument("--queue", nargs="*", default=["local", "slurm"],
                   help="job-queue kinds to run (default local slurm; none: no queue)")
    p.add_argument("--queue-option", action="append", metavar="KEY=VALUE",
                   help="a dask-jobqueue option of the queue runs (queue=..., account=...)")
    p.add_argument("--worker-memory", default="4GB",
                   help="memory of one job-queue job (its worker's limit; default 4GB)")
    p.add_argument("--chunk-mb", type=float, default=None)
    p.add_argument("--start-timeout", type=float, default=600,
                   help="seconds to wait for the workers (a batch queue may be slow)")
    p.add_argument("--workdir", default="/tmp/daskref-bench-scaling")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--kind", default="local", help=argparse.SUPPRESS)
    p.add_argument("--outdir", help=argparse.SUPPRESS)
    p.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return

    from daskref.io.fits import read_info

    workdir = Path(args.workdir)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} (1-min mean; a "
          f"shared machine: others' work skews the times)", flush=True)
    paths = ensure_inputs(workdir, args)
    size = sum(read_info(q).sci.nbytes for q in paths)
    print(f"campaign: READNOISE + SUPERBIAS in one pass over {args.n_files} {args.subarray} "
          f"darks x {args.nints} x {args.ngroups} groups: {size / 1e6:.0f} MB of SCI",
          flush=True)
    runs = [("local", k, "local", f"local {k}") for k in args.workers]
    skipped = []
    for kind in [q for q in args.queue if q != "none"]:
        reason = slurm_reason() if kind == "slurm" else None
        if reason:
            skipped.append(f"jobqueue {kind}: skipped, {reason}")
        else:
            runs.append(("jobqueue", args.queue_jobs, kind, f"jobqueue {kind} {args.queue_jobs}"))

    header = (f"{'run':>18} {'workers':>7} {'wall s':>7} {'MB/s':>6} {'speed-up':>8} "
              f"{'peak MB/worker':>14} {'mean':>6} {'client MB':>9} {'start s':>7} {'load':>5}")
    print(header)
    print("-" * len(header))
    results, base = {}, None
    for mode, k, kind, label in runs:
        out = workdir / "out" / label.replace(" ", "_")
        if out.exists():
            shutil.rmtree(out)
        r = measure(args, mode, k, paths, out, kind)
        results[label] = (r, out)
        base = base or (r["wall"] if k == 1 else None)
        speedup = f"{base / r['wall']:8.2f}" if base else f"{'-':>8}"
        peaks = r["worker_peaks_mb"]
        mark = "" if r["sampled"] == "psutil" else f" ({r['sampled']})"
        print(f"{label:>18} {r['workers']:>7} {r['wall']:7.1f} {size / 1e6 / r['wall']:6.0f} "
              f"{speedup} {max(peaks):14.0f} {sum(peaks) / len(peaks):6.0f} "
              f"{r['client_peak_mb']:9.0f} {r['startup']:7.1f} {r['load']:5.2f}{mark}",
              flush=True)
    for line in skipped:
        print(f"{line}")
    first_label, (_, first_out) = next(iter(results.items()))
    print(f"reference files against {first_label}'s:")
    for label, (_, out) in list(results.items())[1:]:
        print(f"  {label}: {same_files(first_out, out)}")


if __name__ == "__main__":
    main()
