"""A worker SIGKILLed in the middle of a distributed run: the run completes, same file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daskref.cli import main
from daskref.simulate import simulate_campaign
from daskref.testing import assert_same_fits

psutil = pytest.importorskip("psutil")
pytest.importorskip("dask_jobqueue")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def darks(tmp_path_factory):
    """3 SUB320 darks, 2 x 16 groups: a run of several seconds in small slabs."""
    d = tmp_path_factory.mktemp("loss")
    return simulate_campaign(d, 3, nints=2, ngroups=16, seed=4, subarray="SUB320",
                             substrt=(1, 1), subsize=(320, 320)).paths


def _workers(pid: int) -> list:
    """The worker processes a nanny started (multiprocessing children) under ``pid``."""
    return [p for p in psutil.Process(pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline())]


def test_killed_worker__run_completes_with_the_same_file(darks, tmp_path):
    args = ["readnoise", *map(str, darks), "--no-qa", "--chunk-mb", "0.1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = tmp_path / "rn_killed.fits"
    child = subprocess.Popen(
        [sys.executable, "-m", "daskref", *args, "-o", str(out), "--cluster", "local",
         "--jobs", "2", "--cluster-option", "cores=1", "--cluster-option", "memory=2GB"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "Completed" not in seen:
            seen += child.stdout.read(1) or ""
            if child.poll() is not None:
                break
        workers = _workers(child.pid)
        assert child.poll() is None and len(workers) == 2, "the run ended too early"
        time.sleep(1.0)
        workers[0].send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert main([*args, "-o", str(tmp_path / "rn.fits"), "-q"]) == 0
    assert_same_fits(tmp_path / "rn.fits", out)
