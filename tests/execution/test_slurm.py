"""A real single-node SLURM (``.ci/start-slurm``): readnoise and mkrefs through sbatch.

The workers run as SLURM jobs: each job's worker log, named by SLURM's job id, says it
registered with the run's scheduler, and SLURM's own accounting of the job (``scontrol
show job`` while it is known) names the dask-jobqueue job. Outputs equal the local run's.

Skipped with the reason where SLURM cannot be started here (not root, packages missing);
with ``DASKREF_REQUIRE_SLURM=1`` (``.ci/run`` sets it) that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from daskref.cli import main
from daskref.testing import assert_same_fits, run_daskref

pytest.importorskip("dask_jobqueue")

START = Path(__file__).resolve().parents[2] / ".ci" / "start-slurm"
SLURM_OPTIONS = ["cores=1", "memory=1GB", "walltime=00:10:00", "processes=1"]


def _unavailable(reason: str):
    if os.environ.get("DASKREF_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM required (DASKREF_REQUIRE_SLURM=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm():
    """SLURM up on localhost, or the test skipped (failed in CI) with the reason."""
    if os.name != "posix" or os.geteuid() != 0:
        _unavailable("starting SLURM needs root")
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(c)]
    if missing:
        _unavailable(f"SLURM not installed ({', '.join(missing)} missing; apt-get install "
                     "slurm-wlm munge)")
    run = subprocess.run([str(START)], capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        _unavailable(f".ci/start-slurm failed: {run.stderr.strip()}")
    return True


def _options(logs: Path) -> list[str]:
    out = []
    for opt in [*SLURM_OPTIONS, f"log_directory={logs}"]:
        out += ["--cluster-option", opt]
    return out


def _jobs_of(logs: Path) -> list[str]:
    """The SLURM job ids whose worker registered with a scheduler (from their logs)."""
    ids = []
    for err in sorted(logs.glob("dask-worker-*.err")):
        if "Registered to:" in err.read_text():
            ids.append(err.stem.removeprefix("dask-worker-"))
    return ids


def test_slurm__readnoise_workers_are_slurm_jobs(slurm, tiny_darks, tmp_path):
    assert main(["readnoise", *map(str, tiny_darks), "-o", str(tmp_path / "rn_local.fits"),
                 "--no-qa", "-q"]) == 0
    logs = tmp_path / "logs"
    run = run_daskref("readnoise", *tiny_darks, "-o", tmp_path / "rn_slurm.fits", "--no-qa",
                      "--cluster", "slurm", "--jobs", "2", *_options(logs), "-v",
                      cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "slurm cluster, 2 job(s)" in run.stderr
    ids = _jobs_of(logs)
    assert len(ids) == 2 and all(i.isdigit() for i in ids), (ids, run.stderr[-2000:])
    # dask-jobqueue submitted them with sbatch under its job name; they are gone now
    # (the cluster cancels its jobs at the end)
    for job in ids:
        show = subprocess.run(["scontrol", "show", "job", job], capture_output=True,
                              text=True)
        if show.returncode == 0:  # still known to the controller (MinJobAge)
            assert "JobName=dask-worker" in show.stdout
            assert "JobState=RUNNING" not in show.stdout
    assert_same_fits(tmp_path / "rn_local.fits", tmp_path / "rn_slurm.fits")


def test_slurm__mkrefs_campaign(slurm, tiny_darks, tmp_path):
    logs = tmp_path / "logs"
    cfg = tmp_path / "mkrefs.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        output: {{outrootdir: {tmp_path / 'out'}, runID: ''}}
        readnoise: {{imtypes: D+}}
        superbias: {{imtypes: D+}}
        cluster: {{kind: slurm, jobs: 1, cores: 1, memory: 1GB, walltime: '00:10:00',
                   options: {{log_directory: {logs}}}}}
        """))
    run = run_daskref("mkrefs", "-c", cfg, "readnoise,superbias", *tiny_darks, "--no-qa",
                      cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "slurm cluster, 1 job(s)" in run.stderr
    assert len(_jobs_of(logs)) == 1
    assert main(["mkrefs", "-c", str(cfg), "readnoise,superbias", *map(str, tiny_darks),
                 "--no-qa", "-q", "--scheduler", "threads",
                 "--outrootdir", str(tmp_path / "local")]) == 0
    made = sorted((tmp_path / "out").rglob("*.fits"))
    assert len(made) == 2
    for path in made:
        assert_same_fits(path, tmp_path / "local" / path.relative_to(tmp_path / "out"))
