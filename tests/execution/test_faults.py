"""Interrupts and killed runs: no partial or temporary file, one line, a rerun works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daskref.cli import main
from daskref.io.exposure_writer import remove_stale
from daskref.simulate import simulate_campaign

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_temporaries_of_a_killed_run_are_removed(tiny_darks, tmp_path):
    out = tmp_path / "rn.fits"
    stale = tmp_path / f".rn.fits.part-{_dead_pid()}"
    stale.write_bytes(b"SIMPLE  = half a file")
    busy = tmp_path / f".rn.fits.part-{os.getppid()}"  # a live process's: not ours to take
    busy.write_bytes(b"")
    other = tmp_path / f".other.fits.part-{_dead_pid()}"  # another output's
    other.write_bytes(b"")
    assert main(["readnoise", *map(str, tiny_darks), "-o", str(out), "--no-qa", "-q"]) == 0
    assert out.exists() and not stale.exists()
    assert busy.exists() and other.exists()
    assert remove_stale(tmp_path / "other.fits") == [other]


@pytest.fixture(scope="module")
def bigger_darks(tmp_path_factory):
    """Enough work that a signal lands in the middle: 4 SUB320 darks, 2 x 20 groups."""
    d = tmp_path_factory.mktemp("bigger")
    return simulate_campaign(d, 4, nints=2, ngroups=20, seed=3, subarray="SUB320",
                             substrt=(1, 1), subsize=(320, 320)).paths


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_stops_within_seconds_leaving_nothing(bigger_darks, tmp_path, sig):
    out = tmp_path / "rn.fits"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.Popen(
        [sys.executable, "-m", "daskref", "readnoise", *map(str, bigger_darks), "-o",
         str(out), "--no-qa", "--chunk-mb", "0.1", "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the progress bar appears once the computation runs: interrupt it then
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline and "Completed" not in seen:
        seen += child.stdout.read(1) or ""
        if child.poll() is not None:
            break
    assert child.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.5)
    t0 = time.monotonic()
    child.send_signal(sig)
    try:
        _, err = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise
    finally:
        child.stdout.close()
        child.stderr.close()
    assert time.monotonic() - t0 < 20
    assert child.returncode == 128 + sig
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], err
    assert not out.exists()
    assert not list(tmp_path.glob(".*part*"))
    # a rerun completes
    assert main(["readnoise", *map(str, bigger_darks), "-o", str(out), "--no-qa", "-q"]) == 0
    assert out.exists()
